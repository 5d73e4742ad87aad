"""What a node does with the effects of an event its master released: Ames datagrams leave by UDP (to a
galaxy's DNS name for a galaxy lane), a mesa %push leaves as one datagram per lane (`[%if ip port]` or a
galaxy), the last behn %doze arms the master's timer, and every other effect (a driver not served here
yet, a lane that cannot be routed) is counted by kind and shown in status, never silently dropped."""

from __future__ import annotations

from dataclasses import dataclass

from seguro.urbit import ames, behn, mesa
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
        pushed = _pushes(effect)
        if pushed is not None:
            found.extend(pushed)
            continue
        try:
            galaxy = ames.effect_to_galaxy_send(effect)
            datagram = GalaxySend(*galaxy) if galaxy is not None else ames.effect_to_datagram(effect)
        except ames.AmesError:
            datagram = None
        found.append(datagram if datagram is not None else Unserved(_kind(effect)))
    return tuple(found + dozes[-1:])


def _pushes(effect: Noun) -> list[object] | None:
    """The datagrams of a mesa %push (vere's _mesa_ef_send: the packet to every lane), one per lane; a
    lane that cannot be routed (inscrutable, address 0, port 0) is one Unserved; None if not a %push."""
    try:
        push = mesa.effect_to_push(effect)
    except ames.AmesError:
        return [Unserved("malformed push")]
    if push is None:
        return None
    lanes, payload = push
    found: list[object] = []
    for lane in lanes:
        try:
            target = mesa.realise_lane(lane)
        except (ames.AmesError, TypeError, ValueError):
            found.append(Unserved("push to unroutable lane"))
            continue
        found.append(GalaxySend(target, payload) if isinstance(target, int) else (target, payload))
    return found


def _kind(effect: Noun) -> str:
    """The card's tag of an effect (e.g. 'send' to a galaxy lane, 'blit', 'response'), for status."""
    card = effect[1] if isinstance(effect, tuple) else None
    tag = card[0] if isinstance(card, tuple) else card
    try:
        return uncord(tag) if isinstance(tag, int) and tag else "unknown"
    except ValueError:
        return "unknown"
