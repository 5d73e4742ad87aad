"""Throughput of jam, cue and mug on the shapes an event log holds: one big atom, one long list.

Run: `.venv/bin/python -m benchmarks.bench_noun` (or as a script). Prints figures; not a test.
Targets: 1 MiB atom >= 20 MB/s for jam and cue; 100,000-element list >= 200,000 cells/s for jam and cue.
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `seguro` importable from the checkout
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from seguro.urbit.noun import cue, from_list, jam, mug  # noqa: E402

REPEATS = 5


def best_of_s(fn: Callable[[], object], repeats: int = REPEATS) -> float:
    """Fastest of `repeats` runs: the least disturbed by other work on a shared machine."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def bench_atom(size_bytes: int = 1 << 20) -> dict[str, float]:
    atom = random.Random(1).getrandbits(size_bytes * 8) | (1 << (size_bytes * 8 - 1))
    data = jam(atom)
    mb = size_bytes / 1e6
    return {
        "jam_MBps": mb / best_of_s(lambda: jam(atom)),
        "cue_MBps": mb / best_of_s(lambda: cue(data)),
        "mug_MBps": mb / best_of_s(lambda: mug(atom)),
    }


def bench_list(cells: int = 100_000) -> dict[str, float]:
    rng = random.Random(2)
    noun = from_list(rng.randrange(1 << 16) for _ in range(cells))
    data = jam(noun)
    return {
        "jam_cells_per_s": cells / best_of_s(lambda: jam(noun)),
        "cue_cells_per_s": cells / best_of_s(lambda: cue(data)),
        "mug_cells_per_s": cells / best_of_s(lambda: mug(noun)),
    }


def bench_event(count: int = 2000) -> dict[str, float]:
    """Event-shaped nouns: [@da [wire card]] with a ~1 KiB packet, jammed one at a time."""
    rng = random.Random(3)
    events = [
        (
            (0x8000000D_00000000 + i) << 64,
            (from_list([0x61, 0x73656D61]), (0x72616568, ((0x1234, 0), rng.getrandbits(8 * 1024)))),
        )
        for i in range(count)
    ]
    blobs = [jam(e) for e in events]
    return {
        "jam_events_per_s": count / best_of_s(lambda: [jam(e) for e in events], 3),
        "cue_events_per_s": count / best_of_s(lambda: [cue(b) for b in blobs], 3),
    }


def main() -> None:
    print(f"python {sys.version.split()[0]}")
    for name, figures in (
        ("1 MiB atom", bench_atom()),
        ("100k list", bench_list()),
        ("events", bench_event()),
    ):
        line = "  ".join(f"{k}={v:,.0f}" if v >= 100 else f"{k}={v:.1f}" for k, v in figures.items())
        print(f"{name:>11}: {line}")


if __name__ == "__main__":
    main()
