"""`seguro bench`: what Seguro costs over the raw systems it stands on, each measured in the same run.

Why side by side: on a shared machine absolute figures swing with whatever else runs, so each Seguro
figure is paired with its raw baseline taken moments earlier on the same disk, the same etcd build and the
same client library, and the report is the ratio. Three pairs:

- etcd: sequential raw puts of 1 KiB (pyetcd) against Coordinator.append of fenced 100 x 1 KiB batches,
  interleaved in rounds so drift hits both alike; a raw put of the same ~100 KiB batch bytes separates
  what the payload costs from what the fenced Txn costs.
- RocksDB: a raw synced WriteBatch of 100 x 1 KiB against EventLog.append of 100 records.
- end to end: a local 3-replica cluster fed by seguro.ops.demo.Peer; datagram -> ack latency at a low rate,
  and acknowledged events/s with a bounded window in flight, each against the raw etcd put above.

Every loop stops at a count or a deadline, whichever comes first; all traffic stays on 127.0.0.1.
This is a measurement, never a pass/fail test.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyetcd
import rocksdict

from seguro.node.config import parse_hostport
from seguro.node.etcd.coordinator import Coordinator, etcd_client
from seguro.node.eventlog import EventLog
from seguro.ops import cluster as local
from seguro.ops.demo import Peer
from seguro.ops.etcd_server import EtcdCluster

VALUE_BYTES = 1024
BATCH_RECORDS = 100
BENCH_SHIP = "bench"
LEASE_TTL_S = 30  # refreshed every round; a round is far shorter
ACK_TIMEOUT_S = 1.0  # a datagram unanswered this long counts as lost in the latency run
STALL_S = 1.0  # no ack for this long: write off what is in flight so the window cannot stay shut
POLL_S = 0.0002

Echo = Callable[[str], None]


class BenchError(RuntimeError):
    """A contender did not do what it is measured doing (refused append, no ack at all, ...)."""


@dataclass(frozen=True)
class Plan:
    """Counts and time caps for one run; each loop stops at whichever it reaches first."""

    rounds: int
    etcd_puts: int  # raw 1 KiB puts per round
    etcd_batches: int  # appends (and raw 100 KiB puts) per round
    etcd_round_s: float  # cap per contender per round
    rocks_batches: int  # per contender per round
    rocks_round_s: float
    latency_s: float
    latency_rate_per_s: float
    throughput_s: float
    window: int  # datagrams in flight during the throughput run, as tests/e2e/test_e2e.py keeps


FULL = Plan(rounds=5, etcd_puts=400, etcd_batches=50, etcd_round_s=3.0, rocks_batches=100, rocks_round_s=2.0,
            latency_s=3.0, latency_rate_per_s=100.0, throughput_s=5.0, window=400)  # fmt: skip
QUICK = Plan(rounds=3, etcd_puts=150, etcd_batches=20, etcd_round_s=1.5, rocks_batches=40, rocks_round_s=1.0,
             latency_s=1.5, latency_rate_per_s=100.0, throughput_s=2.0, window=400)  # fmt: skip


# ---- statistics -------------------------------------------------------------------------------------------


def percentile(samples: list[float], q: float) -> float:
    """Nearest-rank percentile: always a value that was measured, no interpolation between two."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def summarize(samples: list[float], items_per_op: int = 1) -> dict[str, float]:
    """Latency (ms) and rates of sequential operations: busy time is the sum of the samples."""
    busy = sum(samples)
    ops_per_s = len(samples) / busy if busy else math.nan
    return {
        "ops": len(samples),
        "p50_ms": percentile(samples, 50) * 1e3,
        "p99_ms": percentile(samples, 99) * 1e3,
        "ops_per_s": ops_per_s,
        "items_per_s": ops_per_s * items_per_op,
    }


def timed_loop(step: Callable[[], None], count: int, budget_s: float) -> list[float]:
    """Seconds of each call of `step`, up to `count` calls or until `budget_s` has passed."""
    samples: list[float] = []
    deadline = time.perf_counter() + budget_s
    for _ in range(count):
        if time.perf_counter() >= deadline:
            break
        started = time.perf_counter()
        step()
        samples.append(time.perf_counter() - started)
    return samples


# ---- etcd -------------------------------------------------------------------------------------------------


class Appender:
    """The master's side of a commit (Coordinator.append_records): holds the epoch and the expected head."""

    def __init__(self, coord: Coordinator, epoch: int, values: list[bytes]) -> None:
        self.coord, self.epoch, self.values, self.head = coord, epoch, values, 0

    def __call__(self) -> None:
        result = self.coord.append_records(self.epoch, self.head, self.values)
        if not result.ok:
            raise BenchError(f"append after event {self.head} refused: {result}")
        self.head = result.head_event


