"""The layout's own rules that import-linter does not check: files small enough to read in one sitting."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 500


def test_no_module_is_longer_than_one_sitting() -> None:
    generated = ROOT / "seguro" / "proto"
    sources = [
        p
        for folder in ("seguro", "tests", "benchmarks")
        for p in (ROOT / folder).rglob("*.py")
        if generated not in p.parents
    ]
    assert len(sources) > 50, "the source tree was not found"
    lines = {str(p.relative_to(ROOT)): len(p.read_text().splitlines()) for p in sources}
    too_long = {name: n for name, n in lines.items() if n > MAX_LINES}
    assert not too_long, f"split these where a concept separates (limit {MAX_LINES} lines): {too_long}"
