"""Where released effects leave the master: datagrams out of the ship's UDP socket, each after one last
look at the self-fencing deadline; a galaxy's datagrams to its resolved address; the %doze to the
master's timer; and every effect of a driver not served here counted by kind."""

from __future__ import annotations

import logging

from seguro.core.clock import Clock
from seguro.node.behn import Behn
from seguro.node.effects import GalaxySend, Unserved
from seguro.node.galaxies import Galaxies
from seguro.node.udp import Ingress
from seguro.urbit.ames import galaxy_name
from seguro.urbit.behn import Doze

log = logging.getLogger(__name__)


class Emitter:
    def __init__(self, ingress: Ingress, behn: Behn, galaxies: Galaxies, clock: Clock) -> None:
        self.ingress, self.behn, self.galaxies, self.clock = ingress, behn, galaxies, clock
        self.sent = self.fenced = 0
        self.unserved: dict[str, int] = {}  # released effects of drivers this node does not serve

    def emit(self, effects: tuple[object, ...], deadline_s: float) -> None:
        """The last gate: nothing leaves after the self-fencing deadline, whatever the core decided."""
        for effect in effects:
            if isinstance(effect, Doze):
                self.behn.arm(effect.da)
                continue
            if isinstance(effect, GalaxySend):
                address = self.galaxies.address(effect.galaxy)
                if address is None:  # not resolved yet (asked now): Ames retransmits
                    effect = Unserved(f"send to unresolved ~{galaxy_name(effect.galaxy)}")
                else:
                    effect = (address, effect.payload)
            if isinstance(effect, Unserved):
                self.unserved[effect.kind] = self.unserved.get(effect.kind, 0) + 1
                continue
            address, payload = effect  # type: ignore[misc]
            if not self.send(payload, address, deadline_s):
                self.fenced += 1
                late_s = round(self.clock.now_s() - deadline_s, 3)
                log.warning("effect fenced at the gate", extra={"late_s": late_s})
                continue
            self.sent += 1

    def send(self, payload: bytes, address: tuple[str, int], deadline_s: float) -> bool:
        """The gate itself, for one datagram: sent unless the deadline has passed (False: fenced). Also what
        a remote-scry answer leaves through (seguro.node.scry), counted there rather than as an effect."""
        return self.ingress.send_before(payload, address, deadline_s, self.clock)
