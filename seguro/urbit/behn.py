"""behn, vere's timer driver, as the king sees it: a ship arms its one timer with a `%doze` effect
(`[%doze (unit @da)]`: ~ clears it) and is woken by a `[//behn %wake ~]` event when it is due; on every
start the king sends `%born`, which makes the ship say its timer again (pkg/vere/io/behn.c)."""

from __future__ import annotations

from dataclasses import dataclass

from seguro.urbit.noun import Noun, cord
from seguro.urbit.record import da_from_unix

BEHN_WIRE: Noun = (0, (cord("behn"), 0))  # //behn
DOZE, WAKE, BORN = cord("doze"), cord("wake"), cord("born")
DA_SECOND = 1 << 64


@dataclass(frozen=True)
class Doze:
    """Arm the ship's timer for `da` (None: clear it)."""

    da: int | None


def doze_effect(da: int | None) -> Noun:
    return (BEHN_WIRE, (DOZE, 0 if da is None else (0, da)))


def effect_to_doze(effect: Noun) -> Doze | None:
    """The Doze a `%doze` effect asks for; None for any other effect (or a malformed one)."""
    if not isinstance(effect, tuple) or effect[0] != BEHN_WIRE or not isinstance(effect[1], tuple):
        return None
    tag, unit = effect[1]
    if tag != DOZE:
        return None
    if unit == 0:
        return Doze(None)
    if isinstance(unit, tuple) and unit[0] == 0 and isinstance(unit[1], int):
        return Doze(unit[1])
    return None


def wake_event(wall_s: float) -> Noun:
    return (da_from_unix(wall_s), (BEHN_WIRE, (WAKE, 0)))


def born_event(wall_s: float) -> Noun:
    return (da_from_unix(wall_s), (BEHN_WIRE, (BORN, 0)))


def behn_card(ovum: Noun) -> str:
    """'wake' or 'born' for a behn event's ovum, '' for anything else."""
    if not isinstance(ovum, tuple) or ovum[0] != BEHN_WIRE or not isinstance(ovum[1], tuple):
        return ""
    return {WAKE: "wake", BORN: "born"}.get(ovum[1][0], "")  # type: ignore[call-overload]


def seconds_until(da: int, now_da: int) -> float:
    return max(0.0, (da - now_da) / DA_SECOND)
