"""The node's UDP socket, standing where the ship's Ames port would be: datagrams in, effects out."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable

from seguro.core import messages as m
from seguro.core.clock import Clock
from seguro.node.runtime import Job
from seguro.urbit import ames, ames_filter
from seguro.urbit.noun import Noun
from seguro.urbit.record import da_from_unix, event_noun

log = logging.getLogger(__name__)

EVENT_OVERHEAD_BYTES = 64  # what a datagram's event noun adds to its payload, roughly
UNANSWERED = "scry (not answered)"

Filter = Callable[[bytes], ames_filter.Verdict]
OnScry = Callable[[ames_filter.Verdict, tuple[str, int]], None]


def vere_filter(our: int) -> Filter:
    """vere's filtering of inbound datagrams for ship `our` (seguro.urbit.ames_filter.classify)."""
    return lambda payload: ames_filter.classify(payload, our)


class Ingress:
    """Receives datagrams (every replica gets every one, from the load balancer) and sends effects.

    Effects leave from this same socket, as vere's ames driver does, so peers see replies from the
    ship's address. Malformed datagrams are counted and dropped; they never reach the log. With a
    `datagram_filter` (vere_filter), datagrams vere would never make events of (STUN, bad headers or
    mugs, packets for other ships) are counted by reason in `filtered` and dropped, and remote-scry
    requests, which vere answers from a peek, go to `on_scry` (without one, counted as UNANSWERED).
    """

    def __init__(
        self,
        hostport: tuple[str, int],
        clock: Clock,
        post: Callable[[m.Event], None],
        datagram_filter: Filter | None = None,
        on_scry: OnScry | None = None,
    ) -> None:
        self._clock, self._post = clock, post
        self._filter, self._on_scry = datagram_filter, on_scry
        self.filtered: dict[str, int] = {}
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self._sock.bind(hostport)
        except OSError as e:
            self._sock.close()
            raise OSError(f"cannot bind the UDP socket to {hostport[0]}:{hostport[1]}: {e}") from None
        self._sock.settimeout(0.2)
        self.address: tuple[str, int] = self._sock.getsockname()
        self.malformed = self.send_errors = 0
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="seguro-udp", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._closed.is_set():
            try:
                payload, (ip, port) = self._sock.recvfrom(65_535)
            except TimeoutError:
                continue
            except OSError:
                if self._closed.is_set():
                    return
                continue
            try:
                noun = self._event(payload, ip, port)
                if noun is None:
                    continue
            except ames.AmesError as e:
                self.malformed += 1
                log.debug("malformed datagram", extra={"from": f"{ip}:{port}", "error": str(e)})
                continue
            except Exception:  # never let one datagram kill the ship's only ear
                self.malformed += 1
                log.exception("datagram could not be turned into an event", extra={"from": f"{ip}:{port}"})
                continue
            size = len(payload) + EVENT_OVERHEAD_BYTES
            self._post(m.IncomingEvent(Job(noun, size), size))

    def _event(self, payload: bytes, ip: str, port: int) -> Noun | None:
        """The event for a datagram, or None when the filter keeps it from becoming one."""
        if self._filter is None:
            return ames.datagram_event(self._clock.wall_s(), ip, port, payload)
        verdict = self._filter(payload)
        if verdict.action == "hear":
            wire, card = verdict.ovum(ip, port, payload)
            return event_noun(da_from_unix(self._clock.wall_s()), wire, card)
        if verdict.action in ("scry", "stun") and self._on_scry is not None:
            self._on_scry(verdict, (ip, port))
            return None
        reason = UNANSWERED if verdict.action == "scry" else verdict.reason
        self.filtered[reason] = self.filtered.get(reason, 0) + 1
        return None

    def send_before(self, payload: bytes, address: tuple[str, int], deadline_s: float, clock: Clock) -> bool:
        """Send unless `deadline_s` has passed; False when fenced. The check sits right against the syscall:
        only a pause between these two lines could still let a datagram out late (see README, Fencing).
        The send never waits for buffer space (that wait would come after the check): a datagram that
        does not fit now is dropped and counted, and Ames retransmits."""
        sendto, now_s = self._sock.sendto, clock.now_s
        if now_s() >= deadline_s:
            return False
        try:
            sendto(payload, socket.MSG_DONTWAIT, address)
        except OSError as e:
            self.send_errors += 1
            log.warning("effect not sent", extra={"to": f"{address[0]}:{address[1]}", "error": str(e)})
        return True

    def close(self) -> None:
        self._closed.set()
        self._thread.join(1.0)
        self._sock.close()
