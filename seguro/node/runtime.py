"""The node's ship runtime: one child process (seguro.urbit.serf) driven from one thread.

It turns the core's runtime requests (run these jobs, apply the log up to N, restart from the log)
into serf calls and posts the results back as core events, in order. A restart bumps a generation so
that run-ahead work queued before it is skipped rather than run on the fresh runtime.

Applying committed events replays each record with %play and compares the runtime's mug with the mug
the master logged: a mismatch is a divergence, reported, and nothing more is applied. Snapshots are only
taken when the runtime holds exactly the committed log, never during run-ahead.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

from seguro.core import messages as m
from seguro.invariant import InvariantViolation
from seguro.node.effects import effects_of
from seguro.node.eventlog import EventLog
from seguro.urbit.noun import Noun
from seguro.urbit.record import Record, decode_record, encode_record, event_da, later_than
from seguro.urbit.serf import PeekBail, PlayBail, Serf, SerfBail, SerfError, default_argv

log = logging.getLogger(__name__)

PIPELINE_JOBS = 32  # %work requests in flight to the serf at once
BOOT_SCAN_MAX = 1000  # a boot sequence longer than this is not a boot sequence
PLAY_BATCH = 500  # events per %play, as vere's king replays (pier.c, PIER_PLAY_BATCH)
RESTART_BACKOFF_S = 1.0


@dataclass(frozen=True)
class Job:
    """An event for the runtime: the noun, its size as the core counts it, and where to say whether it
    was committed (admin callers wait for that; datagrams have nobody waiting)."""

    noun: Noun
    size_bytes: int
    reply: Future[tuple[int, str]] | None = field(default=None, compare=False)

    def answer(self, event: int, reason: str) -> None:
        """(event number, '') once committed in etcd, else (0, why not)."""
        if self.reply is not None and not self.reply.done():
            self.reply.set_result((event, reason))

    @property
    def awaited(self) -> Job | None:
        """This job when somebody waits for its answer (the core then tracks it until it commits)."""
        return self if self.reply is not None else None


class Peek(Future):
    """A peek's answer: the unit the runtime produced (0 is ~, nothing there); None when no runtime could
    answer (none running, a restart or a failure since it was asked, the runtime stopped); PeekBail when the
    scry crashed (the runtime is unharmed). `eve`: the event the runtime had run when it answered, which on a
    master may be ahead of the committed log (run-ahead)."""

    eve = 0


class RuntimeWorker:
    """Owns the serf on its own thread; `post` receives the core events it produces."""

    runs_ship = True  # its drivers (behn) hear of every promotion

    def __init__(
        self,
        eventlog: EventLog,
        post: Callable[[m.Event], None],
        *,
        pier: Path,
        die: Callable[[InvariantViolation], None] | None = None,
        argv: Sequence[str] = (),
        stderr_path: Path | None = None,
        timeout_s: float = 30.0,
        liveness_s: float = 3600.0,
        snapshot_every: int = 5000,
        on_snapshot: Callable[[int, int], None] | None = None,
    ) -> None:
        self._log, self._post, self._die = eventlog, post, die
        self._on_snapshot = on_snapshot  # (event, mug) of each snapshot saved, on this thread
        self._argv = list(argv) or default_argv(pier)
        self._stderr_path, self._timeout_s, self._liveness_s = stderr_path, timeout_s, liveness_s
        self._snapshot_every = snapshot_every
        self._ops: queue.Queue[tuple[int, str, object]] = queue.Queue()
        self._generation = 0
        self._serf: Serf | None = None
        self._last_snapshot = 0
        self._deferred: tuple[int, str, object] | None = None  # taken from the queue, handled next
        self._last_da = 0  # time of the last event the runtime holds: the next one is later
        self._thread = threading.Thread(target=self._loop, name="seguro-runtime", daemon=True)
        self._stopping = threading.Event()
        pier.mkdir(parents=True, exist_ok=True)

    # ---- requests from the driver thread --------------------------------------------------------

    def start(self) -> None:
        self.restart()
        self._thread.start()

    def restart(self) -> None:
        self._generation += 1
        self._ops.put((self._generation, "restart", None))

    def run(self, job: Job) -> None:
        self._ops.put((self._generation, "run", job))

    def apply_to(self, event: int) -> None:
        self._ops.put((self._generation, "apply", event))

    def peek(self, sam: Noun) -> Peek:
        """Scry the runtime (`[%peek mil sam]`) on the runtime thread, after everything asked before it."""
        future = Peek()
        if self._stopping.is_set():
            future.set_result(None)
        else:
            self._ops.put((self._generation, "peek", (sam, future)))
        return future

    def snapshot_if_due(self) -> None:
        """Ask for a snapshot; taken only if due and the runtime is not ahead of the log (a master is
        ahead while it has uncommitted events, so its snapshots land in its quiet moments)."""
        self._ops.put((self._generation, "snapshot", None))

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stopping.set()
        self._ops.put((self._generation, "stop", None))
        if self._thread.ident is not None:  # started
            self._thread.join(timeout_s)
        if self._serf is not None:
            self._serf.kill()

    def set_snapshot_every(self, events: int) -> None:
        """`seguro reload`: the interval from the next snapshot on."""
        self._snapshot_every = events

    @property
    def pid(self) -> int | None:
        return self._serf.pid if self._serf is not None else None

    # ---- the runtime thread ---------------------------------------------------------------------

    def _loop(self) -> None:
        try:
            self._serve()
        except InvariantViolation as e:  # the log is not what it must be: no retry can mend that
            if self._die is None:
                raise
            self._die(e)
        finally:  # the serf is ours to kill: one started while stop() waited would outlive the node
            if self._serf is not None:
                self._serf.kill()
            self._drain_peeks()

    def _drain_peeks(self) -> None:
        """Nobody will answer the peeks still queued: say so (None) rather than leave them waiting."""
        left = [self._deferred] if self._deferred is not None else []
        while True:
            try:
                left.append(self._ops.get_nowait())
            except queue.Empty:
                break
        for _, kind, arg in left:
            if kind == "peek":
                arg[1].set_result(None)  # type: ignore[index]

    def _serve(self) -> None:
        while not self._stopping.is_set():
            if self._deferred is not None:
                (generation, kind, arg), self._deferred = self._deferred, None
            else:
                generation, kind, arg = self._ops.get()
            if kind == "stop":
                return
            stale = generation != self._generation and kind != "restart"  # a snapshot too: see below
            if stale or (kind != "restart" and not self._usable()):
                if kind == "run":  # a waiting poke must hear so now, not after its 10 s timeout
                    self._post(m.WorkRefused("lost to a restart of the runtime", arg.awaited))  # type: ignore[attr-defined]
                elif kind == "peek":
                    arg[1].set_result(None)  # type: ignore[index]
                continue  # queued before a restart, or the serf is broken: the core will ask again
            try:
                self._dispatch(kind, arg)
            except SerfError as e:
                self._fail(f"{type(e).__name__}: {e}")
            except InvariantViolation:
                raise
            except Exception as e:  # a record that does not decode, a log read error: never silent
                log.exception("runtime request failed", extra={"kind": kind})
                self._fail(f"{type(e).__name__}: {e}")

    def _fail(self, reason: str) -> None:
        if self._serf is not None:
            self._serf.kill()
            self._serf = None
        self._post(m.RuntimeFailed(reason))
        self._stopping.wait(RESTART_BACKOFF_S)  # a runtime that dies at once must not spin the node

    def _dispatch(self, kind: str, arg: object) -> None:
        if kind == "restart":
            self._restart()
        elif kind == "run":
            self._run_pipelined(arg)  # type: ignore[arg-type]
        elif kind == "apply":
            self._apply(arg)  # type: ignore[arg-type]
        elif kind == "snapshot":
            self._snapshot()
        elif kind == "peek":
            self._peek(*arg)  # type: ignore[misc]

    def _usable(self) -> bool:
        """Whether requests other than a restart can be served (not after a failure or a divergence)."""
        return self._serf is not None

    def _peeker(self) -> Serf | None:
        """The running runtime a peek goes to, if any."""
        return self._serf

    def _peek(self, sam: Noun, future: Peek) -> None:
        """A bail answers the peek and leaves the runtime be; any other error also fails the runtime."""
        runtime = self._peeker()
        if runtime is None:
            future.set_result(None)
            return
        future.eve = runtime.eve
        try:  # a scry may be long (a large page): like an event, it is bounded by liveness only
            future.set_result(runtime.peek(sam, timeout_s=self._liveness_s))
        except PeekBail as bail:
            future.set_exception(bail)
        except BaseException as e:
            future.set_exception(e)
            raise

    def _live_serf(self) -> Serf:
        if self._serf is None:
            raise SerfError("no runtime is running")
        return self._serf

    def _restart(self) -> None:
        serf = self._restart_serf()
        why = self._base_disagreement(serf.eve, serf.mug)
        diverged = (serf.eve, why) if why else self._replay(self._log.last_event())
        if diverged is not None:
            self._post(m.Diverged(*diverged))
            self._serf = None
            return
        self._post(m.RuntimeReady(serf.eve))

    def _restart_serf(self) -> Serf:
        """A new runtime from its snapshot (killing the old one), which must not be ahead of the log."""
        if self._serf is not None:
            self._serf.kill()
            self._serf = None
        serf = Serf(self._argv, stderr_path=self._stderr_path, timeout_s=self._timeout_s,
                    work_timeout_s=self._liveness_s)  # fmt: skip
        self._serf = serf
        durable = self._log.last_event()
        self._last_da = self._time_at(serf.eve)
        if serf.eve > durable:
            raise SerfError(f"runtime snapshot is at event {serf.eve}, ahead of the log at {durable}")
        base = int(self._log.meta().get("base", 0))
        if serf.eve < base:
            raise SerfError(f"runtime snapshot is at event {serf.eve}, but the log begins after {base}: "
                            "it cannot replay (restore the snapshot kept in DIR/snapshots)")  # fmt: skip
        self._last_snapshot = serf.eve
        return serf

    def _base_mug(self, eve: int) -> int:
        """The mug of the snapshot a chopped or bootstrapped log begins after, at `eve` == its base."""
        meta = self._log.meta()
        return int(meta.get("base_mug") or 0) if eve and eve == int(meta.get("base", 0)) else 0

    def _base_disagreement(self, eve: int, mug: int) -> str:
        expected = self._base_mug(eve)
        if expected and mug != expected:
            return f"the runtime's snapshot has mug {mug:#x} at event {eve}, the log began from {expected:#x}"
        return ""

    def _time_at(self, event: int) -> int:
        """The time of the last timestamped event up to `event` in the log (a snapshot's runtime holds
        them all, and replays only what follows)."""
        for eve in range(event, max(0, event - BOOT_SCAN_MAX), -1):
            record = self._log.get(eve)
            da = event_da(decode_record(record).event) if record is not None else 0
            if da:
                return da
        return 0

    def _apply(self, upto: int) -> None:
        diverged = self._replay(upto)
        serf = self._live_serf()
        if diverged is not None:
            self._post(m.Applied(diverged[0] - 1))  # everything before it matched
            self._post(m.Diverged(*diverged))
            self._serf = None  # apply nothing more; status shows the divergence
            return
        self._post(m.Applied(serf.eve))
        self._snapshot()

    def _snapshot(self) -> None:
        """Save a snapshot when one is due and the runtime holds only committed events: it is what a
        restart (after a fence, a crash) starts from, and it must never contain run-ahead. Comparing
        event numbers with the log only proves that within one generation: a request from before a
        restart may find the log extended by another master's different events at the same numbers."""
        serf = self._live_serf()
        if serf.eve - self._last_snapshot >= self._snapshot_every and serf.eve <= self._log.last_event():
            serf.save(serf.eve)
            self._saved(serf.eve, serf.mug)

    def _saved(self, eve: int, mug: int) -> None:
        """A snapshot at committed event `eve` is on disk, and nothing runs in the runtime: hand it on."""
        self._last_snapshot = eve
        log.info("snapshot", extra={"eve": eve})
        if self._on_snapshot is not None:
            self._on_snapshot(eve, mug)

    def _replay(self, upto: int) -> tuple[int, str] | None:
        """Bring the runtime up to `upto` from the local log, as vere's king replays: the boot sequence in
        one %play, then %plays of at most PLAY_BATCH events, each checked by the mug after its last event
        (vere 3.x checks no more: a record whose mug alone is wrong, inside a batch whose state comes out
        right, goes unseen). A batch that ends on the wrong mug is replayed again event by event, so the
        divergence is reported at its own event. Returns (event, what differs) on a divergence."""
        serf = self._live_serf()
        if serf.eve == 0 and upto > 0:
            self._replay_boot(serf)
        while serf.eve < upto:
            first = serf.eve + 1
            batch = [
                (e, decode_record(r)) for e, r in self._log.read(first, min(upto, first + PLAY_BATCH - 1))
            ]
            self._last_da = max([self._last_da] + [event_da(d.event) for _, d in batch])
            try:
                mug = serf.play(first, [d.event for _, d in batch])
            except SerfBail as e:
                at = e.eve + 1 if isinstance(e, PlayBail) else first
                return at, f"the runtime refused the logged event: {e}"
            last = batch[-1][1]
            if not last.is_boot and mug != last.mug:
                return self._locate_divergence(first, batch)
        return None

    def _locate_divergence(self, first: int, batch: list[tuple[int, Record]]) -> tuple[int, str]:
        """The runtime is past a batch that ended on the wrong mug: start it again (its snapshot is at or
        before `first` - 1, all checked), bring it to `first` - 1, then play the batch one event at a time."""
        self._restart_serf()
        serf = self._live_serf()
        before = self._replay(first - 1)
        if before is not None:
            return before
        for event, decoded in batch:
            try:
                mug = serf.play(event, [decoded.event])
            except SerfBail as e:
                return event, f"the runtime refused the logged event: {e}"
            if not decoded.is_boot and mug != decoded.mug:
                return event, f"mug {mug:#x} after the event, the log says {decoded.mug:#x}"
        raise SerfError(f"events {first}..{batch[-1][0]} replayed one by one reach every logged mug, "
                        "but not in one batch")  # fmt: skip

    def _replay_boot(self, serf: Serf) -> None:
        """vere plays the whole boot sequence in one %play at event 1: the leading mug-0 events, and at least
        `life` of them (the first batch must hold the lifecycle formula's events: pier.c, _pier_play)."""
        life = int(self._log.meta().get("life") or (self._log.meta().get("pier") or {}).get("life") or 0)
        events: list[Noun] = []
        for event, record in self._log.read(1, min(self._log.last_event(), max(BOOT_SCAN_MAX, life))):
            decoded = decode_record(record)
            if not decoded.is_boot and event > life:
                break
            events.append(decoded.event)
        serf.play(1, events)

    def _gather(self, first: Job) -> list[Job]:
        """`first` and the run requests already queued behind it (up to PIPELINE_JOBS), in order."""
        jobs = [first]
        while len(jobs) < PIPELINE_JOBS:
            try:
                generation, kind, arg = self._ops.get_nowait()
            except queue.Empty:
                break
            if kind != "run" or generation != self._generation:
                self._deferred = (generation, kind, arg)  # keep order: handle it next
                break
            jobs.append(arg)  # type: ignore[arg-type]
        return jobs

    def _run_pipelined(self, first: Job) -> None:
        """Submit `first` and whatever run requests are already queued, then collect results in order."""
        jobs = self._gather(first)
        if not self._ready_for(jobs):
            return
        submitted: list[Job] = []
        for job in jobs:
            try:
                self._submit(job)
            except ValueError as e:  # not [@da ovum]: refuse the job, keep the runtime
                self._post(m.WorkRefused(f"malformed job: {e}", job.awaited))
                continue
            submitted.append(job)
        for job in submitted:
            try:
                eve, record, effects = self._result()
            except SerfBail as e:  # %work %bail (protocol 1), %poke %.n (protocol 2): nothing logged
                self._post(m.WorkRefused(str(e), job.awaited))
                continue
            self._post(m.WorkDone(eve, record, effects_of(effects), job.awaited))

    def _ready_for(self, jobs: list[Job]) -> bool:
        """Whether a runtime can take `jobs` now (SerfError when none is running)."""
        self._live_serf()
        return True

    def _submit(self, job: Job) -> None:
        """Send one job; ValueError (a RecordError) when it is not [@da ovum]. Time never goes back."""
        noun, self._last_da = later_than(job.noun, self._last_da)
        self._live_serf().submit_work(noun)

    def _result(self) -> tuple[int, bytes, list[Noun]]:
        """The oldest submitted job's event, the record to log (a %swap logs its replacement), effects."""
        done = self._live_serf().next_work_result()
        return done.eve, encode_record(done.mug, done.job), done.effects
