"""Whose log this is: a replica joins the ship etcd holds, or refuses to run. It never writes over
either side: a log of another genesis, or etcd without the genesis a log belongs to, means etcd was
wiped or restored, or the node points at the wrong cluster, or the name was created again."""

from __future__ import annotations


def genesis_verdict(mine: str | None, durable_event: int, seen: str | None) -> tuple[str | None, str]:
    """(the genesis to join, why the node must not run); at most one is set, neither while etcd holds
    no ship and the log is empty (the node waits). A log with events but no genesis id cannot prove
    whose it is, so it refuses too."""
    if mine is None and durable_event > 0:
        return None, f"the local log holds events 1..{durable_event} but no genesis id"
    if seen is None and mine is not None:
        return None, (f"etcd holds no genesis for this ship, but the local log belongs to genesis {mine} "
                      "(etcd wiped or restored, or the wrong etcd cluster)")  # fmt: skip
    if seen is not None and mine is not None and seen != mine:
        return None, f"the local log belongs to genesis {mine}, etcd holds genesis {seen}"
    return seen, ""
