"""The last gate before the wire: no effect leaves past the self-fencing deadline (README, Fencing); a
galaxy's datagrams go to its address; a %doze arms the timer; other drivers' effects are counted."""

from __future__ import annotations

import socket
import time

from seguro.node.behn import Behn
from seguro.node.effects import GalaxySend, Unserved
from seguro.node.emitter import Emitter
from seguro.node.galaxies import Galaxies
from seguro.node.udp import Ingress


class FakeClock:
    def __init__(self, now_s: float) -> None:
        self.t = now_s

    def now_s(self) -> float:
        return self.t

    def wall_s(self) -> float:
        return 1_700_000_000.0


def test_effects_past_the_deadline_never_reach_the_socket() -> None:
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(0.3)
    clock = FakeClock(100.0)
    ingress = Ingress(("127.0.0.1", 0), clock, lambda event: None)
    emitter = Emitter(ingress, Behn(clock, lambda event: None), Galaxies("urbit.org", local=True), clock)
    try:
        emitter.emit(((receiver.getsockname(), b"late"),), deadline_s=100.0)
        assert emitter.fenced == 1 and emitter.sent == 0
        clock.t = 99.0
        emitter.emit(((receiver.getsockname(), b"in time"),), deadline_s=100.0)
        assert emitter.sent == 1
        assert receiver.recvfrom(100)[0] == b"in time"  # and "late" never arrived before it
    finally:
        ingress.close()
        receiver.close()


def test_a_galaxys_datagram_goes_to_its_address_and_unserved_effects_are_counted() -> None:
    resolved: list[tuple[str, int]] = []

    def resolve(host: str, port: int) -> str:
        resolved.append((host, port))
        return "127.0.0.1"

    clock = FakeClock(100.0)
    ingress = Ingress(("127.0.0.1", 0), clock, lambda event: None)
    galaxies = Galaxies("example.net", local=False, resolve=resolve)
    emitter = Emitter(ingress, Behn(clock, lambda event: None), galaxies, clock)
    try:
        emitter.emit((GalaxySend(1, b"hi"), Unserved("blit")), deadline_s=200.0)
        assert emitter.unserved == {"send to unresolved ~nec": 1, "blit": 1}  # asked in the background
        deadline = time.monotonic() + 5
        while galaxies.address(1) is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert resolved == [("nec.example.net", 13338)] and galaxies.address(1) == ("127.0.0.1", 13338)
        assert Galaxies("x", local=True).address(255) == ("127.0.0.1", 31337 + 255)  # vere's -L
    finally:
        ingress.close()
