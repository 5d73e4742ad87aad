"""Serf -> king message shapes (vere-v3.5 pkg/vere/lord.c `_lord_plea_*`), as pure parse functions.

Each parser takes one cued message and returns its meaning, raises a SerfBail subclass for a
deterministic refusal, or SerfProtocolError when the shape is not what vere's lord would accept
(wrong tag, atom where a cell belongs, eve beyond 64 bits, mug beyond 32 bits, unexpected message).
"""

from __future__ import annotations

from dataclasses import dataclass

from seguro.urbit.noun import Noun, atom_bytes, cord, to_list, uncord, untape
from seguro.urbit.record import RecordError, split_event

SUPPORTED_PROTOCOL = 1
_DESCRIBE_NODES = 24
_TEXT_CHARS = 2000  # log lines and error messages stay readable whatever the serf sends


class SerfError(Exception):
    """Anything that went wrong talking to a ship runtime."""


class SerfDied(SerfError):
    """The child exited or was killed. `returncode` follows subprocess: -N means killed by signal N."""

    def __init__(self, message: str, returncode: int | None) -> None:
        super().__init__(message)
        self.returncode = returncode

    @property
    def signal(self) -> int | None:
        return -self.returncode if self.returncode is not None and self.returncode < 0 else None


class SerfTimeout(SerfError):
    """The child did not answer (or stopped reading) before the deadline."""


class SerfProtocolError(SerfError):
    """The child sent bytes that are not a valid frame, or a message the protocol does not allow here."""


class SerfBusy(SerfError):
    """Backpressure or misuse: the pipeline is full, or a synchronous call was made with work in flight."""


class SerfBail(SerfError):
    """The serf refused a request deterministically; the client stays usable."""


class PlayBail(SerfBail):
    """`[%play %bail eve mug goof]`: replay stopped; the serf is at `eve` with `mug`."""

    def __init__(self, eve: int, mug: int, goof: Noun) -> None:
        super().__init__(f"%play %bail at event {eve} (mug {mug:#x}): {describe_goof(goof)}")
        self.eve, self.mug, self.goof = eve, mug, goof


class WorkBail(SerfBail):
    """`[%work %bail (list goof)]`: the event was rejected and not added."""

    def __init__(self, job: Noun, goofs: list[Noun]) -> None:
        super().__init__("%work %bail: " + "; ".join(describe_goof(g) for g in goofs))
        self.job, self.goofs = job, goofs


class PeekBail(SerfBail):
    """`[%peek %bail goof]`: the scry crashed."""

    def __init__(self, goof: Noun) -> None:
        super().__init__(f"%peek %bail: {describe_goof(goof)}")
        self.goof = goof


@dataclass(frozen=True)
class Ripe:
    """The serf's hello: protocol and kelvin versions, its event number and kernel mug."""

    protocol: int
    hoon_kelvin: int
    nock_kelvin: int
    eve: int
    mug: int


@dataclass(frozen=True)
class WorkDone:
    """One completed event. For a %swap, `job` is the replacement the serf ran: log that one."""

    eve: int
    mug: int
    job: Noun
    effects: list[Noun]
    swapped: bool


# ------------------------------------------------------------------ rendering for errors and logs


def describe(noun: Noun, max_nodes: int = _DESCRIBE_NODES) -> str:
    """A short, bounded rendering: printable cords as %tag, other atoms as numbers, cells as [a b]."""
    parts: list[str] = []
    stack: list[object] = [noun]
    nodes = 0
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            parts.append(item)
            continue
        nodes += 1
        if nodes > max_nodes:
            parts.append("…")
            break
        if isinstance(item, tuple):
            stack.extend(["]", item[1], " ", item[0]])
            parts.append("[")
        else:
            parts.append(_describe_atom(item))  # type: ignore[arg-type]
    return "".join(parts)


def _describe_atom(atom: int) -> str:
    if 0 < atom < 1 << 128:
        try:
            text = uncord(atom)
        except UnicodeDecodeError:
            text = ""
        if text and all(c.isalnum() or c in "-_" for c in text):
            return "%" + text
    if atom < 1 << 64:
        return str(atom)
    return f"0x{atom:x}" if atom < 1 << 256 else f"0x{atom & ((1 << 64) - 1):016x}…({atom.bit_length()} bits)"


def _bounded(text: str, limit: int = _TEXT_CHARS) -> str:
    return text if len(text) <= limit else f"{text[:limit]}…({len(text)} chars)"


def render_cord(atom: Noun) -> str:
    if not isinstance(atom, int):
        return describe(atom)
    return _bounded(atom_bytes(atom).decode("utf-8", errors="replace"))


def render_tank(tank: Noun) -> str:
    """Text of a %leaf tank (what Hoon's ~& and crashes mostly send); other tanks are described."""
    if isinstance(tank, tuple) and tank[0] == cord("leaf"):
        try:
            return _bounded(untape(tank[1]))
        except (ValueError, TypeError):
            pass
    return describe(tank)


