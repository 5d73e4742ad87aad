"""Where the master sends a galaxy's datagrams: `<name>.<domain>` resolved by DNS (as vere does, on a
thread of its own and cached, so the driver never waits on a resolver), or with local networking
(vere's -L) 127.0.0.1 at 31337 + the galaxy's number."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable

from seguro.urbit import ames

log = logging.getLogger(__name__)

Resolve = Callable[[str, int], str]  # (host, port) -> an IPv4 address; raises OSError


def resolve_ipv4(host: str, port: int) -> str:
    return str(socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_DGRAM)[0][4][0])


class Galaxies:
    def __init__(self, domain: str, local: bool, resolve: Resolve = resolve_ipv4) -> None:
        self.domain, self.local, self._resolve = domain, local, resolve
        self._known: dict[int, tuple[str, int]] = {}
        self._asking: set[int] = set()
        self._lock = threading.Lock()

    def address(self, galaxy: int) -> tuple[str, int] | None:
        """The galaxy's (ip, port) now, or None while its name is not resolved (asked in the background:
        Ames retransmits, so a first datagram lost to an unresolved name is not a lost message)."""
        host, port = ames.galaxy_address(galaxy, self.domain, self.local)
        if self.local:
            return host, port
        with self._lock:
            known = self._known.get(galaxy)
            if known is None and galaxy not in self._asking:
                self._asking.add(galaxy)
                threading.Thread(target=self._ask, args=(galaxy, host, port), daemon=True).start()
        return known

    def _ask(self, galaxy: int, host: str, port: int) -> None:
        try:
            ip = self._resolve(host, port)
        except OSError as e:
            log.warning("galaxy not resolved", extra={"galaxy": host, "error": str(e)})
            ip = ""
        with self._lock:
            self._asking.discard(galaxy)
            if ip:
                self._known[galaxy] = (ip, port)
