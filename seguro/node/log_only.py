"""Runtimes for replicas that run no ship: a log-only replica (a witness or backup, or a replica of a ship
that vere itself runs) and the follower of a running vere's pier, which feeds the vere's new events to
the core as the master's work. Both stand where seguro.node.runtime.RuntimeWorker stands in the driver."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from seguro.core import messages as m
from seguro.invariant import InvariantViolation
from seguro.node.eventlog import EventLog
from seguro.node.runtime import Job, Peek
from seguro.urbit.noun import Noun
from seguro.urbit.pier.layout import PierError
from seguro.urbit.pier.reader import SegmentReader, segments
from seguro.urbit.pier.verify import PierProblem, check_record

log = logging.getLogger(__name__)

TAIL_EVERY_S = 0.1
TAIL_MAX_EVENTS = 1000  # per poll: the driver's queue stays short


class NoRuntime:
    """A replica that stores, acknowledges and serves the log and runs nothing: ready at once, every
    committed event 'applied' as soon as it is stored (there is no state to check a mug against)."""

    pid = None
    runs_ship = False  # no ship here to tell of its timers: vere (or nobody) runs it

    def __init__(self, eventlog: EventLog, post: Callable[[m.Event], None]) -> None:
        self._log, self._post = eventlog, post

    def start(self) -> None:
        self.restart()

    def restart(self) -> None:
        self._post(m.RuntimeReady(self._log.last_event()))

    def run(self, job: Job) -> None:
        self._post(m.WorkRefused("this replica runs no ship (log only)", job.awaited))

    def apply_to(self, event: int) -> None:
        self._post(m.Applied(event))

    def peek(self, sam: Noun) -> Peek:
        """No ship here to scry: nothing answers (a running vere answers its own remote scries)."""
        future = Peek()
        future.set_result(None)
        return future

    def snapshot_if_due(self) -> None:
        """Nothing to snapshot."""

    def set_snapshot_every(self, events: int) -> None:
        """Nothing to snapshot."""

    def stop(self, timeout_s: float = 5.0) -> None:
        """Nothing runs."""


class PierTail(NoRuntime):
    """Follows a running vere's log: while this node is master, every new event of the pier (read-only
    LMDB transactions that never block vere's writer; epoch rolls and chops followed) becomes `Tailed`,
    from the event after the committed log, once the pier is checked to hold that log's last event."""

    def __init__(
        self, pier: Path, eventlog: EventLog, post: Callable[[m.Event], None],
        serving_epoch: Callable[[], int], die: Callable[[InvariantViolation], None],
    ) -> None:  # fmt: skip
        super().__init__(eventlog, post)
        self.pier, self._serving_epoch, self._die = pier, serving_epoch, die
        self._epoch = 0  # the term `_next` belongs to
        self._next: int | None = None  # next pier event to hand over; None while not master
        self._generation = 0  # bumped by restart(): events read before it must never be handed over
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="seguro-pier-tail", daemon=True)
        self.error = ""

    def start(self) -> None:
        super().start()
        self._thread.start()

    def restart(self) -> None:
        """A fence: what was handed over and not committed is gone; start again from the committed log.
        Under the lock, so every Tailed of the old generation is queued before this RuntimeReady."""
        with self._lock:
            self._generation += 1
            self._next = None
            super().restart()

    def run(self, job: Job) -> None:
        self._post(m.WorkRefused(f"this node follows the pier {self.pier}: vere takes the ship's events",
                                 job.awaited))  # fmt: skip

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(timeout_s)

    def _loop(self) -> None:
        while not self._stop.wait(TAIL_EVERY_S):
            try:
                self._poll()
            except PierProblem as e:  # the pier is not the log we committed: stop applying, loudly
                self.error = str(e)
                self._post(m.Diverged(e.event or 0, f"the followed pier: {e}"))
                self._stop.wait(5.0)
            except PierError as e:  # vere rolling an epoch, a pier being moved: try again
                if self.error != str(e):
                    log.warning("cannot read the pier", extra={"pier": str(self.pier), "error": str(e)})
                self.error = str(e)
            except InvariantViolation as e:
                self._die(e)
                return
            except Exception as e:  # never a silent death: this node would stay master committing nothing
                self.error = f"{type(e).__name__}: {e}"
                log.exception("following the pier failed; retrying", extra={"pier": str(self.pier)})
                self._stop.wait(1.0)

    def _poll(self) -> None:
        epoch = self._serving_epoch()
        with self._lock:
            if epoch != self._epoch:  # a term began or ended: what was read for the last one is void
                self._generation += 1
                self._epoch, self._next = epoch, None
            generation, start = self._generation, self._next
        if not epoch:
            return
        if start is None:
            committed = self._log.last_event()
            self._check_matches(committed)
            start = committed + 1
        for event, record in self._read(start, TAIL_MAX_EVENTS):
            check_record(event, record, decode=False)
            with self._lock:
                if generation != self._generation:
                    return  # restarted meanwhile: the next poll starts from the committed log
                self._post(m.Tailed(event, record, epoch))
                self._next = event + 1
        with self._lock:
            if generation == self._generation and self._next is None:
                self._next = start
        self.error = ""

    def _check_matches(self, committed: int) -> None:
        """The pier must hold our last committed event, byte for byte: else it is another ship's log, or
        vere was rolled back, and following it would fork the replicated log."""
        if committed == 0:
            return
        found = self._read(committed, 1)
        ours = self._log.get(committed)
        if not found or found[0] != (committed, ours):
            raise PierProblem(f"the pier does not hold the committed event {committed} as logged", committed)

    def _read(self, first: int, count: int) -> list[tuple[int, bytes]]:
        out: list[tuple[int, bytes]] = []
        layout = segments(self.pier)
        if layout[0].base >= first:
            raise PierProblem(f"the pier was chopped past event {first} (it begins after {layout[0].base}): "
                              "it no longer holds what this ship needs next", first)  # fmt: skip
        for segment in layout:
            if len(out) >= count:
                break
            with SegmentReader(segment) as reader:
                _, last = reader.bounds()
                if last < first:
                    continue
                for event, record in reader.read(max(first, segment.base + 1), count - len(out)):
                    if event != first + len(out):
                        raise PierError(f"event {first + len(out)} is not in the pier yet (next {event})")
                    out.append((event, record))
        return out
