"""`seguro pier import` of a large pier into a node's local log, next to the raw baseline in the same
run: the same records read with a bare LMDB cursor and written to RocksDB in synced batches, unchecked.

Run: .venv/bin/python benchmarks/bench_pier_import.py [--events 1000000] [--bytes 200] [--workdir DIR]
The pier is written with raw LMDB as vere lays it out (one 4.x epoch); records are real vere records
(4-byte mug + the jam of an atom) of about --bytes each. The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `seguro` importable from the checkout
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import lmdb  # noqa: E402
import rocksdict  # noqa: E402

from seguro.ops.pier import import_to_data  # noqa: E402
from seguro.urbit.noun import jam  # noqa: E402
from tests.urbit.piers import PierSpec, env, put_meta  # noqa: E402


def records(count: int, size: int) -> list[bytes]:
    """`count` distinct records of about `size` bytes: the jam of one atom, its middle bytes varied (any
    bits there keep it a valid jam of an atom of the same length)."""
    template = bytearray(jam(int.from_bytes(bytes(range(1, size - 4)) + b"\x7f", "little")))
    out = []
    for i in range(count):
        template[8:16] = i.to_bytes(8, "little")
        out.append(b"\x00\x00\x00\x00" + bytes(template))
    return out


def build_pier(pier: Path, data: list[bytes]) -> None:
    log = pier / ".urb" / "log"
    for path in (log, log / "0i0"):
        e = env(path)
        put_meta(e, PierSpec())
        if path.name == "0i0":
            db = e.open_db(b"EVENTS", integerkey=True)
            for start in range(0, len(data), 100_000):
                chunk = data[start : start + 100_000]
                pairs = [((start + i + 1).to_bytes(8, "little"), r) for i, r in enumerate(chunk)]
                with e.begin(db=db, write=True) as txn:
                    txn.cursor().putmulti(pairs, append=True)
        e.close()
    (log / "0i0" / "epoc.txt").write_text("2")
    (log / "0i0" / "vere.txt").write_text("4.5")


def raw_copy(pier: Path, target: Path) -> float:
    """Seconds to read the pier's EVENTS with a bare cursor and write them to RocksDB, 10,000 a synced
    batch."""
    started = time.perf_counter()
    e = lmdb.open(str(pier / ".urb" / "log" / "0i0"), max_dbs=2, readonly=True, map_size=1 << 40)
    db = rocksdict.Rdict(str(target), rocksdict.Options(raw_mode=True))
    sync = rocksdict.WriteOptions()
    sync.sync = True
    try:
        with e.begin(db=e.open_db(b"EVENTS", integerkey=True, create=False)) as txn:
            batch = rocksdict.WriteBatch(raw_mode=True)
            for n, (key, value) in enumerate(txn.cursor(), start=1):
                batch.put(bytes(reversed(key)), value)
                if n % 10_000 == 0:
                    db.write(batch, sync)
                    batch = rocksdict.WriteBatch(raw_mode=True)
            db.write(batch, sync)
    finally:
        db.close()
        e.close()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--bytes", type=int, default=200)
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="seguro-import-"))
    data = records(args.events, args.bytes)
    build_pier(work / "pier", data)
    size = sum(len(r) for r in data)
    del data
    raw_s = raw_copy(work / "pier", work / "raw")
    started = time.perf_counter()
    report = import_to_data(work / "pier", work / "node")
    seguro_s = time.perf_counter() - started
    assert report.last_event == args.events, report.problem
    result = {"events": args.events, "bytes": size, "seguro_s": round(seguro_s, 2),
              "raw_s": round(raw_s, 2), "seguro_events_per_s": round(args.events / seguro_s),
              "raw_events_per_s": round(args.events / raw_s),
              "ratio": round(raw_s / seguro_s, 2)}  # fmt: skip
    print(f"pier import: {result['seguro_events_per_s']:,} events/s ({seguro_s:.1f} s); raw LMDB -> RocksDB: "
          f"{result['raw_events_per_s']:,} events/s ({raw_s:.1f} s); Seguro runs at {result['ratio']}x raw")
    print(json.dumps(result))
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
