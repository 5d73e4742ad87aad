"""What `EventLog.verify` reports: the range and counts of a log, and its first problems."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Problem:
    """One defect found by `verify`: `kind` is gap, bad-key, corrupt, storage (RocksDB could not read on;
    nothing past it was checked) or epoch; `event` where it is."""

    kind: str
    event: int | None
    detail: str

    def __str__(self) -> str:
        where = _PROBLEM_LABELS.get(self.kind, self.kind)
        return f"{where} {self.event}: {self.detail}" if self.event is not None else f"{where}: {self.detail}"


_PROBLEM_LABELS = {"gap": "gap at", "corrupt": "corrupt record at", "bad-key": "bad key after"}
_PROBLEM_LABELS |= {"storage": "storage error at", "epoch": "epoch entry from event"}


@dataclass
class VerifyReport:
    """What `verify` found: the event range and counts, and the first problems (at most `max_problems`)."""

    first_event: int = 0
    last_event: int = 0
    count: int = 0
    total_bytes: int = 0
    epochs: int = 0
    problems: list[Problem] = field(default_factory=list)
    problems_total: int = 0
    max_problems: int = 10

    @property
    def ok(self) -> bool:
        return self.problems_total == 0

    def add(self, problem: Problem) -> None:
        """Keep the first `max_problems` problems; count them all."""
        self.problems_total += 1
        if len(self.problems) < self.max_problems:
            self.problems.append(problem)

    def summary(self) -> str:
        head = (
            f"events {self.first_event}..{self.last_event} ({self.count} records, {self.total_bytes} bytes)"
        )
        if self.ok:
            return f"ok: {head}, {self.epochs} epochs"
        first = f"; first: {self.problems[0]}" if self.problems else ""
        return f"BAD: {head}, {self.problems_total} problems{first}"

    def to_dict(self) -> dict[str, Any]:
        fields = asdict(self)
        del fields["max_problems"]
        return {"ok": self.ok} | fields


def check_record(report: VerifyReport, event: int, value: bytes, decode: Callable[[bytes], object]) -> None:
    try:
        decode(value)
    except (ValueError, RecursionError, MemoryError) as exc:
        report.add(Problem("corrupt", event, f"{type(exc).__name__}: {exc}"))
