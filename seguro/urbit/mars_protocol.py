"""King <-> worker messages of protocol 2 (vere >= 4.0: pkg/vere/mars.c is the worker, lord.c the king),
as builders for what the king sends and pure parsers for what the worker answers.

Protocol 2 differs from protocol 1 (serf_protocol) where it matters to Seguro: the king sends an ovum
without a time (`[%poke mil ovum]`; the worker stamps it), the worker writes each event to its own LMDB
log and answers only once that write is durable, and the answer carries the effects but neither the
event number nor the logged job (a crash is replaced by a %crud event the king never sees): the king
reads the record from the worker's log. Loobeans: %.y is 0, %.n is 1.

Sources (tag vere-v4.5): the %ripe in `u3_mars_work`, the writs in `_mars_work`, the answers in
`_mars_fact`/`_mars_gift`/`_mars_flush`; the king's side in lord.c `_lord_writ_make`, `_lord_plea_*`.
"""

from __future__ import annotations

from dataclasses import dataclass

from seguro.urbit.noun import Noun, cord, to_list
from seguro.urbit.serf_protocol import (
    PeekBail,
    SerfBail,
    SerfProtocolError,
    atom_within,
    describe_goof,
    effect_list,
    invalid,
    tagged,
    unpack,
)

PROTOCOL = 2
YES, NO = 0, 1  # loobeans


class PokeBail(SerfBail):
    """`[%poke %.n goofs]`: the event and its %crud both failed (or it was %evil); nothing was logged."""

    def __init__(self, goofs: list[Noun]) -> None:
        super().__init__("%poke %.n: " + "; ".join(describe_goof(g) for g in goofs))
        self.goofs = goofs


@dataclass(frozen=True)
class Ripe2:
    """The worker's hello once it has replayed its own log: `[%ripe [2 wyn] [who fak] [eve mug]]`."""

    protocol: int
    who: int
    fake: bool
    eve: int
    mug: int


# ------------------------------------------------------------------ king -> worker


def poke(ovum: Noun, mil_ms: int = 0) -> Noun:
    """`[%poke mil ovum]`: a new event; `ovum` is `[wire card]`, the worker adds the time."""
    return (cord("poke"), (mil_ms, ovum))


def peek(sam: Noun, mil_ms: int = 0) -> Noun:
    """`[%peek mil sam]` (the king sends mil 0: "XX support timeouts")."""
    return (cord("peek"), (mil_ms, sam))


def sync_save() -> Noun:
    """`[%sync %save ~]`: snapshot once every logged event is durable; answered by %sync."""
    return (cord("sync"), (cord("save"), 0))


def live_pack() -> Noun:
    return (cord("live"), (cord("pack"), 0))


def live_meld(persistent: bool = False, ford: bool = False) -> Noun:
    """`[%live %meld [per for]]`, loobeans."""
    return (cord("live"), (cord("meld"), (YES if persistent else NO, YES if ford else NO)))


def quiz(kind: str) -> Noun:
    """`[%quiz %quac ~]` (memory report) or `[%quiz %quic ~]` (open/idle words)."""
    if kind not in ("quac", "quic"):
        raise ValueError(f"quiz is %quac or %quic, not {kind!r}")
    return (cord("quiz"), (cord(kind), 0))


def exit_() -> Noun:
    """`[%exit ~]`: the worker saves a snapshot once its log is durable and exits 0 (no answer)."""
    return (cord("exit"), 0)


# ------------------------------------------------------------------ worker -> king


def parse_ripe2(message: Noun) -> Ripe2:
    """`[%ripe [pro wyn] [who fak] [eve mug]]`: pro a byte (must be 2), who 128 bits, fak a loobean,
    eve 64 bits, mug 32 bits (lord.c `_lord_plea_ripe`)."""
    ver, idn, pos = unpack(tagged(message, "ripe", "%ripe"), 3, "%ripe", message)
    pro, _wyn = unpack(ver, 2, "%ripe", message)
    who, fak = unpack(idn, 2, "%ripe", message)
    eve, mug = unpack(pos, 2, "%ripe", message)
    if fak not in (YES, NO):
        raise invalid("%ripe", message)
    ripe = Ripe2(
        protocol=atom_within(pro, 8, "%ripe", message),
        who=atom_within(who, 128, "%ripe", message),
        fake=fak == YES,
        eve=atom_within(eve, 64, "%ripe", message),
        mug=atom_within(mug, 32, "%ripe", message),
    )
    if ripe.protocol != PROTOCOL:
        raise SerfProtocolError(f"unsupported worker protocol {ripe.protocol} (need {PROTOCOL})")
    return ripe


def parse_poke(message: Noun) -> list[Noun]:
    """`[%poke %.y effects]` -> the effects; `[%poke %.n goofs]` -> PokeBail."""
    flag, body = unpack(tagged(message, "poke", "%poke"), 2, "%poke", message)
    if flag == YES:
        return effect_list(body, message)
    if flag == NO:
        try:
            goofs = to_list(body)
        except (ValueError, TypeError):
            raise invalid("%poke %.n", message) from None
        raise PokeBail(goofs)
    raise invalid("%poke", message)


def parse_peek2(message: Noun) -> Noun:
    """`[%peek %.y unit]` -> the unit; `[%peek %.n goof]` -> PeekBail."""
    flag, body = unpack(tagged(message, "peek", "%peek"), 2, "%peek", message)
    if flag == YES:
        return body
    if flag == NO:
        raise PeekBail(body)
    raise invalid("%peek", message)


def parse_sync(message: Noun) -> tuple[int, int]:
    """`[%sync eve mug]`, the answer to `[%sync %save ~]`: the snapshot's event and mug."""
    eve, mug = unpack(tagged(message, "sync", "%sync"), 2, "%sync", message)
    return atom_within(eve, 64, "%sync", message), atom_within(mug, 32, "%sync", message)


def parse_live2(message: Noun) -> None:
    """`[%live ~]`, the answer to %pack and %meld."""
    if tagged(message, "live", "%live") != 0:
        raise invalid("%live", message)


def parse_quiz(message: Noun, kind: str) -> Noun:
    """`[%quiz %quac res]` or `[%quiz %quic [[%open n] [%idle n] ~]]` -> the body after the kind."""
    got, body = unpack(tagged(message, "quiz", "%quiz"), 2, "%quiz", message)
    if got != cord(kind):
        raise invalid(f"%quiz %{kind}", message)
    return body
