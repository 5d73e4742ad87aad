"""The node: one replica of one ship. The imperative shell around `seguro.core.replication.Replica`.

One driver thread owns the core: it takes an event from its queue (or a tick), asks the core what to do,
and performs the `Ready` in order — local log writes and acks at once, etcd requests on worker threads
(one etcd append in flight, lease traffic on its own thread so a slow append never starves keepalives),
runtime requests on the runtime thread, effects out of the UDP socket after one last look at the
self-fencing deadline. Every result comes back through the same queue.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import seguro
from seguro.core import messages as m
from seguro.core.clock import Clock
from seguro.core.replication import MASTER, Replica
from seguro.invariant import InvariantViolation
from seguro.node import reinit
from seguro.node.behn import Behn
from seguro.node.bootstrap import KeptSnapshots
from seguro.node.clock import SystemClock
from seguro.node.config import NodeConfig, core_config, shared_settings
from seguro.node.emitter import Emitter
from seguro.node.etcd.coordinator import Coordinator, MasterInfo
from seguro.node.etcd.schema import SPACE_HELP
from seguro.node.etcd_tasks import EtcdTasks, quietly
from seguro.node.eventlog import EventLog
from seguro.node.galaxies import Galaxies
from seguro.node.http import HttpEndpoint, Probe
from seguro.node.log_only import NoRuntime, PierTail
from seguro.node.mars_runtime import MarsRuntime, pier_meta
from seguro.node.metrics import NodeMetrics
from seguro.node.notify import Notifier
from seguro.node.peer_fetch import PeerFetcher
from seguro.node.push import PushStream, PushStreams
from seguro.node.reload import reload_settings
from seguro.node.runtime import Job, RuntimeWorker
from seguro.node.scry import ScryAnswers
from seguro.node.services import health_of, serve, set_serving
from seguro.node.udp import Ingress, vere_filter
from seguro.node.wire import Freshness, Identity
from seguro.urbit import ames
from seguro.urbit.launch import launch
from seguro.urbit.noun import cue
from seguro.urbit.record import split_event

log = logging.getLogger(__name__)

TICK_S = 0.05
MAX_QUEUED_DATAGRAMS = 10_000  # beyond this, datagrams are dropped at the door (Ames retransmits)
STATUS_EVERY_S = 1.0
VERSION = seguro.__version__  # in every status: a rolling upgrade shows mixed versions
CATCH_UP_QUEUED = 64  # catch-up batches waiting for the driver, at most
CATCH_UP_WAIT_S = 60.0


class NodeHalted(RuntimeError):
    """The node must not run at all: its data directory belongs to another genesis of the ship than etcd
    holds (etcd wiped or restored, or the wrong cluster). Restarting does not help; an operator must."""


class Node:
    def __init__(
        self, cfg: NodeConfig, clock: Clock | None = None, settings: Callable[[], NodeConfig] | None = None
    ) -> None:
        self.cfg, self.node_id, self.clock = cfg, cfg.node_id, clock or SystemClock()
        self.read_settings = settings  # how `seguro reload` and SIGHUP read the settings again
        cfg.data_dir.mkdir(parents=True, exist_ok=True)
        self.eventlog = EventLog(cfg.data_dir)
        try:
            self._check_ship()
            self._setup(cfg)
        except BaseException:  # a port in use, say: release what was taken, then report
            for name in ("ingress", "http", "coord", "_lease_coord"):
                if getattr(self, name, None) is not None:
                    getattr(self, name).close()
            self.eventlog.close()
            raise

    def _setup(self, cfg: NodeConfig) -> None:
        self.launch = launch(cfg.runtime, cfg.data_dir / "pier")
        self.snapshots = KeptSnapshots(cfg, self.eventlog, self.launch)  # an empty log starts from a peer's
        durable, genesis = self.eventlog.last_event(), self.eventlog.meta().get("genesis")
        self.core = Replica(core_config(cfg), durable_event=durable, genesis=genesis)
        self._stop = threading.Event()
        self._fatal: InvariantViolation | NodeHalted | None = None
        # What Status answers until the first status round: the gRPC server starts before the loop does.
        self._status: dict[str, object] = {**self.core.status(self.clock.now_s()), "effects_sent": 0}
        # Control events (etcd replies, runtime results) go before datagrams: a flood must never delay
        # the keepalive replies that keep the deadline, nor the commits that release effects.
        self._events: queue.PriorityQueue[tuple[int, int, m.Event]] = queue.PriorityQueue()
        self._event_seq = itertools.count()
        self._datagrams_queued = 0
        self._catch_up_room = threading.BoundedSemaphore(CATCH_UP_QUEUED)
        self.datagrams_shed = 0
        self._streams: dict[int, queue.Queue[m.AckOut]] = {}
        self._stream_ids = itertools.count(1)
        self._lock = threading.Lock()
        self.appended = threading.Condition()
        self.coord = Coordinator(list(cfg.etcd), cfg.ship, keyring=cfg.keyring())
        # Keepalives fail fast and never queue behind other work: a retried keepalive would carry a stale
        # send time, and the next tick sends a fresh one anyway.
        self._lease_coord = Coordinator(list(cfg.etcd), cfg.ship, timeout_s=max(0.5, cfg.lease_ttl_s / 3),
                                        retry_budget_s=0.0)  # fmt: skip
        self._etcd = ThreadPoolExecutor(1, thread_name_prefix="seguro-etcd")
        self._lease = ThreadPoolExecutor(1, thread_name_prefix="seguro-lease")
        self._background = ThreadPoolExecutor(1, thread_name_prefix="seguro-status")
        self._status_busy = threading.Event()
        self.runtime = self._make_runtime(cfg)
        filtering = self.launch.vere if cfg.ames_filter is None else cfg.ames_filter
        datagram_filter = vere_filter(pier_meta(self.eventlog).who) if filtering else None
        self.scry = ScryAnswers(self.runtime, self._serving_epoch, self.clock)  # remote scry: by a peek
        self.ingress = Ingress(cfg.udp_hostport, self.clock, self.post, datagram_filter, self.scry.hear)
        self.behn = Behn(self.clock, self.post)
        self.galaxies = Galaxies(cfg.galaxy_domain, cfg.galaxy_local)
        self._server, grpc_port = serve(self, cfg.grpc, cfg.max_event_bytes)
        self.grpc_address = cfg.advertised_grpc(grpc_port)
        self.udp_address = "{}:{}".format(*self.ingress.address)
        self.peers = PushStreams(self.node_id, self.serves_epoch, self._start_push)
        peer_fetch = PeerFetcher(self.identity, self.coord.replicas, self.post, cfg.max_event_bytes)
        addresses = {"grpc": self.grpc_address, "udp": self.udp_address}
        self.metrics = NodeMetrics(self.status)
        self.tasks = EtcdTasks(self.coord, self._lease_coord, self.clock, self.post, peer_fetch.fetch,
                               self.node_id, cfg.lease_ttl_s, addresses, self.metrics.committed)  # fmt: skip
        self.http = None if not cfg.http else HttpEndpoint(cfg.http_hostport, self.probe, self.metrics.render,
                                                           cfg.replica_max_lag, self.metrics.content_type)
        self.http_address = self.http.address if self.http is not None else ""
        self.emitter = Emitter(self.ingress, self.behn, self.galaxies, self.clock)
        self.peer_refusals = 0
        self._registry: dict[str, dict] = {}
        self._controls: dict[str, dict] = {}  # the operators' pause and candidate, as last read
        self._etcd_alarms: list[str] = []
        self._freshness = Freshness(fresh_s=max(3.0, 3 * STATUS_EVERY_S))
        self._watch = None
        self.notifier = Notifier()
        self.restart_requested = False  # `seguro reinit`: the process starts itself again on its way out
        self.started_at = time.time()  # in the status: a restart shows (seguro reinit waits on it)

    def _make_runtime(self, cfg: NodeConfig) -> RuntimeWorker | NoRuntime:
        """The ship's runtime; none for a log-only replica; a running vere's pier for its follower."""
        if cfg.follow_pier:
            return PierTail(Path(cfg.follow_pier), self.eventlog, self.post, self._serving_epoch, self.die)
        if cfg.log_only:
            return NoRuntime(self.eventlog, self.post)
        kind = MarsRuntime if self.launch.protocol == 2 else RuntimeWorker
        return kind(
            self.eventlog, self.post, die=self.die, pier=cfg.data_dir / "pier", argv=self.launch.argv,
            stderr_path=cfg.data_dir / "runtime.log", timeout_s=cfg.runtime_timeout_s,
            liveness_s=cfg.runtime_liveness_s, snapshot_every=cfg.snapshot_every,
            on_snapshot=self.snapshots.keep,
        )  # fmt: skip

    def _serving_epoch(self) -> int:
        """The epoch while master with a ready runtime, else 0 (read from the tailer's thread)."""
        core = self.core
        epoch = core.epoch
        return epoch if core.role == MASTER and core.runtime_ready else 0

    def _start_push(self, follower_id: str, address: str, epoch: int) -> PushStream:
        return PushStream(
            follower_id, address, self.eventlog, epoch, self.identity(), self.post, self.appended,
            self.cfg.max_event_bytes, self.die,
        )  # fmt: skip

    def _check_ship(self) -> None:
        meta = self.eventlog.meta()
        if meta.get("who") not in (None, self.cfg.ship):
            raise ValueError(
                f"data dir {self.cfg.data_dir} holds ship {meta['who']!r}, not {self.cfg.ship!r}"
            )
        if meta.get("who") is None:
            self.eventlog.set_meta(who=self.cfg.ship)

    # ---- the driver loop ------------------------------------------------------------------------

    def post(self, event: m.Event) -> None:
        """Queue an event for the driver. A catch-up batch waits for room (at most CATCH_UP_QUEUED queued):
        a large catch-up must not pile the whole log up in memory ahead of the driver."""
        if isinstance(event, m.CatchUpFetched) and not self._catch_up_room.acquire(timeout=CATCH_UP_WAIT_S):
            raise TimeoutError(f"the driver took no catch-up batch in {CATCH_UP_WAIT_S} s")
        self._offer(event)

    def _offer(self, event: m.Event) -> bool:
        """Queue `event` for the driver; False when it is an incoming event shed at the door."""
        # Datagrams and pokes may be shed at the door; the ship's own timer events never are.
        priority = 1 if isinstance(event, m.IncomingEvent) and event.source != "behn" else 0
        if priority:
            with self._lock:
                if self._datagrams_queued >= MAX_QUEUED_DATAGRAMS:
                    self.datagrams_shed += 1
                    return False
                self._datagrams_queued += 1
        self._events.put((priority, next(self._event_seq), event))
        return True

    def _next_event(self, timeout_s: float) -> m.Event | None:
        try:
            priority, _, event = self._events.get(timeout=timeout_s)
        except queue.Empty:
            return None
        if priority:
            with self._lock:
                self._datagrams_queued -= 1
        elif isinstance(event, m.CatchUpFetched):
            self._catch_up_room.release()
        return event

    def _submit(self, executor: ThreadPoolExecutor, fn: Callable[..., None], *args: object,
                fail: Callable[[str], m.Event] | None = None) -> None:  # fmt: skip
        """Run fn on a worker; if it raises anything, log it and tell the core, so no in-flight flag of
        the core waits forever on a reply that will never come."""

        def task() -> None:
            try:
                fn(*args)
            except InvariantViolation as e:
                self.die(e)
            except Exception as e:
                if self._stop.is_set():
                    return  # shutting down: the adapters are closing under it
                log.exception("worker task failed", extra={"task": getattr(fn, "__name__", str(fn))})
                if fail is not None:
                    self.post(fail(f"{type(e).__name__}: {e}"))

        executor.submit(task)

    def run(self) -> None:
        """Serve until stop(); the caller's thread becomes the driver thread."""
        self._submit(self._background, self.tasks.observe_genesis)
        self.runtime.start()
        self._watch = self.coord.watch_master(self._on_master)
        log.info("node up", extra={"id": self.node_id, "grpc": self.grpc_address, "udp": self.udp_address})
        next_status_s = next_tick_s = 0.0
        try:
            while not self._stop.is_set():
                event = self._next_event(max(0.0, next_tick_s - self.clock.now_s()))
                now_s = self.clock.now_s()
                role = self.core.role
                if event is not None:
                    self._perform(self.core.step(event, now_s))
                if now_s >= next_tick_s:  # ticks run under load too: keepalives must never wait on traffic
                    next_tick_s = now_s + TICK_S
                    self._perform(self.core.tick(now_s))
                if role == MASTER and self.core.role != MASTER:
                    self.behn.clear()  # a fenced node's timer must never wake its ship
                self.scry.flush(self.core.released_through(), self.core.lease_deadline_s(), self.emitter.send)
                if now_s >= next_status_s or self.core.role != role:  # a role change is shown at once
                    next_status_s = now_s + STATUS_EVERY_S
                    self._publish_status(now_s)
                    self.runtime.snapshot_if_due()
        finally:
            self._shutdown()
        if self._fatal is not None:
            raise self._fatal

    def die(self, error: InvariantViolation) -> None:
        """An invariant broke on a worker thread: stop the node loudly, as if it broke on the driver thread
        (`run` re-raises it after shutting down), rather than let a retry loop step over it."""
        log.critical("invariant violated: stopping the node", extra={"error": str(error)})
        if self._fatal is None:
            self._fatal = error
        self._stop.set()

    def stop(self) -> None:
        self._stop.set()

    def _perform(self, ready: m.Ready) -> None:
        if ready.record_genesis is not None:  # before anything of the ship reaches the log
            vere = self.tasks.genesis_vere()
            pier = {**vere, "snapshot": []} if vere else None  # an imported ship: export can write it back
            self.eventlog.set_meta(genesis=ready.record_genesis, pier=pier)
        for batch in ready.persist:
            self.eventlog.append(batch.first_event, batch.records, epoch=batch.epoch or None)
            with self.appended:
                self.appended.notify_all()
        for ack in ready.acks:
            with self._lock:
                stream = self._streams.get(ack.stream_id)
            if stream is not None:
                stream.put(ack)
        if ready.commit is not None:
            seq = ready.commit.seq
            self._submit(
                self._etcd, self.tasks.commit, ready.commit, fail=lambda r: m.CommitDone(seq, False, error=r)
            )
        for _, datagrams in ready.release:
            self.emitter.emit(datagrams, self.core.lease_deadline_s())
        if ready.restart_runtime:
            self.runtime.restart()
        for job in ready.run:
            self.runtime.run(job)  # type: ignore[arg-type]
        if ready.apply_to is not None:
            self.runtime.apply_to(ready.apply_to)
        if ready.record_epoch is not None:  # the promotion is done: this node serves from now on
            self.eventlog.record_epoch(*ready.record_epoch)
            if self.runtime.runs_ship:
                self.behn.born()  # as vere on every start: the ship says its timer, this master arms it
                if self.launch.protocol == 2:  # vere 4.x's ames driver says %born too; 3.x's does not
                    self.behn.born(ames.born_event)
        for job, event, reason in ready.answers:
            job.answer(event, reason)  # type: ignore[attr-defined]
        for event, reason in ready.refused:
            event.job.answer(0, reason)  # type: ignore[attr-defined]
            if event.source != "udp":  # a follower drops every datagram: that is counted, not logged
                log.warning("event refused", extra={"source": event.source, "reason": reason})
        if ready.stop:
            log.critical("replica stopped", extra={"reason": ready.stop})
        if ready.halt and self._fatal is None:
            self._fatal = NodeHalted(ready.halt)
            self._stop.set()
        self._etcd_requests(ready)

    # ---- etcd requests (worker threads) ---------------------------------------------------------

    def _etcd_requests(self, ready: m.Ready) -> None:
        tasks, lease_failed = self.tasks, m.LeaseRequestFailed
        if ready.grant_lease:
            self._submit(self._lease, tasks.grant, fail=lease_failed)
        if ready.renew_lease is not None:
            self._submit(self._lease, tasks.renew, ready.renew_lease, fail=lease_failed)
        if ready.revoke_lease is not None:
            self._submit(self._lease, tasks.revoke, ready.revoke_lease)
        if ready.campaign:
            lease_id = self.core.lease_id() or 0
            self._submit(self._etcd, tasks.campaign, lease_id, self.core.genesis,
                         fail=lambda r: m.CampaignResult(False, lease_id, error=r))  # fmt: skip
        if ready.catch_up_from is not None:
            epoch = self.core.epoch
            self._submit(self._etcd, tasks.catch_up, ready.catch_up_from, epoch,
                         fail=lambda r: m.CatchUpDone(0, epoch, error=r))  # fmt: skip
        if ready.trim_below is not None:
            self._submit(self._etcd, tasks.trim, self.core.epoch, ready.trim_below)
        if ready.resign_epoch is not None and tasks.claim_resign():
            self._submit(self._etcd, tasks.resign, ready.resign_epoch)

    def _on_master(self, info: MasterInfo | None, revision: int) -> None:
        if info is None:
            self.post(m.MasterObserved(None, 0, revision))
        else:
            self.post(m.MasterObserved(info.node_id, info.epoch, revision))

    # ---- status, streams, admin -----------------------------------------------------------------

    def status(self) -> dict[str, object]:
        with self._lock:
            return dict(self._status)

    def reload(self) -> dict[str, object]:
        """Read the settings again; apply those that can change live, name those that need a restart."""
        return reload_settings(self)

    def reinit(self, by: str) -> tuple[str, str]:
        """(why not, '') or ('', where the old data goes): then the node stops and restarts itself, and
        its empty log starts from a peer's snapshot (seguro/node/reinit.py)."""
        with self._lock:  # the check and the marker together: two requests at once cannot both pass
            why = reinit.refusal(self.core.role, dict(self._registry), self.node_id, time.time(),
                                 pending=(self.cfg.data_dir / reinit.MARKER).exists())  # fmt: skip
            aside = reinit.request(self.cfg.data_dir, by) if not why else None
        if aside is None:
            return why, ""
        log.warning("reinit: restarting to rebuild from peers", extra={"by": by, "aside": str(aside)})
        self.restart_requested = True
        self.stop()
        return "", str(aside)

    def probe(self) -> Probe:
        """What the HTTP endpoints decide on, read now (plain attribute reads of the core, as below)."""
        core = self.core
        return Probe(core.role, core.epoch, core.durable, core.committed, str(self._status.get("error", "")),
                     self._stop.is_set())  # fmt: skip

    def serves_epoch(self, epoch: int) -> bool:
        """Whether this node is master at `epoch` (read from another thread: a plain attribute read)."""
        return self.core.role == MASTER and self.core.epoch == epoch

    def _publish_status(self, now_s: float) -> None:
        status = {**self.core.status(now_s), "effects_sent": self.emitter.sent,
                  "effects_fenced": self.emitter.fenced, "grpc": self.grpc_address,
                  "udp": self.udp_address, "data": str(self.cfg.data_dir),
                  "runtime_pid": self.runtime.pid, "datagrams_shed": self.datagrams_shed,
                  "datagrams_malformed": self.ingress.malformed,
                  "effects_send_errors": self.ingress.send_errors,
                  "datagrams_filtered": dict(self.ingress.filtered), "scry": self.scry.counts(),
                  "peer_refusals": self.peer_refusals, "etcd_alarms": list(self._etcd_alarms),
                  "effects_unserved": dict(self.emitter.unserved), "snapshot_event": self.snapshots.event,
                  "bootstrapped": self.snapshots.bootstrapped, "version": VERSION,
                  "settings": shared_settings(self.cfg, self.coord.keyring),
                  "started_at": self.started_at}  # fmt: skip
        if self._etcd_alarms and not status["error"]:
            status["error"] = f"etcd alarm: {', '.join(self._etcd_alarms)}: {SPACE_HELP}"
        with self._lock:
            self._status = status
        if self.core.role != MASTER:
            self.peers.stop_all()
        if self._status_busy.is_set():
            return  # etcd is slow: skip this round rather than queue up rounds
        self._status_busy.set()
        epoch = self.core.epoch if self.core.role == MASTER else 0
        self._submit(self._background, self._publish, status, epoch)

    def _publish(self, status: dict[str, object], master_epoch: int) -> None:
        try:
            self.tasks.observe_genesis()
            alarms = self.tasks.alarms()
            if alarms is not None:
                self._etcd_alarms = alarms
            if quietly("put_replica", self.coord.put_replica, self.node_id, status):
                self.notifier.joined(status)  # systemd's READY=1: the node is seen in etcd, not just bound
            registry, controls = self.tasks.registry(), self.tasks.controls()
            if controls is not None:  # else the last ones read stand
                self._controls = controls
            if registry is not None:
                with self._lock:
                    self._registry = registry
                views = self._freshness.views(registry, self.node_id, self.clock.now_s())
                pause, candidate = self._controls.get("pause"), self._controls.get("candidate") or {}
                paused = str(pause.get("by") or "an operator") if pause is not None else ""
                self.post(m.PeersObserved(views, paused, str(candidate.get("id", ""))))
                if master_epoch:  # the same read decides whom the master pushes to
                    self.peers.refresh(master_epoch, registry)
        finally:
            self._status_busy.clear()

    def open_stream(self) -> tuple[int, queue.Queue[m.AckOut]]:
        stream_id, acks = next(self._stream_ids), queue.Queue()
        with self._lock:
            self._streams[stream_id] = acks
        return stream_id, acks

    def close_stream(self, stream_id: int) -> None:
        with self._lock:
            self._streams.pop(stream_id, None)

    def poke(self, jam: bytes, timeout_s: float = 10.0) -> tuple[int, str]:
        """Offer a jammed event to the core: (its event number, '') once committed in etcd, else (0, why
        not). The size is checked before anything is decoded, so an oversized blob is never cued."""
        if len(jam) > self.cfg.max_event_bytes:
            return 0, f"event of {len(jam)} bytes exceeds the limit of {self.cfg.max_event_bytes} bytes"
        try:
            noun = cue(jam)
            split_event(noun)
        except ValueError as e:
            return 0, f"not an event [@da [wire card]]: {e}"
        job = Job(noun, len(jam), reply=Future())
        if not self._offer(m.IncomingEvent(job, len(jam), source="admin")):
            return 0, f"node overloaded: {MAX_QUEUED_DATAGRAMS} incoming events already queued; try again"
        try:
            return job.reply.result(timeout=timeout_s)  # type: ignore[union-attr]
        except TimeoutError:
            return 0, f"no answer from the replication core in {timeout_s} s (the event may yet commit)"

    # ---- what the gRPC services ask of the node ---------------------------------------------------

    def identity(self) -> Identity:
        return Identity(self.cfg.ship, self.core.genesis or "", self.node_id)

    def registered(self, replica_id: str) -> bool:
        """Whether `replica_id` is in the ship's registry as last read (each status round)."""
        with self._lock:
            return replica_id in self._registry

    def refused(self, what: str, detail: str) -> None:
        """A peer's push or fetch was refused: counted, and logged now and then."""
        with self._lock:
            self.peer_refusals += 1
        self.tasks.warn_now_and_then(f"{what} (peer)", detail)

    def _shutdown(self) -> None:
        """Stop taking events, give the key and lease back (a quick failover), then stop every reader of
        the log before closing it."""
        set_serving(health_of(self._server), False)  # health checks: NOT_SERVING while resigning, and after
        self.notifier.stopping(restarting=self.restart_requested)
        self.ingress.close()
        if self.http is not None:
            self.http.close()
        self.behn.clear()
        if self._watch is not None:
            self._watch.cancel()
        self.peers.stop_all(join_s=2.0, close=True)
        if self.core.role == MASTER:
            quietly("resign", self.coord.resign, self.core.epoch)
        lease_id = self.core.lease_id()
        if lease_id is not None:
            quietly("revoke", self._lease_coord.revoke, lease_id)
        self._server.stop(grace=1.0).wait(3.0)
        self.runtime.stop()
        for executor in (self._etcd, self._lease, self._background):
            executor.shutdown(wait=False, cancel_futures=True)
        self.coord.close()
        self._lease_coord.close()
        self.eventlog.close()
        log.info("node down", extra={"id": self.node_id})