class RawPutter:
    """Sequential raw puts of one value under fresh keys, as an unfenced log would write."""

    def __init__(self, client: pyetcd.MultiEndpointEtcd3Client, prefix: str, value: bytes) -> None:
        self.client, self.prefix, self.value, self.count = client, prefix, value, 0

    def __call__(self) -> None:
        self.count += 1
        self.client.put(f"{self.prefix}{self.count:010d}", self.value)


def bench_etcd(workdir: Path, plan: Plan, echo: Echo) -> dict[str, dict[str, float]]:
    """Start a fresh 3-member etcd, measure raw puts against fenced appends on it, stop it."""
    echo("etcd: starting a fresh 3-member cluster on 127.0.0.1")
    etcd = EtcdCluster(workdir / "etcd", members=3, token=f"seguro-bench-{os.getpid()}").start()
    try:
        etcd.write_state(workdir / "etcd.json")  # `seguro cluster down --workdir` can stop it if we die
        return measure_etcd(etcd.endpoints, plan, echo)
    finally:
        etcd.stop()


def measure_etcd(endpoints: str, plan: Plan, echo: Echo) -> dict[str, dict[str, float]]:
    values = [os.urandom(VALUE_BYTES) for _ in range(BATCH_RECORDS)]
    raw, coord = etcd_client(endpoints, timeout_s=2.0), Coordinator(endpoints, BENCH_SHIP)
    try:
        lease = coord.grant_lease(LEASE_TTL_S)
        master = coord.campaign("bench", lease, {})
        if master is None:
            raise BenchError("campaign lost on a fresh etcd")
        append = Appender(coord, master.epoch, values)
        whole = b"".join(values)  # the batch's payload as one raw value
        small, big = RawPutter(raw, "/bench/raw1k/", values[0]), RawPutter(raw, "/bench/rawbatch/", whole)
        for warm in (small, big, append):  # connections and first-request costs out of the figures
            timed_loop(warm, 3, plan.etcd_round_s)
        samples: dict[str, list[float]] = {"raw_put_1k": [], "raw_put_batch": [], "append": []}
        for i in range(plan.rounds):
            echo(f"etcd: round {i + 1}/{plan.rounds}")
            coord.keepalive(lease)
            samples["raw_put_1k"] += timed_loop(small, plan.etcd_puts, plan.etcd_round_s)
            samples["raw_put_batch"] += timed_loop(big, plan.etcd_batches, plan.etcd_round_s)
            samples["append"] += timed_loop(append, plan.etcd_batches, plan.etcd_round_s)
        coord.revoke(lease)
    finally:
        raw.close()
        coord.close()
    out = {name: summarize(s, BATCH_RECORDS if name == "append" else 1) for name, s in samples.items()}
    out["raw_put_batch"]["bytes"] = len(whole)
    return out


# ---- RocksDB ----------------------------------------------------------------------------------------------


def raw_rocks_batches(path: Path, values: list[bytes], count: int, budget_s: float) -> list[float]:
    """Seconds per synced WriteBatch of len(values) records, on a fresh raw rocksdict database."""
    options = rocksdict.Options(raw_mode=True)
    options.create_if_missing(True)
    sync = rocksdict.WriteOptions()
    sync.sync = True
    db = rocksdict.Rdict(str(path), options)
    next_event = [1]

    def step() -> None:
        batch = rocksdict.WriteBatch(raw_mode=True)
        for offset, value in enumerate(values):
            batch.put((next_event[0] + offset).to_bytes(8, "big"), value)
        db.write(batch, sync)
        next_event[0] += len(values)

    try:
        return timed_loop(step, count, budget_s)
    finally:
        db.close()


def eventlog_batches(path: Path, values: list[bytes], count: int, budget_s: float) -> list[float]:
    """Seconds per EventLog.append of len(values) records, on a fresh event log."""
    with EventLog(path) as log:

        def step() -> None:
            log.append(log.last_event() + 1, values, epoch=1)

        samples = timed_loop(step, count, budget_s)
        if log.wal_syncs() < len(samples):  # otherwise we would be timing unsynced writes
            raise BenchError(f"{len(samples)} appends but only {log.wal_syncs()} WAL syncs")
    return samples


