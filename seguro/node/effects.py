"""What a node does with the effects of an event its master released: Ames datagrams leave by UDP (to a
galaxy's DNS name for a galaxy lane), the
last behn %doze arms the master's timer, and every other effect (a driver not served here yet) is
counted by kind and shown in status, never silently dropped."""

from __future__ import annotations

from dataclasses import dataclass

from seguro.urbit import ames, behn
from seguro.urbit.noun import Noun, to_list, uncord


@dataclass(frozen=True)
class Unserved:
    """An effect of a driver this node does not serve yet (eyre's %response, dill's %blit, iris's
    %request, a galaxy lane ...): counted and listed in status when released, never silently dropped."""

    kind: str


@dataclass(frozen=True)
class GalaxySend:
    """A datagram for a galaxy, to its DNS name (or, with local networking, 127.0.0.1)."""

    galaxy: int
    payload: bytes


def effects_of(effects: Noun | list[Noun]) -> tuple[object, ...]:
    """What this node does with an event's effects: Ames datagrams, in order; the last behn %doze (the
    ship has one timer); and one Unserved for every other effect, by its card's tag."""
    try:
        items = effects if isinstance(effects, list) else to_list(effects)
    except ValueError:  # not a list of effects: the event itself is done; say what was skipped
        return (Unserved("malformed effects"),)
    found: list[object] = []
    dozes = []
    for effect in items:
        doze = behn.effect_to_doze(effect)
        if doze is not None:
            dozes.append(doze)
            continue
        try:
            galaxy = ames.effect_to_galaxy_send(effect)
            datagram = GalaxySend(*galaxy) if galaxy is not None else ames.effect_to_datagram(effect)
        except ames.AmesError:
            datagram = None
        found.append(datagram if datagram is not None else Unserved(_kind(effect)))
    return tuple(found + dozes[-1:])


def _kind(effect: Noun) -> str:
    """The card's tag of an effect (e.g. 'send' to a galaxy lane, 'blit', 'response'), for status."""
    card = effect[1] if isinstance(effect, tuple) else None
    tag = card[0] if isinstance(card, tuple) else card
    try:
        return uncord(tag) if isinstance(tag, int) and tag else "unknown"
    except ValueError:
        return "unknown"
