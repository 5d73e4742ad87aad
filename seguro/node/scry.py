"""Remote-scry ("fine") requests answered on the master as vere answers them: by a %peek of the runtime,
never by an event (seguro.urbit.fine; vere's _fine_hear_request -> _fine_hunk_scry_cb).

Every replica receives every datagram; only the master with a ready runtime answers. The answer is held
back, like an effect, until every event the runtime had run when it answered is committed: a master's
runtime runs ahead of the log, and an answer drawn from an event that a fence then discards would bind a
value the ship never bound. It then leaves through the emitter's gate, after one last look at the
self-fencing deadline, so a fenced master never answers.

Where the answer goes: vere routes a fine answer by its own lookup of the requester (_ames_try_send: a
galaxy's lane, else the lanes of a peek of /peers/<ship>/forward-lane). We answer a direct (non-relayed)
request to the datagram's source address instead, which is where a direct requester sent it from (the load
balancer must keep source addresses, as it must for Ames anyway). A relayed request's source is the relay,
not the requester, so relayed requests are dropped (counted "relayed").

Mesa (directed messaging) peeks are answered as vere answers them (seguro.urbit.mesa_answer; vere's
_mesa_hear_peek -> _mesa_page_scry_jumbo_cb -> _mesa_send_piece): one page packet, to the address the
peek came from (as vere sends it), built from the jumbo frame the peek of the runtime gives. We keep no
frame cache: every peek peeks.

Counted in status (`counts`): "answered", and why a request went unanswered: "not master", "relayed",
"busy" (too many requests pending), "no runtime" (none running or it restarted), "bail" (the scry
crashed), "runtime failed", "empty" (nothing bound at the path), "no fragment" (a fragment the page does
not hold), "uncommitted" (what the runtime saw did not commit in time), "fenced" (at the gate). Mesa
peeks are counted apart, the same words after "mesa " ("mesa answered", "mesa empty", ...), plus "mesa
misshapen" (a frame vere could not use) and "mesa too large" (an answer past PACT_SIZE). A scry verdict
holding neither request is counted "unknown request".
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Protocol

from seguro.core.clock import Clock
from seguro.urbit import fine, mesa, mesa_answer
from seguro.urbit.ames_filter import Verdict, stun_response
from seguro.urbit.noun import Noun
from seguro.urbit.serf import PeekBail

log = logging.getLogger(__name__)

MAX_PENDING = 256  # requests peeked or waiting to be sent; beyond that they are dropped (requesters retry)
HOLD_S = 5.0  # how long an answer may wait for the events its peek saw to commit

Address = tuple[str, int]
Gate = Callable[[bytes, Address, float], bool]  # send unless the deadline has passed; False when fenced


class Peeker(Protocol):
    def peek(self, sam: Noun) -> Future: ...


@dataclass(frozen=True)
class _Answer:
    epoch: int  # the master's epoch when the request came
    eve: int  # the event the runtime had run when it answered
    payload: bytes
    lane: Address
    at_s: float
    label: str = ""  # "stun: " for a STUN answer, counted apart


class ScryAnswers:
    """`hear` on the UDP thread (Ingress's on_scry), peeks on the runtime thread, `flush` on the driver
    thread: answers whose events are committed go out through the gate."""

    def __init__(self, runtime: Peeker, serving_epoch: Callable[[], int], clock: Clock) -> None:
        self._runtime, self._serving_epoch, self._clock = runtime, serving_epoch, clock
        self._done: queue.SimpleQueue[_Answer] = queue.SimpleQueue()
        self._held: list[_Answer] = []
        self._lock = threading.Lock()
        self._pending = 0
        self._counts: dict[str, int] = {"answered": 0}

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def hear(self, verdict: Verdict, lane: Address) -> None:
        """A scry request from `lane`: peek the runtime if this node serves the ship (never blocks). A
        STUN request is answered with the requester's address (vere's _stun_on_request), by the master
        only (every replica hears it), through the same gate."""
        epoch = self._serving_epoch()
        wail = verdict.request
        label = "mesa " if isinstance(wail, mesa.Pact) else ""
        if verdict.action == "stun":
            if not epoch:
                self._count("stun: not master")
            elif self._reserve():
                payload = stun_response(wail, *lane)  # type: ignore[arg-type]
                self._done.put(_Answer(epoch, 0, payload, lane, self._clock.now_s(), label="stun: "))
            return
        if not isinstance(wail, fine.Wail | mesa.Pact):
            self._count("unknown request")
        elif not epoch:
            self._count(label + "not master")
        elif isinstance(wail, fine.Wail) and wail.head.rel:
            self._count("relayed")
        elif self._reserve():
            self._runtime.peek(verdict.sam).add_done_callback(lambda f: self._peeked(f, wail, lane, epoch))

    def _reserve(self) -> bool:
        with self._lock:
            if self._pending >= MAX_PENDING:
                self._counts["busy"] = self._counts.get("busy", 0) + 1
                return False
            self._pending += 1
            return True

    def _peeked(self, future: Future, request: fine.Wail | mesa.Pact, lane: Address, epoch: int) -> None:
        """The runtime answered (on its thread): build the datagram, for `flush` to send."""
        label = "mesa " if isinstance(request, mesa.Pact) else ""
        try:
            unit = future.result()
        except PeekBail:
            unit, why = None, "bail"
        except Exception:
            unit, why = None, "runtime failed"
        else:
            why = "no runtime" if unit is None else "empty" if unit == 0 else "no fragment"
        payload = None
        if unit and isinstance(request, fine.Wail):
            payload = fine.answer(request, unit)
        elif unit:
            try:
                payload = mesa_answer.answer(request, unit)
            except mesa_answer.Unanswered as e:
                why = str(e)
        if payload is None:
            self._count(label + why, done=True)
            return
        eve = getattr(future, "eve", 0)
        self._done.put(_Answer(epoch, eve, payload, lane, self._clock.now_s(), label=label))

    def flush(self, committed: int, deadline_s: float, gate: Gate) -> None:
        """On the driver thread: send the answers whose events are committed, while still master in the
        epoch they were asked in; drop those that waited HOLD_S for a commit."""
        while not self._done.empty():  # called on every turn of the driver loop: nothing to do is cheap
            self._held.append(self._done.get_nowait())
        if not self._held:
            return
        epoch, now_s, keep = self._serving_epoch(), self._clock.now_s(), []
        for answer in self._held:
            if answer.epoch != epoch:
                self._count(answer.label + "not master", done=True)
            elif answer.eve > committed:
                if now_s - answer.at_s < HOLD_S:
                    keep.append(answer)
                else:
                    self._count(answer.label + "uncommitted", done=True)
            else:
                sent = gate(answer.payload, answer.lane, deadline_s)
                self._count(answer.label + ("answered" if sent else "fenced"), done=True)
        self._held = keep

    def _count(self, why: str, done: bool = False) -> None:
        with self._lock:
            self._counts[why] = self._counts.get(why, 0) + 1
            self._pending -= done