def bench_rocksdb(workdir: Path, plan: Plan, echo: Echo) -> dict[str, dict[str, float]]:
    """Raw synced WriteBatch against EventLog.append, interleaved, fresh databases every round."""
    values = [os.urandom(VALUE_BYTES) for _ in range(BATCH_RECORDS)]
    contenders = {"raw_write_batch": raw_rocks_batches, "eventlog_append": eventlog_batches}
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for i in range(plan.rounds):
        echo(f"rocksdb: round {i + 1}/{plan.rounds}")
        for name, run in contenders.items():
            path = workdir / "rocksdb" / f"{name}-{i}"
            try:
                samples[name] += run(path, values, plan.rocks_batches, plan.rocks_round_s)
            finally:
                shutil.rmtree(path, ignore_errors=True)
    return {name: summarize(s, BATCH_RECORDS) for name, s in samples.items()}


# ---- end to end -------------------------------------------------------------------------------------------


def wait_reply(peer: Peer, seen: int, deadline: float) -> float | None:
    """Arrival time (monotonic, stamped by the peer's receiver) of the first reply after `seen` replies."""
    while time.monotonic() < deadline:
        if len(peer.replies) > seen:
            return peer.replies[seen][0]
        time.sleep(POLL_S)
    return None


def measure_latency(peer: Peer, plan: Plan) -> dict[str, float]:
    """One datagram in flight at a time, at most latency_rate_per_s: send -> ack, without queueing."""
    samples: list[float] = []
    lost = 0
    interval = 1 / plan.latency_rate_per_s
    deadline = time.monotonic() + plan.latency_s
    for _ in range(math.ceil(plan.latency_s * plan.latency_rate_per_s)):
        if time.monotonic() >= deadline:
            break
        seen, sent_at = len(peer.replies), time.monotonic()
        peer.send_one()
        arrived = wait_reply(peer, seen, sent_at + ACK_TIMEOUT_S)
        if arrived is None:
            lost += 1
        else:
            samples.append(arrived - sent_at)
        time.sleep(max(0.0, sent_at + interval - time.monotonic()))
    figures = summarize(samples)
    return {"ops": figures["ops"], "p50_ms": figures["p50_ms"], "p99_ms": figures["p99_ms"], "lost": lost}


def measure_throughput(peer: Peer, plan: Plan) -> dict[str, float]:
    """Keep `window` datagrams unanswered for throughput_s; acknowledged events per second."""
    written_off = peer.sent - peer.answered()  # anything the latency run lost
    acks0, sent0 = peer.answered(), peer.sent
    started = last_progress = time.monotonic()
    last_acks, end = acks0, started + plan.throughput_s
    for _ in range(math.ceil(plan.throughput_s * 100_000)):
        now = time.monotonic()
        if now >= end:
            break
        acked = peer.answered()
        if acked != last_acks:
            last_acks, last_progress = acked, now
        elif now - last_progress > STALL_S:
            written_off, last_progress = peer.sent - acked, now
        if peer.sent - acked - written_off < plan.window:
            peer.send_one()
        else:
            time.sleep(POLL_S)
    elapsed = time.monotonic() - started
    acked = peer.answered() - acks0
    return {"seconds": elapsed, "window": plan.window, "sent": peer.sent - sent0, "acked": acked,
            "events_per_s": acked / elapsed}  # fmt: skip


def bench_e2e(workdir: Path, plan: Plan, echo: Echo) -> dict[str, dict[str, float]]:
    """A local 3-replica cluster (lease TTL 3 s) under Peer traffic; always brought down."""
    echo("e2e: starting a 3-member etcd and 3 replicas (lease TTL 3 s)")
    work = workdir / "cluster"
    peer: Peer | None = None
    try:
        state = local.up(work, replicas=3, ttl_s=3)
        peer = Peer({n["id"]: parse_hostport("udp", n["udp"]) for n in state["nodes"]})
        echo(
            f"e2e: latency, one datagram at a time, <= {plan.latency_rate_per_s:.0f}/s for {plan.latency_s} s"
        )
        latency = measure_latency(peer, plan)
        echo(f"e2e: throughput, {plan.window} datagrams in flight for {plan.throughput_s} s")
        throughput = measure_throughput(peer, plan)
        time.sleep(0.3)  # late replies, for the double-answer count
        throughput["double_answers"] = len(peer.doubles())
    finally:
        if peer is not None:
            peer.close()
        local.down(work)
    if not latency["ops"] or not throughput["acked"]:
        raise BenchError(f"the cluster acknowledged nothing; see the node logs in {work}")
    return {"latency": latency, "throughput": throughput}


# ---- the run ----------------------------------------------------------------------------------------------


