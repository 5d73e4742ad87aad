"""A replica of the pure core with a hand-moved clock, and shorthands that read like a scenario."""

from __future__ import annotations

from seguro.core import messages as m
from seguro.core.config import Config
from seguro.core.replication import MASTER, PROMOTING, Replica

TTL_S = 3.0
GENESIS = "g1"


class Script:
    """A replica plus a clock, with shorthands that read like the scenario."""

    def __init__(self, durable: int = 0, **config: object) -> None:
        """A replica whose local log holds `durable` events of genesis GENESIS (none: not joined yet)."""
        self.now_s = 100.0
        cfg = Config(node_id="a", lease_ttl_s=TTL_S, **config)  # type: ignore[arg-type]
        self.r = Replica(cfg, durable_event=durable, genesis=GENESIS if durable else None)

    def step(self, event: m.Event) -> m.Ready:
        return self.r.step(event, self.now_s)

    def tick(self, advance_s: float = 0.0) -> m.Ready:
        self.now_s += advance_s
        return self.r.tick(self.now_s)

    def follower_with_lease(self, runtime_eve: int = 0) -> None:
        self.step(m.GenesisObserved(GENESIS, 5))
        assert self.tick().grant_lease
        self.step(m.LeaseGranted(lease_id=7, ttl_s=TTL_S, sent_at_s=self.now_s))
        self.step(m.RuntimeReady(eve=runtime_eve))

    def become_master(self, epoch: int = 10, head: int | None = None) -> m.Ready:
        self.follower_with_lease(runtime_eve=self.r.durable)
        ready = self.step(m.MasterObserved(holder=None, epoch=0, revision=epoch - 1))
        assert ready.campaign
        ready = self.step(m.CampaignResult(won=True, lease_id=7, epoch=epoch))
        assert self.r.role == PROMOTING and ready.catch_up_from == self.r.durable + 1
        ready = self.step(m.CatchUpDone(head=self.r.durable if head is None else head, epoch=epoch))
        assert self.r.role == MASTER
        return ready

    def run_event(self, job: object = "job", effects: tuple[object, ...] = ("fx",)) -> m.Ready:
        assert self.step(m.IncomingEvent(job=job, size_bytes=10)).run == [job]
        eve = self.r.applied + 1
        return self.step(m.WorkDone(eve=eve, record=b"rec%d" % eve, effects=effects))

    def push(
        self, stream_id: int, batch: m.Batch, epoch: int, genesis: str = GENESIS, sender: str | None = None
    ) -> m.Ready:
        """A batch pushed on stream `stream_id` by `sender` (default: the master etcd shows) at `epoch`."""
        shown = self.r._master.holder if self.r._master is not None else ""
        sender = shown if sender is None else sender
        return self.step(m.BatchReceived(stream_id, batch, epoch, genesis, sender))
