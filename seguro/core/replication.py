"""The replication core: one replica's election, fencing, batching and effect-release decisions.

A plain state machine. `step(event, now_s)` and `tick(now_s)` return a `Ready` (seguro.core.messages) that a
driver performs; results come back as events. No sockets, no threads, no clocks: time is passed in.

Roles:
  WAITING    has not yet seen the ship's genesis in etcd: stores nothing, never campaigns. A ship comes
             into being only by `seguro ship create` (or a pier import); a node never boots one itself.
  FOLLOWER   holds a lease, stores and applies committed batches pushed to it, campaigns when no master.
  PROMOTING  won the master key; catches its log up to etcd's head and its runtime up to its log.
  MASTER     runs events ahead, commits them in fenced batches, releases effects of committed events
             while its local lease deadline holds.
  STOPPED    its runtime diverged from the log; it applies nothing more until an operator looks.

Safety rests on two things this module decides and the etcd adapter enforces: every append compares the
master key's create revision (the epoch) and the log head inside the same etcd transaction; and effects
leave only before the self-fencing deadline (seguro.core.fencing). A master that loses either stops emitting
at once, throws its run-ahead away (the runtime restarts from the committed log) and becomes a follower.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from seguro.core import messages as m
from seguro.core.admission import Standing, why_refuse_push
from seguro.core.batcher import Batcher
from seguro.core.config import Config
from seguro.core.election import Candidacy, Elector
from seguro.core.fencing import LeaseKeeper
from seguro.core.genesis import genesis_verdict
from seguro.core.promotion import Promotion
from seguro.core.release import EffectGate
from seguro.core.retention import Retention
from seguro.invariant import require

log = logging.getLogger(__name__)

WAITING_REASON = "waiting for the ship's genesis record in etcd (create it: seguro ship create)"

WAITING, FOLLOWER, PROMOTING, MASTER, STOPPED = "waiting", "follower", "promoting", "master", "stopped"


class Replica:
    """One replica's decisions. See the module docstring for the roles."""

    def __init__(self, config: Config, durable_event: int, genesis: str | None = None) -> None:
        self.cfg = config
        self.role = WAITING
        self.genesis = genesis  # the genesis the local log belongs to; None while it holds nothing
        self._genesis_revision = 0  # etcd revision of the newest genesis read acted on
        self.epoch = 0  # our fencing token while PROMOTING/MASTER
        self.highest_epoch = 0
        self.durable = durable_event  # last event in the local log (only committed events go there)
        self.committed = durable_event  # highest event known committed in etcd
        self.applied = 0  # runtime's event number (past `durable` on a master running ahead)
        self.runtime_ready = False
        self.stop_reason = ""
        self._keeper = LeaseKeeper(config.lease_ttl_s, config.lease_margin_s)
        self._master: m.MasterObserved | None = None
        self._elector = Elector(config.campaign_retry_s, config.failover_grace_s)
        self._promotion = Promotion(config.catch_up_retry_s, config.promotion_timeout_s)
        self._last_resign_s = float("-inf")
        self._retention = Retention(config.etcd_retain_events, config.etcd_retain_bytes)
        self._running = 0  # jobs handed to the runtime and not yet answered
        self._last_worked = 0  # highest event the runtime has reported done
        self._batcher = Batcher(config.max_batch_bytes, config.max_batch_events)
        self._inflight: m.Commit | None = None
        self._seq = 0
        self._gate = EffectGate(config.ack_replicas)
        self._awaiting: dict[int, object] = {}  # event -> job whose sender waits for its commit
        self.counters = {"dropped": 0, "refused": 0, "effects_released": 0, "effects_discarded": 0,
                         "pushes_refused": 0}  # fmt: skip

    # ---- public -------------------------------------------------------------------------------

    def step(self, event: m.Event, now_s: float) -> m.Ready:
        """Feed one event; returns what to do now."""
        ready = m.Ready()
        handler = getattr(self, "_on_" + type(event).__name__)
        handler(event, now_s, ready)
        self._progress(now_s, ready)
        return ready

    def tick(self, now_s: float) -> m.Ready:
        """Feed the passage of time: lease renewals, campaigns, the self-fencing deadline."""
        ready = m.Ready()
        self._lease_timers(now_s, ready)
        self._progress(now_s, ready)
        return ready

    def lease_deadline_s(self) -> float:
        """The self-fencing deadline; a driver re-checks it right before effects leave."""
        lease = self._keeper.lease
        return lease.deadline_s if self.role == MASTER and lease is not None else float("-inf")

    def lease_id(self) -> int | None:
        return self._keeper.lease_id

    def status(self, now_s: float) -> dict[str, object]:
        return {
            "id": self.cfg.node_id,
            "role": self.role,
            "epoch": self.epoch if self.role in (MASTER, PROMOTING) else self.highest_epoch,
            "durable_event": self.durable,
            "applied_event": self.applied,
            "runtime_ready": self.runtime_ready,
            "committed_event": self.committed,
            "lease_remaining_s": round(self._keeper.remaining_s(now_s), 3),
            "error": self.stop_reason or (WAITING_REASON if self.role == WAITING else ""),
            "genesis": self.genesis or "",
            "nofailover": self.cfg.nofailover,
            "holding_off": self._elector.holding_off(now_s),
            "failover_priority": self.cfg.failover_priority,
            "campaign": self._elector.why_not if self.role == FOLLOWER else "",
            "paused": self._elector.paused,
            "candidate": self._elector.candidate,
            **self.counters,
        }

    # ---- lease --------------------------------------------------------------------------------

    def _lease_timers(self, now_s: float, ready: m.Ready) -> None:
        ready.grant_lease, ready.renew_lease = self._keeper.due(now_s)

    def _on_LeaseGranted(self, ev: m.LeaseGranted, now_s: float, ready: m.Ready) -> None:
        ready.revoke_lease = self._keeper.granted(ev.lease_id, ev.ttl_s, ev.sent_at_s)

    def _on_KeepaliveAcked(self, ev: m.KeepaliveAcked, now_s: float, ready: m.Ready) -> None:
        self._keeper.acked(ev.lease_id, ev.ttl_s, ev.sent_at_s)

    def _on_LeaseLost(self, ev: m.LeaseLost, now_s: float, ready: m.Ready) -> None:
        if self._keeper.lost(ev.lease_id):
            self._fence("lease lost", ready)

    def _on_LeaseRequestFailed(self, ev: m.LeaseRequestFailed, now_s: float, ready: m.Ready) -> None:
        self._keeper.failed(now_s)

    # ---- genesis ------------------------------------------------------------------------------

    def _on_GenesisObserved(self, ev: m.GenesisObserved, now_s: float, ready: m.Ready) -> None:
        """Join the ship etcd holds, or refuse to run if the local log belongs to another: never write over
        either side. A log with events but no genesis id cannot prove whose it is, so it refuses too."""
        if ev.revision < self._genesis_revision:
            return  # an older read than one we already acted on
        self._genesis_revision = ev.revision
        join, refuse = genesis_verdict(self.genesis, self.durable, ev.genesis_id)
        if refuse:
            self._halt(refuse, ready)
        elif join is not None:
            if self.genesis is None:
                self.genesis = ready.record_genesis = join
                log.info("joined the ship", extra={"genesis": join})
            if self.role == WAITING:
                self.role = FOLLOWER

    def _halt(self, reason: str, ready: m.Ready) -> None:
        self._fence("genesis mismatch", ready)
        self.role, self.stop_reason = STOPPED, f"refusing to run: {reason}"
        ready.halt = self.stop_reason

    # ---- election -----------------------------------------------------------------------------

    def _on_MasterObserved(self, ev: m.MasterObserved, now_s: float, ready: m.Ready) -> None:
        if self._master is not None and ev.revision < self._master.revision:
            return  # an older view than one we already acted on
        if self.role in (MASTER, PROMOTING) and ev.revision < self.epoch:
            return  # from before our own campaign
        self._master = ev
        self._elector.key_seen(ev.holder, now_s)
        self.highest_epoch = max(self.highest_epoch, ev.epoch)
        mine = ev.holder == self.cfg.node_id and ev.epoch == self.epoch
        if self.role in (MASTER, PROMOTING) and not mine:
            self._fence(f"master key now {ev.holder or 'absent'} at epoch {ev.epoch}", ready)

    def _on_CampaignResult(self, ev: m.CampaignResult, now_s: float, ready: m.Ready) -> None:
        self._elector.inflight = False
        if ev.error:
            log.warning("campaign failed", extra={"error": ev.error})
            return
        if not ev.won or self.role != FOLLOWER or ev.lease_id != self.lease_id():
            if ev.won:  # we stopped, fenced or changed lease meanwhile: give the key back
                ready.resign_epoch = ev.epoch
            return
        ours_seen = self._master is not None and self._master.holder == self.cfg.node_id
        if ev.epoch < self.highest_epoch or (ev.epoch == self.highest_epoch and not ours_seen):
            # The reply was slower than the watch: that key has died and a later master has been seen.
            ready.resign_epoch = ev.epoch  # compare-and-delete: harmless if it is long gone
            return
        self.role, self.epoch, self.highest_epoch = PROMOTING, ev.epoch, ev.epoch
        self._promotion.begin(now_s)
        self._gate.forget_acks()
        log.info("won master key; catching up", extra={"epoch": ev.epoch, "durable": self.durable})

    def _on_CatchUpFetched(self, ev: m.CatchUpFetched, now_s: float, ready: m.Ready) -> None:
        """A master stores only what it committed itself: a late read must never raise `committed`
        over its held effects (the fencing argument already excludes another writer; this does not
        lean on it)."""
        if self.role in (FOLLOWER, PROMOTING):
            self._store_committed(ev.batch, ready)

    def _on_CatchUpDone(self, ev: m.CatchUpDone, now_s: float, ready: m.Ready) -> None:
        if self.role != PROMOTING or ev.epoch != self.epoch:
            return  # a read for an earlier promotion
        if ev.error:
            log.warning("catch-up failed", extra={"error": ev.error})
        self._promotion.read_done(self.durable, ev.head, bool(ev.error), now_s)
        if self._promotion.caught_up:
            self.committed = max(self.committed, ev.head)

    def _on_Reconfigured(self, ev: m.Reconfigured, now_s: float, ready: m.Ready) -> None:
        self.cfg = replace(self.cfg, nofailover=ev.nofailover, failover_priority=ev.failover_priority)

    def _on_StepDown(self, ev: m.StepDown, now_s: float, ready: m.Ready) -> None:
        if self.role in (MASTER, PROMOTING):
            self._fence("operator step-down", ready)
            self._elector.hold_off(now_s + 2 * self.cfg.lease_ttl_s)  # let someone else win

    def _maybe_campaign(self, now_s: float, ready: m.Ready) -> None:
        lease = self._keeper.lease
        if self.role != FOLLOWER or lease is None or not self.runtime_ready:
            return
        if lease.remaining_s(now_s) < self.cfg.lease_margin_s:
            return
        me = Candidacy(self.cfg.node_id, self.durable, self.cfg.nofailover, self.cfg.failover_priority)
        ready.campaign = self._elector.due(me, now_s)

    def _on_PeersObserved(self, ev: m.PeersObserved, now_s: float, ready: m.Ready) -> None:
        """The registry as published: who may serve first, and whose acks still count (a replica an
        operator forgot stops counting at once, towards `ack_replicas` and trimming alike)."""
        self._elector.peers, self._elector.paused, self._elector.candidate = ev.peers, ev.paused, ev.candidate
        self._gate.keep_acks_of({p.replica_id for p in ev.peers})

    def _resign_stale_key(self, now_s: float, ready: m.Ready) -> None:
        """The master key still names us though we do not serve (fenced, stopped, runtime down): delete it,
        and keep trying, so that another can win. Our lease, which we keep renewing, would keep it alive."""
        key = self._master
        if self.role not in (FOLLOWER, STOPPED) or self._elector.inflight or key is None:
            return
        if key.holder == self.cfg.node_id and now_s - self._last_resign_s >= self.cfg.resign_retry_s:
            ready.resign_epoch = self._master.epoch
            self._last_resign_s = now_s

    def _maybe_catch_up(self, now_s: float, ready: m.Ready) -> None:
        if self.role == PROMOTING and self._promotion.read_due(now_s):
            ready.catch_up_from = self.durable + 1

    def _maybe_finish_promotion(self, ready: m.Ready) -> None:
        if self.role != PROMOTING or not self._promotion.caught_up or not self.runtime_ready:
            return
        if self.applied < self.durable:
            return  # the runtime is still applying; Applied brings us back here
        self.role = MASTER
        self._last_worked = self.durable
        self.committed = self.durable
        ready.record_epoch = (self.epoch, self.durable + 1)
        self._running = 0
        log.info("master", extra={"epoch": self.epoch, "next_event": self.durable + 1})

    def _fence(self, reason: str, ready: m.Ready) -> None:
        """Stop being master now: no effect leaves, run-ahead is thrown away, the key is given back."""
        if self.role not in (MASTER, PROMOTING):
            return
        log.warning("fenced", extra={"reason": reason, "epoch": self.epoch})
        self.counters["effects_discarded"] += self._gate.discard()
        self._batcher.clear()
        in_flight = self._inflight.batch.last_event if self._inflight is not None else 0
        self._inflight = None
        lost = f"lost to a fence before it was committed ({reason})"
        unknown = f"outcome unknown: its commit was in flight when this replica was fenced ({reason})"
        ready.answers += [(job, 0, unknown if e <= in_flight else lost) for e, job in self._awaiting.items()]
        ready.answers += [(job, 0, lost) for job in ready.run]
        self._awaiting.clear()
        ready.run.clear()  # jobs decided earlier in this same step are run-ahead too
        ready.commit = None
        ready.trim_below = None  # a trim is the master's, under its fence: a fenced node trims nothing
        ready.release.clear()
        if self._running or self.applied > self.durable:
            ready.restart_runtime = True
            self.runtime_ready = False
        if self._keeper.lease is not None:
            ready.resign_epoch = self.epoch
        self.role = FOLLOWER
        self.epoch = 0
        self._running = 0
        self._promotion.stop()

    # ---- master: run ahead, commit, release ----------------------------------------------------

    def _on_IncomingEvent(self, ev: m.IncomingEvent, now_s: float, ready: m.Ready) -> None:
        """Run the event ahead, or say why not: every event not taken is reported in `ready.refused`."""
        reason = self._why_not_run(ev)
        if reason:
            self.counters["refused" if ev.size_bytes > self.cfg.max_event_bytes else "dropped"] += 1
            ready.refused.append((ev, reason))
            return
        self._running += 1
        ready.run.append(ev.job)

    def _why_not_run(self, ev: m.IncomingEvent) -> str:
        if self.role != MASTER:
            return f"this replica is not the master (it is {self.role})"
        if not self.runtime_ready:
            return "the master's runtime is restarting"
        if ev.size_bytes > self.cfg.max_event_bytes:
            return f"event of {ev.size_bytes} bytes exceeds the limit of {self.cfg.max_event_bytes} bytes"
        ahead = self._running + self._last_worked - self.committed
        if max(ahead, len(self._gate)) >= self.cfg.max_run_ahead_events:  # held: waiting for acks
            return f"{self.cfg.max_run_ahead_events} events already wait for their commit or acks"
        return ""

    def _on_WorkDone(self, ev: m.WorkDone, now_s: float, ready: m.Ready) -> None:
        if self.role != MASTER or not self.runtime_ready:  # stale run-ahead from before a fence
            if ev.job is not None:
                ready.answers.append((ev.job, 0, "lost to a fence before it was committed"))
            return
        require(
            ev.eve == self._last_worked + 1,
            "runtime event numbers must be contiguous",
            eve=ev.eve,
            expected=self._last_worked + 1,
        )
        self._last_worked = self.applied = ev.eve
        self._job_answered()
        self._batcher.add([(ev.eve, ev.record)])
        self._gate.hold(ev.eve, ev.effects)
        if ev.job is not None:
            self._awaiting[ev.eve] = ev.job

    def _on_Tailed(self, ev: m.Tailed, now_s: float, ready: m.Ready) -> None:
        """A followed log's next event: committed like run-ahead (a fence throws it away and the tailer
        starts again from the committed log), with nothing to run and no effect to hold."""
        if self.role != MASTER or not self.runtime_ready or ev.epoch != self.epoch:
            return
        require(ev.eve == self._last_worked + 1, "a followed log must be contiguous", eve=ev.eve,
                expected=self._last_worked + 1)  # fmt: skip
        self._last_worked = self.applied = ev.eve
        self._batcher.add([(ev.eve, ev.record)])

    def _job_answered(self) -> None:
        """One job handed to the runtime came back. The count decides whether a fence must restart the
        runtime (it holds run-ahead): an undercount would leave an uncommitted event in it."""
        self._running -= 1
        require(self._running >= 0, "more runtime answers than jobs handed out", running=self._running)

    def _on_WorkRefused(self, ev: m.WorkRefused, now_s: float, ready: m.Ready) -> None:
        """The runtime rejected a job (vere's %work %bail): it takes no event number and is not logged."""
        if ev.job is not None:
            ready.answers.append((ev.job, 0, f"the runtime refused the event: {ev.reason}"))
        if self.role == MASTER and self.runtime_ready:
            self._job_answered()
            self.counters["refused"] += 1

    def _on_RuntimeFailed(self, ev: m.RuntimeFailed, now_s: float, ready: m.Ready) -> None:
        """The runtime died or broke protocol: its state is unknown, so restart it from the log."""
        log.error("runtime failed", extra={"reason": ev.reason})
        self._fence(f"runtime failed: {ev.reason}", ready)
        self.runtime_ready = False
        ready.restart_runtime = True

    def _maybe_commit(self, ready: m.Ready) -> None:
        if self.role != MASTER or self._inflight is not None:
            return
        batch = self._batcher.cut(self.epoch)
        if batch is None:
            return
        require(
            batch.first_event == self.durable + 1,
            "batches must be contiguous with the log",
            first=batch.first_event,
            durable=self.durable,
        )
        self._seq += 1
        self._inflight = m.Commit(self._seq, self.durable, batch)
        ready.commit = self._inflight

    def _on_CommitDone(self, ev: m.CommitDone, now_s: float, ready: m.Ready) -> None:
        inflight = self._inflight
        if inflight is None or ev.seq != inflight.seq or self.role != MASTER:
            return  # a commit from before a fence: etcd has it or not; catch-up will tell
        ours = not ev.fence_lost and ev.actual_head == inflight.batch.last_event  # our own retry landed
        if not (ev.ok or ours):
            if not ev.error:  # etcd answered: the batch is known not committed (an error leaves it unknown)
                self._inflight = None
            self._fence(
                f"commit refused: {ev.error or ('fence lost' if ev.fence_lost else 'head moved')}", ready
            )
            return
        self._inflight = None
        self.committed = inflight.batch.last_event
        for eve in [e for e in self._awaiting if e <= self.committed]:
            ready.answers.append((self._awaiting.pop(eve), eve, ""))
        self._store_committed(inflight.batch, ready)
        self._maybe_trim(ready)

    def _maybe_trim(self, ready: m.Ready) -> None:
        """Keep etcd within its quota (seguro.core.retention)."""
        live = {p.replica_id for p in self._elector.peers if p.fresh}
        ready.trim_below = self._retention.trim_below(self.committed, self._gate.held_by(live))

    def _on_FollowerAck(self, ev: m.FollowerAck, now_s: float, ready: m.Ready) -> None:
        """The follower's durable position now, not its best: one that lost its disk and came back acks
        less, and must stop counting towards `ack_replicas` and trimming for events it no longer holds.
        (A follower's acks come in order over its one push stream; a late one only holds things back.)"""
        self._gate.ack(ev.replica_id, ev.durable_event)

    def _release(self, now_s: float, ready: m.Ready) -> None:
        if self.role != MASTER or not self._gate:
            return
        for eve, effects in self._gate.releasable(self.committed):
            self.counters["effects_released"] += len(effects)
            ready.release.append((eve, effects))

    # ---- follower: store and apply ------------------------------------------------------------

    def _on_BatchReceived(self, ev: m.BatchReceived, now_s: float, ready: m.Ready) -> None:
        """Store a pushed batch, or refuse it with an error ack (seguro.core.admission)."""
        error = self._why_refuse_push(ev)
        if error:
            self.counters["pushes_refused"] += 1
        else:
            self.highest_epoch = max(self.highest_epoch, ev.sender_epoch)
            pushed = m.Batch(0, ev.batch.first_event, ev.batch.records)  # epochs come from etcd, never a peer
            self._store_committed(pushed, ready)
        ready.acks.append(m.AckOut(ev.stream_id, self.durable, self.highest_epoch, error))

    def _why_refuse_push(self, ev: m.BatchReceived) -> str:
        shown = self._master.epoch if self._master is not None else 0
        own = self.epoch if self.role in (MASTER, PROMOTING) else 0
        holder = self._master.holder if self._master is not None else ""
        me = Standing(self.stop_reason if self.role == STOPPED else "", self.role == WAITING, self.genesis,
                      self.highest_epoch, shown, own, self.durable, holder)  # fmt: skip
        return why_refuse_push(ev, me)

    def _store_committed(self, batch: m.Batch, ready: m.Ready) -> None:
        """Persist the part of a committed batch that extends the local log (a catch-up read may overlap it;
        a gap stores nothing)."""
        if batch.first_event > self.durable + 1 or batch.last_event <= self.durable:
            return
        skip = self.durable + 1 - batch.first_event
        fresh = m.Batch(batch.epoch, self.durable + 1, batch.records[skip:])
        ready.persist.append(fresh)
        self._retention.stored(fresh)
        self.durable = fresh.last_event
        self.committed = max(self.committed, self.durable)
        if self.role in (FOLLOWER, PROMOTING) and self.runtime_ready:
            ready.apply_to = self.durable

    def released_through(self) -> int:
        """The highest event whose effects may have left: committed, and held by `ack_replicas` followers.
        Anything the ship says about its state after an event (a scry answer) waits for the same."""
        return min(self.committed, self._gate.ack_floor(self.committed))

    def _on_Applied(self, ev: m.Applied, now_s: float, ready: m.Ready) -> None:
        if self.runtime_ready and self.role != MASTER:
            require(
                ev.eve <= self.durable, "runtime applied past the local log", eve=ev.eve, durable=self.durable
            )
            self.applied = max(self.applied, ev.eve)

    def _on_Diverged(self, ev: m.Diverged, now_s: float, ready: m.Ready) -> None:
        """The runtime matched every event before `ev.eve` (replays check in order), also when the
        divergence came in its start-up replay, before any Applied: status must show how far it got."""
        self._fence("runtime diverged", ready)
        self.applied = max(self.applied, min(ev.eve - 1, self.durable))
        self.role = STOPPED
        self.stop_reason = f"divergence at event {ev.eve}: {ev.detail}"
        ready.stop = self.stop_reason

    def _on_RuntimeReady(self, ev: m.RuntimeReady, now_s: float, ready: m.Ready) -> None:
        require(
            ev.eve <= self.durable,
            "runtime restarted ahead of the committed log",
            eve=ev.eve,
            durable=self.durable,
        )
        self.runtime_ready = True
        self.applied = ev.eve
        if ev.eve < self.durable and self.role != STOPPED:
            ready.apply_to = self.durable

    # ---- every step ---------------------------------------------------------------------------

    def _progress(self, now_s: float, ready: m.Ready) -> None:
        self._resign_stale_key(now_s, ready)
        if self.role == STOPPED:
            return
        if self.role in (MASTER, PROMOTING) and not self._keeper.holds(now_s):
            self._fence("lease deadline passed", ready)
        if self.role == PROMOTING and self._promotion.timed_out(now_s):
            self._fence(f"promotion not done in {self.cfg.promotion_timeout_s} s: let another try", ready)
            self._elector.hold_off(now_s + self.cfg.failover_grace_s)
        self._maybe_catch_up(now_s, ready)
        self._maybe_finish_promotion(ready)
        self._maybe_commit(ready)
        self._release(now_s, ready)
        self._maybe_campaign(now_s, ready)
