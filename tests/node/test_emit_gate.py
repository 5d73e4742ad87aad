"""The last gate before the wire: no effect leaves past the self-fencing deadline (README, Fencing)."""

from __future__ import annotations

import socket
from types import SimpleNamespace

from seguro.node.driver import Node
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
    try:
        node = SimpleNamespace(
            core=SimpleNamespace(lease_deadline_s=lambda: 100.0),
            ingress=ingress,
            clock=clock,
            effects_fenced=0,
            effects_sent=0,
        )
        Node._emit(node, ((receiver.getsockname(), b"late"),))  # type: ignore[arg-type]
        assert node.effects_fenced == 1 and node.effects_sent == 0
        clock.t = 99.0
        Node._emit(node, ((receiver.getsockname(), b"in time"),))  # type: ignore[arg-type]
        assert node.effects_sent == 1
        assert receiver.recvfrom(100)[0] == b"in time"  # and "late" never arrived before it
    finally:
        ingress.close()
        receiver.close()
