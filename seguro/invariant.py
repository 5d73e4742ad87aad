"""Invariants that must never break.

`assert` vanishes under `python -O`; these checks do not. A violated invariant means the node's view
of the log is wrong, and continuing would corrupt a log or double-boot a ship, so the node stops loudly.
"""

from __future__ import annotations


class InvariantViolation(RuntimeError):
    """A must-never-happen condition held. Never caught by the node: it stops the process."""


def require(condition: bool, message: str, **context: object) -> None:
    """Raise InvariantViolation with `message` and `context` unless `condition` holds."""
    if not condition:
        detail = " ".join(f"{k}={v!r}" for k, v in context.items())
        raise InvariantViolation(f"{message} {detail}".strip())
