"""EventLog.append against raw rocksdict, side by side in one run, on the same disk.

Why: the adapter must cost nothing next to the fsync it wraps. Three contenders, each writing 1 KiB
values with sync=True into a fresh database, interleaved over several rounds so disk drift hits all alike:
  raw-put    one synced put per value (what an unbatched log would pay)
  raw-batch  one synced WriteBatch per 100 values
  eventlog   EventLog.append of 100 records (one synced WriteBatch plus the adapter's checks)

Run: .venv/bin/python benchmarks/bench_eventlog.py [--batches 100] [--puts 500] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import rocksdict

from seguro.eventlog import EventLog

VALUE_BYTES = 1024
BATCH_SIZE = 100


def _values(count: int) -> list[bytes]:
    return [os.urandom(VALUE_BYTES) for _ in range(count)]


def _raw_db(path: Path) -> tuple[rocksdict.Rdict, rocksdict.WriteOptions]:
    options = rocksdict.Options(raw_mode=True)
    options.create_if_missing(True)
    sync = rocksdict.WriteOptions()
    sync.sync = True
    return rocksdict.Rdict(str(path), options), sync


def raw_put(path: Path, count: int) -> float:
    """Seconds for `count` synced single puts."""
    db, sync = _raw_db(path)
    values = _values(count)
    start = time.perf_counter()
    for event, value in enumerate(values, 1):
        db.put(event.to_bytes(8, "big"), value, sync)
    elapsed = time.perf_counter() - start
    db.close()
    return elapsed


def raw_batch(path: Path, batches: int) -> float:
    """Seconds for `batches` synced WriteBatches of BATCH_SIZE values."""
    db, sync = _raw_db(path)
    values = _values(BATCH_SIZE)
    start = time.perf_counter()
    for batch_index in range(batches):
        batch = rocksdict.WriteBatch(raw_mode=True)
        for offset, value in enumerate(values):
            batch.put((batch_index * BATCH_SIZE + offset + 1).to_bytes(8, "big"), value)
        db.write(batch, sync)
    elapsed = time.perf_counter() - start
    db.close()
    return elapsed


def eventlog_append(path: Path, batches: int) -> float:
    """Seconds for `batches` EventLog.append calls of BATCH_SIZE records."""
    values = _values(BATCH_SIZE)
    with EventLog(path) as log:
        start = time.perf_counter()
        for batch_index in range(batches):
            log.append(batch_index * BATCH_SIZE + 1, values)
        elapsed = time.perf_counter() - start
        syncs = log.wal_syncs()
    if syncs < batches:
        raise RuntimeError(f"expected >= {batches} WAL syncs, RocksDB counted {syncs}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", type=int, default=100, help="batches of 100 per round")
    parser.add_argument("--puts", type=int, default=500, help="single puts per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None, help="where to write (default: a temp dir)")
    args = parser.parse_args()
    contenders: dict[str, tuple[Callable[[Path, int], float], int]] = {
        "raw-put": (raw_put, args.puts),
        "raw-batch": (raw_batch, args.batches),
        "eventlog": (eventlog_append, args.batches),
    }
    rates: dict[str, list[float]] = {name: [] for name in contenders}
    with tempfile.TemporaryDirectory(dir=args.dir) as scratch:
        for round_index in range(args.rounds):
            for name, (run, count) in contenders.items():
                values = count if name == "raw-put" else count * BATCH_SIZE
                seconds = run(Path(scratch) / f"{name}-{round_index}", count)
                rates[name].append(values / seconds)
    print(f"{VALUE_BYTES} B values, sync=True, batches of {BATCH_SIZE}, median of {args.rounds} rounds")
    for name, samples in rates.items():
        per_write = (
            "" if name == "raw-put" else f"  ({statistics.median(samples) / BATCH_SIZE:9.1f} batches/s)"
        )
        print(f"{name:10s} {statistics.median(samples):12.0f} values/s{per_write}")
    eventlog, batch = statistics.median(rates["eventlog"]), statistics.median(rates["raw-batch"])
    print(f"eventlog / raw-batch = {eventlog / batch:.3f}")
    print(f"raw-batch / raw-put  = {batch / statistics.median(rates['raw-put']):.1f}")


if __name__ == "__main__":
    main()
