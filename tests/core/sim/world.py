"""A seeded, deterministic simulation of several replicas over the in-memory etcd model.

Each replica is the real `seguro.core.replication.Replica`; this file plays the driver's part with random
latencies, and injects faults: pauses (SIGSTOP), crashes and restarts, lease extensions from etcd leader
changes, dropped watch notifications, appends whose reply is lost (the outcome unknown to the master),
cuts from etcd (requests lost; replies and watch events held up), and stalls that catch a lease reply
between its arrival and its handling (etcd renewed the lease long before the node learns of it: a
deadline counted from the reply's arrival instead of the request's send time then outlives the lease),
runtime deaths, and commits retried by the adapter after a lost reply. The master trims etcd to a small
window, so a lagging replica that wins must fetch the trimmed events from a peer's log.
Every effect release is checked against the model's truth at that instant: a release by anyone but the
live lease holder of the master key, or of an uncommitted event, is a double boot. Every commit is
checked against a replay of the log before it (a forked runtime), every trim against the other
replicas' logs (etcd must never be an event's only copy besides the master's disk).
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from seguro.core import messages as m
from seguro.core.config import Config
from seguro.core.election import PeerView
from seguro.core.replication import MASTER, Replica
from tests.core.sim.model import MemEtcd, Trimmed
from tests.core.sim.oracle import Oracle, chain_mug, decode, encode

TICK_S = 0.05


@dataclass
class SimNode:
    node_id: str
    core: Replica
    log: list[bytes] = field(default_factory=list)
    generation: int = 0  # bumps on crash: in-flight deliveries to the old process are lost
    paused_until_s: float = 0.0
    crashed: bool = False
    rt_eve: int = 0
    rt_mug: int = 0
    rt_busy_until_s: float = 0.0
    push_next: dict[str, int] = field(default_factory=dict)
    mailbox: deque[m.Event] = field(default_factory=deque)
    wake_scheduled: bool = False
    genesis: str | None = None  # what the node's local log metadata says, kept across crashes
    cut_until_s: float = 0.0  # cut off from etcd: requests lost, replies already on their way held up
    stall_on_lease_reply_s: float = 0.0  # the next lease reply finds it paused: it is handled this late


class World:
    def __init__(
        self, seed: int, nodes: int = 3, ttl_s: float = 3.0, ack_replicas: int = 0, retain_events: int = 40
    ) -> None:
        self.seed, self.rng, self.now_s = seed, random.Random(seed), 0.0
        self.etcd = MemEtcd()
        self.ttl_s, self.ack_replicas, self.retain_events = ttl_s, ack_replicas, retain_events
        self.queue: list[tuple[float, int, Callable[[], None]]] = []
        self.counter = itertools.count()
        self.nodes = {f"n{i}": self._fresh(f"n{i}", [], None) for i in range(nodes)}
        self.genesis_id = f"genesis-{seed}"
        self.oracle = Oracle(self)
        self.registry: dict[str, tuple[int, float]] = {}  # replica -> (durable event, published at)
        self.faults = True
        self.watch_drop_p, self.commit_reply_loss_p = 0.2, 0.05
        self.packets = 0
        for node in self.nodes.values():
            self._boot_runtime(node)

    # ---- plumbing -----------------------------------------------------------------------------

    def _fresh(self, node_id: str, log: list[bytes], genesis: str | None) -> SimNode:
        cfg = Config(
            node_id=node_id,
            lease_ttl_s=self.ttl_s,
            ack_replicas=self.ack_replicas,
            etcd_retain_events=self.retain_events,
        )
        return SimNode(node_id, Replica(cfg, len(log), genesis), log=log, genesis=genesis)

    def at(self, delay_s: float, fn: Callable[[], None]) -> None:
        heapq.heappush(self.queue, (self.now_s + delay_s, next(self.counter), fn))

    def lat(self) -> float:
        base = self.rng.uniform(0.001, 0.02)
        return base + (self.rng.uniform(0.1, 0.8) if self.faults and self.rng.random() < 0.02 else 0.0)

    def deliver(self, node: SimNode, event: m.Event, delay_s: float | None = None) -> None:
        generation = node.generation
        self.at(self.lat() if delay_s is None else delay_s, lambda: self._handle(node, generation, event))

    def _handle(self, node: SimNode, generation: int, event: m.Event | None) -> None:
        if node.generation != generation or node.crashed:
            return
        if node.stall_on_lease_reply_s and isinstance(event, (m.KeepaliveAcked, m.LeaseGranted)):
            node.paused_until_s = max(node.paused_until_s, self.now_s + node.stall_on_lease_reply_s)
            node.stall_on_lease_reply_s = 0.0  # etcd renewed the lease at its end of the wire long ago
        if self.now_s < node.paused_until_s or node.mailbox:  # SIGSTOPped: it reads its mail, in order,
            if event is not None:  # when it wakes (ticks just do not happen meanwhile)
                node.mailbox.append(event)
            self._wake_later(node, generation)
            return
        ready = node.core.tick(self.now_s) if event is None else node.core.step(event, self.now_s)
        self.perform(node, ready)

    def _wake_later(self, node: SimNode, generation: int) -> None:
        if not node.wake_scheduled:
            node.wake_scheduled = True
            self.at(max(0.0, node.paused_until_s - self.now_s), lambda: self._wake(node, generation))

    def _wake(self, node: SimNode, generation: int) -> None:
        node.wake_scheduled = False
        if node.generation != generation or node.crashed:
            return
        if self.now_s < node.paused_until_s:  # the pause was extended
            self._wake_later(node, generation)
            return
        while node.mailbox and self.now_s >= node.paused_until_s:
            event = node.mailbox.popleft()
            self.perform(node, node.core.step(event, self.now_s))

    def reply(self, node: SimNode, event: m.Event) -> None:
        """An etcd reply: held up (not lost) while the node is cut off from etcd."""
        cut_s = node.cut_until_s - self.now_s
        self.deliver(node, event, delay_s=self.lat() + self.rng.uniform(0, cut_s) if cut_s > 0 else None)

    def cut(self, node: SimNode) -> bool:
        return self.now_s < node.cut_until_s

    def violation(self, message: str) -> None:
        self.oracle.violation(message)

    @property
    def released(self) -> dict[int, str]:
        return self.oracle.released

    def check_converged(self) -> None:
        self.oracle.check_converged()

    # ---- the driver's part --------------------------------------------------------------------

    def perform(self, node: SimNode, ready: m.Ready) -> None:
        if ready.record_genesis is not None:
            node.genesis = ready.record_genesis
        if ready.halt:
            self.violation(f"{node.node_id} halted: {ready.halt}")
        for batch in ready.persist:
            self._persist(node, batch)
        for ack in ready.acks:
            master = self.nodes[f"n{ack.stream_id}"]
            if not ack.error:
                self.deliver(master, m.FollowerAck(node.node_id, ack.durable_event))
            # An error ack ends the real stream; the reconnect's hello is answered with the follower's
            # position, so the next push starts there either way (and is not counted as an ack).
            master.push_next[node.node_id] = ack.durable_event + 1
        if ready.commit is not None:
            self._commit(node, ready.commit)
        for eve, effects in ready.release:
            self.oracle.check_release(node, eve, effects)
        if ready.restart_runtime:
            self._boot_runtime(node)
        for job in ready.run:
            self._run(node, str(job))
        if ready.apply_to is not None:
            self._apply(node, ready.apply_to)
        self._etcd_requests(node, ready)
        if ready.trim_below is not None:
            self._trim(node, ready.trim_below)
        if ready.stop:
            self.violation(f"{node.node_id} stopped: {ready.stop}")

    def _persist(self, node: SimNode, batch: m.Batch) -> None:
        self.oracle.check_persist(node, batch)
        node.log.extend(batch.records)

    def _trim(self, node: SimNode, below: int) -> None:
        self.oracle.check_trim(node, below)
        epoch = node.core.epoch
        self.at(self.lat(), lambda: self.etcd.trim(epoch, below, self.now_s))

    def _commit(self, node: SimNode, commit: m.Commit) -> None:
        def land() -> None:
            head_before = self.etcd.head
            result = self.etcd.append(commit, self.now_s)
            if result.ok:
                self.oracle.check_chain(head_before + 1)
            if self.faults and self.rng.random() < self.commit_reply_loss_p:
                if self.rng.random() < 0.5:  # the outcome is unknown to the master
                    result = m.CommitDone(commit.seq, ok=False, error="etcd request timed out")
                else:  # the adapter retried: a landed first try shows up as the head at our last event
                    result = self.etcd.append(commit, self.now_s)
            self.reply(node, result)

        if self.cut(node):
            self.at(
                node.cut_until_s - self.now_s,
                lambda: self.deliver(node, m.CommitDone(commit.seq, ok=False, error="cut")),
            )
        else:
            self.at(self.lat(), land)

    def _runtime_done(self, node: SimNode, event: m.Event) -> None:
        """The runtime answers in order: a restart's RuntimeReady comes after the work queued before it."""
        node.rt_busy_until_s = max(node.rt_busy_until_s, self.now_s) + self.rng.uniform(0.0005, 0.003)
        self.deliver(node, event, delay_s=node.rt_busy_until_s - self.now_s)

    def _boot_runtime(self, node: SimNode) -> None:
        node.rt_eve, node.rt_mug = 0, 0
        self._apply_quietly(node, len(node.log))
        self._runtime_done(node, m.RuntimeReady(node.rt_eve))

    def _apply_quietly(self, node: SimNode, upto: int) -> int | None:
        while node.rt_eve < min(upto, len(node.log)):
            mug, job = decode(node.log[node.rt_eve])
            node.rt_mug = chain_mug(node.rt_mug, job)
            node.rt_eve += 1
            if mug != node.rt_mug:
                return node.rt_eve
        return None

    def _apply(self, node: SimNode, upto: int) -> None:
        bad = self._apply_quietly(node, upto)
        if bad is not None:
            self._runtime_done(node, m.Diverged(bad, "mug mismatch"))
        else:
            self._runtime_done(node, m.Applied(node.rt_eve))

    def _run(self, node: SimNode, job: str) -> None:
        if job.startswith("bail"):
            self._runtime_done(node, m.WorkRefused("bailed"))
            return
        node.rt_mug, node.rt_eve = chain_mug(node.rt_mug, job), node.rt_eve + 1
        self._runtime_done(node, m.WorkDone(node.rt_eve, encode(node.rt_mug, job), (f"fx:{job}",)))

    def _etcd_requests(self, node: SimNode, ready: m.Ready) -> None:
        sent_at_s = self.now_s
        if ready.grant_lease:

            def grant() -> None:
                lease_id = self.etcd.grant(self.ttl_s, self.now_s)
                self.reply(node, m.LeaseGranted(lease_id, self.ttl_s, sent_at_s))

            self.at(self.lat(), grant)
            if self.faults and self.rng.random() < 0.3:  # an earlier, slow grant comes back late
                self.at(self.rng.uniform(0.0, self.ttl_s), grant)
        if ready.renew_lease is not None and self.cut(node):
            self.at(node.cut_until_s - self.now_s, lambda: self.deliver(node, m.LeaseRequestFailed("cut")))
        elif ready.renew_lease is not None:
            lease_id = ready.renew_lease

            def renew() -> None:
                ttl_s = self.etcd.keepalive(lease_id, self.now_s)
                reply = (
                    m.LeaseLost(lease_id) if ttl_s is None else m.KeepaliveAcked(lease_id, ttl_s, sent_at_s)
                )
                self.reply(node, reply)

            self.at(self.lat(), renew)
        if ready.campaign:
            lease_id, genesis = node.core.lease_id() or -1, node.core.genesis

            def campaign() -> None:
                self.reply(node, self.etcd.campaign(node.node_id, lease_id, genesis, self.now_s))
                self.notify_master()

            self.at(self.lat(), campaign)
        if ready.catch_up_from is not None:
            first, epoch = ready.catch_up_from, node.core.epoch

            def read() -> None:
                try:
                    batches = self.etcd.read_from(first)
                except Trimmed as e:  # the trimmed part comes from a live peer's log, the rest from etcd
                    peer = self._peer_holding(node, e.first_available - 1)
                    if peer is None:
                        self.deliver(node, m.CatchUpDone(0, epoch, error="no live peer holds them"))
                        return
                    records = tuple(peer.log[first - 1 : e.first_available - 1])
                    batches = [m.Batch(0, first, records), *self.etcd.read_from(e.first_available)]
                for batch in batches:
                    self.deliver(node, m.CatchUpFetched(batch), delay_s=0.001)
                self.deliver(node, m.CatchUpDone(self.etcd.head, epoch), delay_s=0.002)

            self.at(self.lat(), read)
        if ready.revoke_lease is not None:
            lease_id = ready.revoke_lease
            self.at(self.lat(), lambda: self.etcd.revoke(lease_id, self.now_s) and self.notify_master())
        if ready.resign_epoch is not None:
            epoch = ready.resign_epoch
            self.at(self.lat(), lambda: (self.etcd.resign(epoch, self.now_s), self.notify_master()))

    def _peer_holding(self, node: SimNode, last: int) -> SimNode | None:
        """A live, awake replica other than `node` whose log reaches `last`."""
        for peer in self.nodes.values():
            awake = not peer.crashed and self.now_s >= peer.paused_until_s
            if peer is not node and awake and len(peer.log) >= last:
                return peer
        return None

    # ---- background processes -----------------------------------------------------------------

    def notify_master(self) -> None:
        view = self.etcd.observe()
        for node in self.nodes.values():
            if not (self.faults and self.rng.random() < self.watch_drop_p):
                self.reply(node, view)

    def _every(self, period_s: float, fn: Callable[[], None]) -> None:
        def again() -> None:
            fn()
            self.at(period_s, again)

        self.at(self.rng.uniform(0, period_s), again)

    def _push(self) -> None:
        for master in self.nodes.values():
            if master.crashed or self.now_s < master.paused_until_s or master.core.role != MASTER:
                continue
            index = int(master.node_id[1:])
            for follower in self.nodes.values():
                if follower is master:
                    continue
                first = master.push_next.get(follower.node_id, len(master.log) + 1)
                records = tuple(master.log[first - 1 : first - 1 + 50])
                batch = m.Batch(0, first, records)
                genesis = master.core.genesis or ""
                pushed = m.BatchReceived(index, batch, master.core.epoch, genesis, master.node_id)
                self.deliver(follower, pushed)

    def _traffic(self) -> None:
        self.packets += 1
        for node in self.nodes.values():
            job = f"bail{self.packets}" if self.packets % 17 == 0 else f"pkt{self.packets}"
            self.deliver(node, m.IncomingEvent(job=job, size_bytes=10))

    def _fault(self) -> None:
        if not self.faults:
            return
        node = self.rng.choice(list(self.nodes.values()))
        roll = self.rng.random()
        if roll < 0.3:
            node.paused_until_s = max(node.paused_until_s, self.now_s + self.rng.uniform(0.3, 2 * self.ttl_s))
        elif roll < 0.5 and not node.crashed:
            self._crash(node, self.rng.uniform(0.2, 2.0))
        elif roll < 0.65:
            self.etcd.extend_all(self.rng.uniform(0.0, self.ttl_s))
        elif roll < 0.8:
            node.cut_until_s = max(node.cut_until_s, self.now_s + self.rng.uniform(0.5, 2 * self.ttl_s))
        elif roll < 0.9:
            node.stall_on_lease_reply_s = self.rng.uniform(0.3, 2 * self.ttl_s)
        elif roll < 0.97 and not node.crashed:  # the serf dies: whatever it ran ahead is gone
            self.deliver(node, m.RuntimeFailed("sim: the runtime died"))

    def _crash(self, node: SimNode, down_s: float) -> None:
        node.crashed, node.generation = True, node.generation + 1

        def restart() -> None:
            fresh = self._fresh(node.node_id, node.log, node.genesis)
            self.nodes[node.node_id] = fresh
            self._boot_runtime(fresh)
            self.deliver(fresh, self.etcd.observe())
            self.deliver(fresh, m.GenesisObserved(self.etcd.genesis, self.etcd.revision))

        self.at(down_s, restart)

    def _expire(self) -> None:
        if self.etcd.expire(self.now_s):
            self.notify_master()

    def _publish(self) -> None:
        """Every awake replica publishes its position (`replica/<id>`); every replica then reads the
        registry, seeing as fresh those that published within the last 3 s."""
        for node in self.nodes.values():
            if not node.crashed and self.now_s >= node.paused_until_s and not self.cut(node):
                self.registry[node.node_id] = (node.core.durable, self.now_s)
        for node in self.nodes.values():
            if self.cut(node):
                continue
            peers = tuple(
                PeerView(rid, durable, fresh=self.now_s - at_s < 3.0)
                for rid, (durable, at_s) in sorted(self.registry.items())
                if rid != node.node_id
            )
            self.reply(node, m.PeersObserved(peers))

    def _poll_master(self) -> None:
        """The driver re-reads the master key now and then: watches can drop notifications."""
        for node in self.nodes.values():
            if not self.cut(node):
                self.reply(node, self.etcd.observe())
                self.reply(node, m.GenesisObserved(self.etcd.genesis, self.etcd.revision))

    # ---- running ------------------------------------------------------------------------------

    def create_ship(self) -> None:
        """`seguro ship create`: the genesis with the boot sequence as its first batch, then the nodes hear
        of it at their next poll of etcd (or now, for those whose read is not lost)."""
        records, mug = [], 0
        for job in ("boot-formula", "boot-event"):
            mug = chain_mug(mug, job)
            records.append(encode(mug, job))
        if not self.etcd.create_genesis(self.genesis_id, tuple(records)):
            self.violation("the ship was created twice")
        for node in self.nodes.values():
            if not (self.faults and self.rng.random() < self.watch_drop_p):
                self.reply(node, m.GenesisObserved(self.etcd.genesis, self.etcd.revision))

    def run(
        self, fault_s: float, quiet_s: float, max_steps: int = 2_000_000, create_at_s: float | None = None
    ) -> None:
        """Run until `fault_s + quiet_s`; the ship is created at `create_at_s` (default: a random moment in
        the first 3 s, so nodes start before their ship exists and must wait for it)."""
        self.at(self.rng.uniform(0.0, 3.0) if create_at_s is None else create_at_s, self.create_ship)
        for node in self.nodes.values():
            self._every(
                TICK_S, lambda n=node.node_id: self._handle(self.nodes[n], self.nodes[n].generation, None)
            )
        self._every(0.01, self._expire)
        self._every(1.0, self._poll_master)
        self._every(1.0, self._publish)
        self._every(0.05, self._push)
        self._every(0.02, self._traffic)
        self._every(1.5, self._fault)
        self.notify_master()
        end_s, steps = fault_s + quiet_s, 0
        while self.queue and self.now_s < end_s:
            steps += 1
            if steps > max_steps:
                self.violation("simulation did not finish in its step budget")
            when_s, _, fn = heapq.heappop(self.queue)
            self.now_s = when_s
            if self.faults and self.now_s >= fault_s:
                self.faults = False
            fn()
