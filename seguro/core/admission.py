"""Which pushed batches a follower stores: only from the master etcd shows, of its own genesis,
contiguous with its log. Anything else is refused with a reason and changes nothing."""

from __future__ import annotations

from dataclasses import dataclass

from seguro.core import messages as m


@dataclass(frozen=True)
class Standing:
    """What the follower knows when a batch arrives."""

    stopped: str  # why it stopped applying, '' when it did not
    waiting: bool  # no genesis seen yet
    genesis: str | None
    highest_epoch: int
    shown_epoch: int  # the master key's epoch as etcd last showed it (0: none)
    own_epoch: int  # this node's own term, when it is master or promoting (0: none)
    durable: int
    shown_master: str  # who holds the master key at shown_epoch, as etcd showed it ("": nobody)


def why_refuse_push(ev: m.BatchReceived, me: Standing) -> str:
    """'' when the batch may be stored, else why not. An absurd epoch from a hostile peer is refused
    without raising `highest_epoch` (which would refuse the real master's pushes for good)."""
    sender = ev.sender_epoch
    if me.stopped:
        return f"replica stopped: {me.stopped}"
    if me.waiting:
        return "replica has not seen the ship's genesis in etcd yet"
    if ev.sender_genesis != me.genesis:
        return f"push for genesis {ev.sender_genesis or '(none)'}, this replica's is {me.genesis}"
    if sender < me.highest_epoch:
        return f"stale epoch {sender} < {me.highest_epoch}"
    if sender != me.shown_epoch:
        return f"epoch {sender} is not the master's epoch etcd shows here ({me.shown_epoch or 'none'})"
    if ev.sender_id != me.shown_master:
        return f"pushed by {ev.sender_id or '(no one)'}; etcd shows {me.shown_master} as master at {sender}"
    if me.own_epoch:
        return f"this node is master at epoch {me.own_epoch}"
    if ev.batch.first_event > me.durable + 1:
        return f"gap: the batch starts at event {ev.batch.first_event}, the log ends at {me.durable}"
    return ""