def describe_goof(goof: Noun) -> str:
    """`[mote tang]` as "%mote: first line; second line"."""
    if not isinstance(goof, tuple):
        return describe(goof)
    try:
        tanks = to_list(goof[1])
    except (ValueError, TypeError):
        return describe(goof)
    return f"{describe(goof[0])}: " + "; ".join(render_tank(t) for t in tanks[:8])


# ------------------------------------------------------------------ shape checks


def invalid(what: str, message: Noun) -> SerfProtocolError:
    return SerfProtocolError(f"invalid {what} from serf: {describe(message)}")


def tagged(message: Noun, tag: str, what: str) -> Noun:
    """The body of `[%tag body]`, or SerfProtocolError naming what was expected."""
    if not isinstance(message, tuple):
        raise invalid(what, message)
    if message[0] != cord(tag):
        raise SerfProtocolError(f"expected %{tag} from serf, got {describe(message)}")
    return message[1]


def atom_within(value: Noun, bits: int, what: str, message: Noun) -> int:
    if not isinstance(value, int) or value >> bits:
        raise invalid(what, message)
    return value


def unpack(value: Noun, count: int, what: str, message: Noun) -> list[Noun]:
    """Unpack `[a b ... z]` with exactly `count` items (the last is the tail)."""
    items: list[Noun] = []
    for _ in range(count - 1):
        if not isinstance(value, tuple):
            raise invalid(what, message)
        items.append(value[0])
        value = value[1]
    return [*items, value]


def effect_list(value: Noun, message: Noun) -> list[Noun]:
    try:
        return to_list(value)
    except (ValueError, TypeError):
        raise invalid("%work effects", message) from None


# ------------------------------------------------------------------ parsers


def parse_ripe(message: Noun) -> Ripe:
    """`[%ripe [pro hon nok] eve mug]`; only protocol 1 (vere <= 3.x) is supported."""
    ver, eve, mug = unpack(tagged(message, "ripe", "%ripe"), 3, "%ripe", message)
    pro, hon, nok = unpack(ver, 3, "%ripe", message)
    ripe = Ripe(
        protocol=atom_within(pro, 8, "%ripe", message),
        hoon_kelvin=atom_within(hon, 8, "%ripe", message),
        nock_kelvin=atom_within(nok, 8, "%ripe", message),
        eve=atom_within(eve, 64, "%ripe", message),
        mug=atom_within(mug, 32, "%ripe", message),
    )
    if ripe.protocol != SUPPORTED_PROTOCOL:
        raise SerfProtocolError(f"unsupported serf protocol {ripe.protocol} (need {SUPPORTED_PROTOCOL})")
    return ripe


def parse_play(message: Noun) -> int:
    """`[%play %done mug]` -> mug; `[%play %bail eve mug goof]` -> PlayBail."""
    tag, body = unpack(tagged(message, "play", "%play"), 2, "%play", message)
    if tag == cord("done"):
        return atom_within(body, 32, "%play %done", message)
    if tag == cord("bail"):
        eve, mug, goof = unpack(body, 3, "%play %bail", message)
        what = "%play %bail"
        if not isinstance(goof, tuple):  # lord.c _lord_plea_play_bail: the goof must be a cell
            raise invalid(what, message)
        raise PlayBail(atom_within(eve, 64, what, message), atom_within(mug, 32, what, message), goof)
    raise invalid("%play", message)


def parse_work(message: Noun, job: Noun, expect_eve: int) -> WorkDone:
    """%work %done / %swap -> WorkDone for event `expect_eve`; %work %bail -> WorkBail."""
    tag, body = unpack(tagged(message, "work", "%work"), 2, "%work", message)
    if tag == cord("bail"):
        try:
            goofs = to_list(body)
        except (ValueError, TypeError):
            raise invalid("%work %bail", message) from None
        raise WorkBail(job, goofs)
    if tag == cord("done"):
        eve, mug, effects = unpack(body, 3, "%work %done", message)
        swapped, logged = False, job
    elif tag == cord("swap"):
        eve, mug, logged, effects = unpack(body, 4, "%work %swap", message)
        swapped = True
        try:
            split_event(logged)  # this is what gets logged: it must be an event
        except RecordError:
            raise invalid("%work %swap job", message) from None
    else:
        raise invalid("%work", message)
    eve = atom_within(eve, 64, "%work", message)
    if eve != expect_eve:
        raise SerfProtocolError(f"serf finished event {eve}, expected {expect_eve}")
    mug = atom_within(mug, 32, "%work", message)
    return WorkDone(eve, mug, logged, effect_list(effects, message), swapped)


def parse_live(message: Noun) -> None:
    """`[%live ~]`, the ack of %save/%cram/%meld/%pack."""
    if tagged(message, "live", "%live") != 0:
        raise invalid("%live", message)


def parse_peek(message: Noun) -> Noun:
    """`[%peek %done (unit)]` -> the unit; `[%peek %bail goof]` -> PeekBail."""
    tag, body = unpack(tagged(message, "peek", "%peek"), 2, "%peek", message)
    if tag == cord("done"):
        return body
    if tag == cord("bail"):
        raise PeekBail(body)
    raise invalid("%peek", message)
