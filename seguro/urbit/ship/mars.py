"""The reference ship as a protocol-2 worker (vere >= 4.0's `urbit work`, pkg/vere/mars.c): it owns its
event log as vere 4.x does.

On start it loads its snapshot, replays its own LMDB log (seguro.urbit.pier.log) in batches of at most
500 events, the first holding the whole boot sequence, and only then says %ripe. Each %poke is stamped
with this process's clock, run, written to the log (synced), and answered after the write: `[%poke %.y
effects]`. A crashing event is replaced by its %crud (logged in its place, as mars.c does); an %evil one,
or a %crud that crashes too, answers `[%poke %.n goofs]` and logs nothing. `[%sync %save ~]` snapshots,
`%exit` snapshots and exits 0. A snapshot ahead of the log, or a log that does not replay, is fatal.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path

from seguro.urbit import mars_protocol as p2
from seguro.urbit import newt
from seguro.urbit.noun import Noun, cord, from_list, tape, uncord
from seguro.urbit.pier.layout import PierError
from seguro.urbit.pier.log import PierLog
from seguro.urbit.record import da_from_unix, decode_record, encode_record
from seguro.urbit.ship.kernel import (
    Crash,
    Evil,
    ExitRequested,
    Fatal,
    Kernel,
    crud_job,
    load_snapshot,
    plan,
    save_snapshot,
)
from seguro.urbit.ship.worker import Serf, answer_writs, protocol_fds, sender

log = logging.getLogger(__name__)

PLAY_BATCH = 500  # vere's PIER_PLAY_BATCH


class Mars:
    """The worker's protocol state machine over a Serf (which holds the kernel and its protocol-1 logic)."""

    def __init__(self, pier: Path, kernel: Kernel, events: PierLog, send: Callable[[Noun], None]) -> None:
        self.serf = Serf(pier, kernel, send)
        self.events = events

    @property
    def kernel(self) -> Kernel:
        return self.serf.kernel

    def replay(self) -> None:
        """Play the log from the snapshot to its head, the first batch holding the boot sequence, then
        event by event checking each logged mug as mars.c's `_mars_poke_play` does: Fatal on a mismatch
        ("play (N): mug mismatch ...", vere's words) or an event that does not replay."""
        head = self.events.head()
        if self.kernel.eve > head:
            raise Fatal(f"snapshot at event {self.kernel.eve} is ahead of the log at {head}")
        while self.kernel.eve < head:
            first = self.kernel.eve + 1
            batch = [
                (eve, decode_record(r))
                for eve, r in self.events.read(first, min(head, first + PLAY_BATCH - 1))
            ]
            if first == 1:  # the boot sequence, one play: at least `life` events, all logged with mug 0
                boot = max(
                    self.events.meta.life, next((i for i, (_, r) in enumerate(batch) if r.mug), len(batch))
                )
                if boot > len(batch):
                    raise Fatal(f"play (1): the log holds {len(batch)} events, fewer than life {boot}")
                plays = [(batch[boot - 1], [r.event for _, r in batch[:boot]])]
            else:
                plays = [((eve, r), [r.event]) for eve, r in batch]
            for (eve, record), jobs in plays:
                answer = self.serf.writ((cord("play"), (self.kernel.eve + 1, from_list(jobs))))
                if answer is None or answer[1][0] != cord("done"):  # type: ignore[index]
                    raise Fatal(f"play ({eve}): failed")
                if record.mug and record.mug != self.kernel.mug():
                    actual = self.kernel.mug()
                    raise Fatal(f"play ({eve}): mug mismatch expected {record.mug:08x}, actual {actual:08x}")

    def ripe(self) -> Noun:
        meta = self.events.meta
        identity = (meta.who, p2.YES if meta.fake else p2.NO)
        return (cord("ripe"), ((p2.PROTOCOL, 0), (identity, (self.kernel.eve, self.kernel.mug()))))

    def writ(self, writ: Noun) -> Noun | None:
        if not isinstance(writ, tuple) or not isinstance(writ[0], int):
            raise Fatal("writ is not [tag data]")
        name, dat = uncord(writ[0]), writ[1]
        if name == "poke" and isinstance(dat, tuple):
            return self._poke(dat[1])
        if name == "peek" and isinstance(dat, tuple):
            _, (how, result) = self.serf.writ((cord("peek"), dat))  # type: ignore[misc]
            return (cord("peek"), (p2.YES if how == cord("done") else p2.NO, result))
        if name == "sync" and dat == (cord("save"), 0):
            save_snapshot(self.serf.pier, self.kernel)
            return (cord("sync"), (self.kernel.eve, self.kernel.mug()))
        if name == "live" and isinstance(dat, tuple) and dat[0] in (cord("pack"), cord("meld")):
            return (cord("live"), 0)
        if name == "quiz" and isinstance(dat, tuple) and dat[0] in (cord("quac"), cord("quic")):
            body: Noun = 0 if dat[0] == cord("quac") else from_list([(cord("open"), 0), (cord("idle"), 0)])
            return (cord("quiz"), (dat[0], body))
        if name == "exit":
            save_snapshot(self.serf.pier, self.kernel)
            raise ExitRequested(0)
        raise Fatal(f"bad writ %{name}")

    def _poke(self, ovum: Noun) -> Noun:
        if self.kernel.eve == 0:
            raise Fatal("%poke before boot")
        job: Noun = (da_from_unix(time.time()), ovum)
        try:
            step = plan(self.kernel, job, live=True)
        except Evil as evil:
            return (cord("poke"), (p2.NO, from_list([evil.goof])))
        except Crash as crash:
            job = crud_job(job, crash.goof)
            try:
                step = plan(self.kernel, job)
            except Crash as again:
                return (cord("poke"), (p2.NO, from_list([crash.goof, again.goof])))
        self.kernel.commit(step)
        self.events.append([(self.kernel.eve, encode_record(self.kernel.mug(), job))])
        return (cord("poke"), (p2.YES, from_list(step.effects)))


def serve(pier: Path, max_frame_bytes: int = newt.MAX_FRAME_BYTES_DEFAULT, diverge_at: int = 0) -> int:
    """Replay, say %ripe, and answer writs on this process's stdin/stdout until %exit or EOF."""
    inn_fd, out_fd = protocol_fds()
    try:
        events = PierLog(pier)
        kernel = load_snapshot(pier)
        kernel.diverge_at = diverge_at
        mars = Mars(pier, kernel, events, sender(out_fd))
        mars.replay()
    except (Fatal, PierError) as exc:
        log.error("mars: %s", exc)
        return 1
    try:
        mars.serf.send((cord("slog"), (0, (cord("leaf"), tape(f"replayed to event {kernel.eve}")))))
        mars.serf.send(mars.ripe())
        return answer_writs(inn_fd, mars.writ, mars.serf.send, max_frame_bytes, "mars")
    finally:
        events.close()


def run(pier: Path, max_frame_bytes: int, log_level: str, diverge_at: int) -> int:
    logging.basicConfig(level=log_level.upper(), stream=sys.stderr, format="ship %(levelname)s %(message)s")
    return serve(pier, max_frame_bytes, diverge_at)
