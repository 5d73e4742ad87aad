"""The simulator's safety oracle: what must hold at every effect release, commit, persist and trim, and
once the faults stop. A violation is a double boot, a lost or forked commit, or a replica that cannot
recover, and its message starts with the seed that reproduces it."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from seguro.core import messages as m
from seguro.core.replication import MASTER

if TYPE_CHECKING:
    from tests.core.sim.world import SimNode, World


class Violation(AssertionError):
    """A safety property failed in the simulation."""


def chain_mug(mug: int, job: str) -> int:
    digest = hashlib.blake2b(f"{mug}:{job}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "little")


def encode(mug: int, job: str) -> bytes:
    return f"{mug}:{job}".encode()


def decode(record: bytes) -> tuple[int, str]:
    mug, job = record.decode().split(":", 1)
    return int(mug), job


class Oracle:
    """Checks one simulated world against the truth its in-memory etcd holds."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.released: dict[int, str] = {}  # event -> the replica that emitted its effects

    def violation(self, message: str) -> None:
        raise Violation(f"seed={self.world.seed} t={self.world.now_s:.3f}: {message}")

    def check_persist(self, node: SimNode, batch: m.Batch) -> None:
        """A replica persists only events etcd committed, contiguously."""
        etcd = self.world.etcd
        if node.core.genesis is None or node.core.genesis != etcd.genesis:
            self.violation(f"{node.node_id} persists events while its genesis is {node.core.genesis}")
        if batch.first_event != len(node.log) + 1:
            self.violation(f"{node.node_id} persists {batch.first_event} onto a log of {len(node.log)}")
        for offset, record in enumerate(batch.records):
            event = batch.first_event + offset
            if event > etcd.head or etcd.log[event - 1][1] != record:
                self.violation(f"{node.node_id} persists event {event} that etcd did not commit")

    def check_trim(self, node: SimNode, below: int) -> None:
        """A master trims etcd to its retained window, never deeper (the events it trims are committed
        and in its own log; followers further behind catch up from it or from a peer)."""
        if below > self.world.etcd.head - self.world.retain_events + 1 or below > len(node.log) + 1:
            self.violation(f"{node.node_id} trims etcd below {below}, past the retained window")

    def check_release(self, node: SimNode, eve: int, effects: tuple[object, ...]) -> None:
        """Only the live lease holder of the master key emits, once, an event committed in its own epoch,
        with the effects of the job etcd holds for it, and held by `ack_replicas` followers: else a double
        boot or a lost event."""
        etcd = self.world.etcd
        key = etcd.master
        if etcd.genesis is None or node.core.genesis != etcd.genesis:
            self.violation(f"{node.node_id} emits for genesis {node.core.genesis}, etcd holds {etcd.genesis}")
        if key is None or key.holder != node.node_id or key.create_revision != node.core.epoch:
            self.violation(f"double boot: {node.node_id} emits while the master key is {key}")
        if not etcd.lease_alive(key.lease_id, self.world.now_s):
            self.violation(f"double boot: {node.node_id} emits after its lease expired")
        if eve > etcd.head:
            self.violation(f"{node.node_id} emits effects of uncommitted event {eve}")
        if etcd.log[eve - 1][0] != node.core.epoch:
            self.violation(f"{node.node_id} emits event {eve} committed at epoch {etcd.log[eve - 1][0]}")
        if effects != (f"fx:{decode(etcd.log[eve - 1][1])[1]}",):
            self.violation(f"{node.node_id} emits {effects} as event {eve}, which etcd holds as another job")
        holders = sum(1 for n in self.world.nodes.values() if n is not node and len(n.log) >= eve)
        if holders < self.world.ack_replicas:
            self.violation(
                f"{node.node_id} emits event {eve} held by {holders} < {self.world.ack_replicas} followers"
            )
        if eve in self.released:
            self.violation(f"effects of event {eve} emitted twice ({self.released[eve]}, {node.node_id})")
        self.released[eve] = node.node_id

    def check_chain(self, first_event: int) -> None:
        """Each committed record's mug is what a replay of the log before it gives: a runtime that kept
        an uncommitted event would commit records whose mugs no replay reproduces (a forked ship)."""
        etcd = self.world.etcd
        mug = decode(etcd.log[first_event - 2][1])[0] if first_event > 1 else 0
        for event in range(first_event, etcd.head + 1):
            logged_mug, job = decode(etcd.log[event - 1][1])
            mug = chain_mug(mug, job)
            if logged_mug != mug:
                self.violation(f"event {event} was committed with a mug no replay of the log gives")

    def check_converged(self) -> None:
        """Once the faults stop: one master, progress made, every log a prefix of etcd's and close to it."""
        etcd = self.world.etcd
        committed = [record for _, record in etcd.log]
        masters = [n.node_id for n in self.world.nodes.values() if n.core.role == MASTER]
        if len(masters) != 1:
            self.violation(f"after the quiet period expected one master, got {masters}")
        if len(committed) < 10:
            self.violation(f"little progress: {len(committed)} events committed")
        for node in self.world.nodes.values():
            if node.log != committed[: len(node.log)]:
                self.violation(f"{node.node_id}'s log is not a prefix of etcd's")
            if len(committed) - len(node.log) > 200:
                self.violation(f"{node.node_id} lags {len(committed) - len(node.log)} events after quiet")