def ratios(etcd: dict, rocks: dict, e2e: dict) -> dict[str, float]:
    """Seguro over its raw baseline: > 1 means more (time or rate) than the baseline."""
    put, append = etcd["raw_put_1k"], etcd["append"]
    return {
        "etcd_append_events_per_s_over_raw_puts_per_s": append["items_per_s"] / put["ops_per_s"],
        "etcd_append_p50_over_raw_put_p50": append["p50_ms"] / put["p50_ms"],
        "etcd_append_p50_over_raw_batch_put_p50": append["p50_ms"] / etcd["raw_put_batch"]["p50_ms"],
        "eventlog_over_raw_write_batch_events_per_s": (
            rocks["eventlog_append"]["items_per_s"] / rocks["raw_write_batch"]["items_per_s"]
        ),
        "e2e_latency_p50_over_raw_put_p50": e2e["latency"]["p50_ms"] / put["p50_ms"],
        "e2e_latency_p99_over_raw_put_p99": e2e["latency"]["p99_ms"] / put["p99_ms"],
        "e2e_events_per_s_over_raw_puts_per_s": e2e["throughput"]["events_per_s"] / put["ops_per_s"],
    }


def run_bench(workdir: Path | None, quick: bool, echo: Echo) -> dict:
    """Run all three pairs in a fresh directory (under `workdir`, kept; else a temporary one, removed)."""
    plan = QUICK if quick else FULL
    parent = workdir.resolve() if workdir is not None else None
    if parent is not None:
        parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="seguro-bench-", dir=parent))
    echo(f"Seguro bench ({'quick' if quick else 'full'}) in {work}")
    started = time.monotonic()
    try:
        etcd = bench_etcd(work, plan, echo)
        rocks = bench_rocksdb(work, plan, echo)
        e2e = bench_e2e(work, plan, echo)
    finally:
        if parent is None:
            shutil.rmtree(work, ignore_errors=True)
    return {"quick": quick, "seconds": round(time.monotonic() - started, 1), "workdir": str(work),
            "value_bytes": VALUE_BYTES, "batch_records": BATCH_RECORDS,
            "etcd": etcd, "rocksdb": rocks, "e2e": e2e, "ratios": ratios(etcd, rocks, e2e)}  # fmt: skip


# ---- presentation -----------------------------------------------------------------------------------------


def _num(value: float | None, digits: int = 0) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:,.{digits}f}"


def _row(name: str, figures: dict, items: str = "") -> str:
    rate = figures.get("items_per_s", figures.get("events_per_s"))
    return (f"  {name:<36} {_num(figures.get('p50_ms'), 2):>9} {_num(figures.get('p99_ms'), 2):>9} "
            f"{_num(figures.get('ops_per_s')):>9} {_num(rate):>10} {items}").rstrip()  # fmt: skip


def table(result: dict) -> list[str]:
    """The figures as aligned text lines: one row per contender, then the ratios."""
    etcd, rocks, e2e, r = result["etcd"], result["rocksdb"], result["e2e"], result["ratios"]
    n = result["batch_records"]
    lines = [f"  {'':<36} {'p50 ms':>9} {'p99 ms':>9} {'ops/s':>9} {'events/s':>10}",
             "etcd (3 members, fresh)",
             _row("raw put 1 KiB", etcd["raw_put_1k"]),
             _row(f"raw put {etcd['raw_put_batch']['bytes'] // 1024} KiB (one batch's bytes)",
                  etcd["raw_put_batch"]),
             _row(f"Coordinator.append {n} x 1 KiB", etcd["append"]),
             "RocksDB (sync=True)",
             _row(f"raw WriteBatch {n} x 1 KiB", rocks["raw_write_batch"]),
             _row(f"EventLog.append {n} x 1 KiB", rocks["eventlog_append"]),
             "end to end (3 replicas, TTL 3 s)",
             _row("datagram -> ack, one at a time", e2e["latency"],
                  f"({e2e['latency']['ops']} acked, {e2e['latency']['lost']} lost)"),
             _row(f"{e2e['throughput']['window']} datagrams in flight", e2e["throughput"],
                  f"({e2e['throughput']['acked']} acked of {e2e['throughput']['sent']} sent "
                  f"in {e2e['throughput']['seconds']:.1f} s)"),
             "ratios (Seguro / raw)"]  # fmt: skip
    lines += [f"  {name:<52} {value:8.3f}" for name, value in r.items()]
    lines.append(f"total {result['seconds']} s")
    return lines


def finite(value: object) -> object:
    """NaN (no sample) as null and floats rounded: strict JSON that other tools read without surprises."""
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else round(value, 4)
    return value


def print_result(result: dict, echo: Echo, as_json: bool) -> None:
    echo("")
    for line in table(result):
        echo(line)
    if as_json:
        echo(json.dumps(finite(result)))
