"""EventLog.append against raw rocksdict, side by side in one run, on the same disk.

Why: the adapter must cost nothing next to the fsync it wraps. Three contenders, each writing 1 KiB
values with sync=True into a fresh database, interleaved over several rounds so disk drift hits all alike:
  raw-put    one synced put per value (what an unbatched log would pay)
  raw-batch  one synced WriteBatch per 100 values        (seguro.ops.bench.raw_rocks_batches)
  eventlog   EventLog.append of 100 records              (seguro.ops.bench.eventlog_batches)
`seguro bench` runs the last two as well; this script adds the unbatched baseline.

Run: .venv/bin/python benchmarks/bench_eventlog.py [--batches 100] [--puts 500] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import rocksdict

if __package__ in (None, ""):  # run as a script: make `seguro` importable from the checkout
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from seguro.ops.bench import BATCH_RECORDS, VALUE_BYTES, eventlog_batches, raw_rocks_batches  # noqa: E402

BUDGET_S = 60.0


def raw_puts(path: Path, count: int) -> float:
    """Values per second of `count` synced single puts on a fresh database."""
    options = rocksdict.Options(raw_mode=True)
    options.create_if_missing(True)
    sync = rocksdict.WriteOptions()
    sync.sync = True
    db = rocksdict.Rdict(str(path), options)
    try:
        start = time.perf_counter()
        for event in range(1, count + 1):
            db.put(event.to_bytes(8, "big"), os.urandom(VALUE_BYTES), sync)
        return count / (time.perf_counter() - start)
    finally:
        db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", type=int, default=100, help="batches of 100 per round")
    parser.add_argument("--puts", type=int, default=500, help="single puts per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None, help="where to write (default: a temp dir)")
    args = parser.parse_args()
    values = [os.urandom(VALUE_BYTES) for _ in range(BATCH_RECORDS)]
    rates: dict[str, list[float]] = {"raw-put": [], "raw-batch": [], "eventlog": []}
    with tempfile.TemporaryDirectory(dir=args.dir) as scratch:
        for i in range(args.rounds):
            rates["raw-put"].append(raw_puts(Path(scratch) / f"put-{i}", args.puts))
            for name, run in (("raw-batch", raw_rocks_batches), ("eventlog", eventlog_batches)):
                seconds = run(Path(scratch) / f"{name}-{i}", values, args.batches, BUDGET_S)
                rates[name].append(len(seconds) * BATCH_RECORDS / sum(seconds))
    median = {name: statistics.median(samples) for name, samples in rates.items()}
    print(f"{VALUE_BYTES} B values, sync=True, batches of {BATCH_RECORDS}, median of {args.rounds} rounds")
    for name, rate in median.items():
        print(f"{name:10s} {rate:12.0f} values/s")
    print(f"eventlog / raw-batch = {median['eventlog'] / median['raw-batch']:.3f}")
    print(f"raw-batch / raw-put  = {median['raw-batch'] / median['raw-put']:.1f}")


if __name__ == "__main__":
    main()
