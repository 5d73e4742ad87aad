"""The node's ship runtime under protocol 2 (vere 4.x `urbit work`, or the reference ship's `--protocol 2`):
the worker owns the pier's LMDB event log, and Seguro keeps that log equal to the committed one.

- Master: a poke goes to the worker, which stamps it, logs it and answers with its effects; the record is
  read back from the pier (the final @da, or the %crud that replaced a crash) and handed to the core as
  WorkDone, which commits it in etcd under the fence before any effect leaves.
- Fence, crash, restart: the worker is SIGKILLed (never %exit, which would snapshot uncommitted events)
  and the pier's log is cut back to the committed log before a worker runs again.
- Follower: no worker runs; committed records are appended to the pier as they arrive (`Applied`), and a
  worker is started now and then to replay them, check the mug and snapshot (at committed events only).
- The worker is started when the first event is to run, so a new master replays from its last snapshot.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from seguro.core import messages as m
from seguro.invariant import InvariantViolation
from seguro.node.eventlog import EventLog
from seguro.node.runtime import Job, RuntimeWorker
from seguro.urbit import ames
from seguro.urbit.mars import Mars
from seguro.urbit.noun import Noun
from seguro.urbit.pier.layout import Meta, PierError, epochs, log_dir
from seguro.urbit.pier.log import PierLog
from seguro.urbit.record import decode_record, split_event
from seguro.urbit.serf import SerfDied, SerfError
from seguro.urbit.ship.kernel import BOOT_LIFE

log = logging.getLogger(__name__)

SYNC_CHUNK_EVENTS = 1000
STDERR_TAIL_BYTES = 8192
_MUG_MISMATCH = re.compile(r"(?:^|\s)play \((\d+)\): (mug mismatch[^\r\n]*)")
AGREEMENT_SCAN_MAX = 100_000  # run-ahead is a few pipelines deep: a longer disagreement is no fence's
WORKER_MAX_AGE_S = 7 * 24 * 3600.0  # well inside vere 4.x's --snap-time (launch.VERE4_SNAP_TIME_S)


def pier_meta(eventlog: EventLog) -> Meta:
    """vere's META for the pier: an imported ship's own, else the reference ship's (a galaxy's number)."""
    meta = eventlog.meta()
    pier = meta.get("pier")
    if pier:
        return Meta(3, int(pier["who"]), bool(pier["fake"]), int(pier["life"]))
    who = meta.get("who")
    name = who.lstrip("~") if isinstance(who, str) else ""
    number = who if isinstance(who, int) else next(
        (g for g in range(256) if len(name) == 3 and ames.galaxy_name(g) == name), 0
    )  # fmt: skip
    return Meta(3, number, True, int(meta.get("life") or BOOT_LIFE))


class MarsRuntime(RuntimeWorker):
    """RuntimeWorker's thread and queue, with protocol 2's worker and the pier's log in place of %play."""

    def __init__(
        self,
        eventlog: EventLog,
        post: Callable[[m.Event], None],
        *,
        pier: Path,
        argv: Sequence[str],
        die: Callable[[InvariantViolation], None] | None = None,
        stderr_path: Path | None = None,
        timeout_s: float = 30.0,
        liveness_s: float = 3600.0,
        snapshot_every: int = 5000,
        on_snapshot: Callable[[int, int], None] | None = None,
    ) -> None:
        super().__init__(
            eventlog, post, pier=pier, die=die, argv=argv, stderr_path=stderr_path, timeout_s=timeout_s,
            liveness_s=liveness_s, snapshot_every=snapshot_every, on_snapshot=on_snapshot,
        )  # fmt: skip
        self._pier = pier
        self._events: PierLog | None = None
        self._synced = False  # the pier holds exactly the committed log; False after a failure
        self._worker_started_s = 0.0

    def _usable(self) -> bool:
        return self._synced

    def _fail(self, reason: str) -> None:
        self._synced = False  # until a restart has cut the pier back to the committed log
        super()._fail(reason)

    def stop(self, timeout_s: float = 5.0) -> None:
        super().stop(timeout_s)
        if self._events is not None and not self._thread.is_alive():  # never closed under the thread
            self._events.close()

    # ---- the pier's log ------------------------------------------------------------------------

    def _pier_log(self, refresh: bool = False) -> PierLog:
        """The pier's newest epoch; with `refresh`, opened again if the worker rolled a new one."""
        if self._events is not None and refresh and epochs(self._pier)[-1:] != [self._events.base]:
            self._events.close()
            self._events = None
        if self._events is None:
            if not log_dir(self._pier).exists():  # a chopped or bootstrapped log continues a snapshot
                base = int(self._log.meta().get("base", 0))
                self._events = PierLog.create(self._pier, pier_meta(self._log), base=base)
            else:
                self._events = PierLog(self._pier)
        return self._events

    def _sync_pier(self, upto: int) -> None:
        """Make the pier's log hold exactly the local (committed) log up to `upto`: cut back whatever the
        worker logged that was not committed, then append what was committed since."""
        events = self._pier_log(refresh=True)
        agree = min(events.head(), upto)
        floor = max(events.base, int(self._log.meta().get("base", 0)))  # below it the log holds nothing
        scanned = 0
        while agree > floor and events.get(agree) != self._log.get(agree):
            agree -= 1
            scanned += 1
            if scanned > AGREEMENT_SCAN_MAX:
                raise PierError(f"the pier's log differs from the committed one for over {scanned} events")
        cut = events.truncate_after(agree)
        if cut:
            log.warning("cut uncommitted events from the pier", extra={"after": agree, "events": cut})
        while agree < upto:
            chunk = list(self._log.read(agree + 1, min(upto, agree + SYNC_CHUNK_EVENTS)))
            if not chunk or chunk[0][0] != agree + 1:
                raise PierError(f"the local log does not hold event {agree + 1} for the pier")
            agree = events.append(chunk)

    def _peeker(self) -> Mars | None:  # type: ignore[override]
        """The running worker, if any: a peek never starts one (a follower must not run its ship)."""
        return self._serf if isinstance(self._serf, Mars) else None

    def _stop_worker(self) -> None:
        """SIGKILL the worker (never %exit: 4.x snapshots on %exit) and free the LMDB reader slot it held."""
        if self._serf is not None:
            self._serf.kill()
            self._serf = None
            if self._events is not None:
                self._events.clear_stale_readers()

    # ---- requests --------------------------------------------------------------------------------

    def _restart(self) -> None:
        self._stop_worker()
        self._synced = False
        durable = self._log.last_event()
        self._sync_pier(durable)
        self._synced = True
        self._post(m.RuntimeReady(durable))

    def _apply(self, upto: int) -> None:
        self._stop_worker()  # its state would fall behind the log it owns
        self._sync_pier(upto)
        self._post(m.Applied(upto))

    def _start_worker(self) -> Mars | None:
        """A worker replayed to the committed log, or None (and Diverged posted) if its state is not the
        log's."""
        durable = self._log.last_event()
        self._sync_pier(durable)
        written = self._stderr_size()
        try:
            mars = Mars(self._argv, stderr_path=self._stderr_path, timeout_s=self._timeout_s,
                        work_timeout_s=self._liveness_s)  # fmt: skip
        except SerfDied:
            mismatch = self._replay_mismatch(written)
            if mismatch is None:
                raise
            self._synced = False
            self._post(m.Diverged(*mismatch))
            return None
        self._serf = mars  # type: ignore[assignment]
        self._worker_started_s = time.monotonic()
        self._pier_log(refresh=True)  # vere may roll an epoch as it starts
        why = self._disagreement(mars.ripe.eve, mars.ripe.mug, durable)
        if why:
            self._stop_worker()
            self._synced = False
            self._post(m.Diverged(mars.ripe.eve, why))
            return None
        return mars

    def _stderr_size(self) -> int:
        path = self._stderr_path
        return path.stat().st_size if path is not None and path.exists() else 0

    def _replay_mismatch(self, since: int) -> tuple[int, str] | None:
        """The event whose logged mug the worker's replay did not reach, from what it wrote (after
        `since`) before exiting: vere 4.x's mars.c and the reference ship say "play (N): mug mismatch"."""
        if self._stderr_path is None or self._stderr_size() <= since:
            return None
        with open(self._stderr_path, "rb") as f:
            f.seek(max(since, self._stderr_size() - STDERR_TAIL_BYTES))
            tail = f.read().decode(errors="replace")
        found = _MUG_MISMATCH.findall(tail)
        if not found:
            return None
        event, text = found[-1]
        return int(event), f"the worker's replay: {text.strip()}"

    def _disagreement(self, eve: int, mug: int, durable: int) -> str:
        if eve != durable:
            return f"the worker started at event {eve}, the committed log ends at {durable}"
        record = self._log.get(eve)
        logged = decode_record(record).mug if record is not None else self._base_mug(eve)
        if logged and logged != mug:
            return f"mug {mug:#x} after event {eve}, the log says {logged:#x}"
        return ""

    def _ready_for(self, jobs: list[Job]) -> bool:
        """The worker, started (it replays the committed log) on the first event to run. Every job
        gathered hears why when it cannot start."""
        if isinstance(self._serf, Mars):
            return True
        try:
            if self._start_worker() is not None:
                return True
            why = "the runtime's state is not the committed log's"
        except Exception as e:
            for job in jobs:
                self._post(m.WorkRefused(f"the runtime did not start: {e}", job.awaited))
            raise
        for job in jobs:
            self._post(m.WorkRefused(why, job.awaited))
        return False

    def _submit(self, job: Job) -> None:
        _, wire, card = split_event(job.noun)  # the worker stamps the time itself
        self._worker().submit_poke((wire, card))

    def _result(self) -> tuple[int, bytes, list[Noun]]:
        """The next poke's event, its record as the worker logged it (final @da, or the %crud that
        replaced it), and its effects."""
        done = self._worker().next_poke_result()
        record = self._pier_log().get(done.eve)
        if record is None:
            raise SerfError(f"the worker answered event {done.eve} but its log does not hold it")
        return done.eve, record, done.effects

    def _worker(self) -> Mars:
        if not isinstance(self._serf, Mars):
            raise SerfError("no worker is running")
        return self._serf

    def _snapshot(self) -> None:
        """Snapshot at a committed event only. A master's worker saves when it holds nothing uncommitted;
        a follower starts a worker to replay what it appended, checks its mug, saves and stops it. A
        master's worker that has run for WORKER_MAX_AGE_S is saved and stopped in a quiet moment, long
        before vere's own snapshot timer (46 days) could save run-ahead."""
        durable = self._log.last_event()
        mars = self._serf if isinstance(self._serf, Mars) else None
        aged = mars is not None and time.monotonic() - self._worker_started_s > WORKER_MAX_AGE_S
        if durable - self._last_snapshot < self._snapshot_every and not aged:
            return
        if mars is not None and mars.eve > durable:
            return  # run-ahead: not now
        started = mars is None
        if started and (mars := self._start_worker()) is None:
            return
        eve, mug = mars.save()
        why = self._disagreement(eve, mug, eve)
        if started or aged:
            self._stop_worker()  # the next event starts one again, from this snapshot
        if why:
            self._synced = False
            self._post(m.Diverged(eve, why))
            return
        self._saved(eve, mug)
