"""Seguro against raw etcd and raw RocksDB, side by side in one run: the same as `seguro bench`.

Run: .venv/bin/python benchmarks/bench_cluster.py [--quick] [--json] [--workdir DIR]
The measuring lives in seguro/ops/bench.py so that the installed `seguro` command can run it too.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `seguro` importable from the checkout
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from seguro.cli.ops import bench  # noqa: E402

if __name__ == "__main__":
    bench(prog_name="bench_cluster.py")
