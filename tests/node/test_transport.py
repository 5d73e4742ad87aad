"""The push stream over real gRPC between two real RocksDB logs; the follower's node is a small stand-in
that stores what it is pushed and acknowledges it, as the driver does."""

from __future__ import annotations

import itertools
import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from seguro.core import messages as m
from seguro.node.eventlog import EventLog
from seguro.node.push import PushStream
from seguro.node.services import serve

MAX_MESSAGE_BYTES = 1 << 20


class FollowerStandIn:
    """The part of a follower node the replication service talks to: store, then ack the durable end."""

    def __init__(self, node_id: str, data: Path) -> None:
        self.node_id, self.eventlog = node_id, EventLog(data)
        self._streams: dict[int, queue.Queue[m.AckOut]] = {}
        self._ids = itertools.count(1)

    def post(self, event: m.Event) -> None:
        assert isinstance(event, m.BatchReceived)
        batch = event.batch
        if batch.records and batch.first_event == self.eventlog.last_event() + 1:
            self.eventlog.append(batch.first_event, batch.records)
        ack = m.AckOut(event.stream_id, self.eventlog.last_event(), event.sender_epoch)
        self._streams[event.stream_id].put(ack)

    def open_stream(self) -> tuple[int, queue.Queue[m.AckOut]]:
        stream_id = next(self._ids)
        self._streams[stream_id] = queue.Queue()
        return stream_id, self._streams[stream_id]

    def close_stream(self, stream_id: int) -> None:
        self._streams.pop(stream_id, None)

    def status(self) -> dict[str, object]:
        return {}

    def poke(self, jam: bytes) -> str:
        return "not a master"

    def die(self, error: Exception) -> None:
        raise AssertionError(f"the follower's log broke an invariant: {error}")


@pytest.fixture
def follower(tmp_path: Path) -> Iterator[tuple[FollowerStandIn, str]]:
    node = FollowerStandIn("n4", tmp_path / "follower")
    server, port = serve(node, "127.0.0.1:0", MAX_MESSAGE_BYTES)
    try:
        yield node, f"127.0.0.1:{port}"
    finally:
        server.stop(0).wait(5)
        node.eventlog.close()


def _push(master_log: EventLog, follower_id: str, address: str, posted: list[m.Event]) -> PushStream:
    appended, died = threading.Condition(), posted.append  # a broken invariant shows up among `posted`
    return PushStream(
        follower_id, address, master_log, 5, "n0", posted.append, appended, MAX_MESSAGE_BYTES, died  # type: ignore[arg-type]
    )


def test_the_push_stream_fills_the_follower_and_reports_its_acks(follower, tmp_path: Path) -> None:
    node, address = follower
    master_log = EventLog(tmp_path / "master")
    master_log.append(1, [b"\0\0\0\0%d" % i for i in range(1, 301)])
    posted: list[m.Event] = []
    stream = _push(master_log, "n4", address, posted)
    try:
        deadline_s = time.monotonic() + 10
        while m.FollowerAck("n4", 300) not in posted and time.monotonic() < deadline_s:
            time.sleep(0.02)  # the ack comes back after the follower's write
        assert [r for _, r in node.eventlog.read(1, 300)] == [r for _, r in master_log.read(1, 300)]
        acks = [e for e in posted if isinstance(e, m.FollowerAck)]
        assert acks[0] == m.FollowerAck("n4", 0) and acks[-1] == m.FollowerAck("n4", 300)
    finally:
        stream.stop()
        stream.join(5)
        master_log.close()


def test_a_replica_answering_under_another_id_is_not_counted(follower, tmp_path: Path) -> None:
    """Found in review: a stale `replica/n2` entry naming n4's address made the master open a second stream
    to n4 and count it as n2 too, so `--ack-replicas 2` was met by one follower."""
    _, address = follower
    master_log = EventLog(tmp_path / "master")
    master_log.append(1, [b"\0\0\0\0x"])
    posted: list[m.Event] = []
    stream = _push(master_log, "n2", address, posted)
    try:
        deadline_s = time.monotonic() + 10
        while not stream.error and time.monotonic() < deadline_s:
            time.sleep(0.02)
        assert "is replica 'n4', not 'n2'" in stream.error
        assert not [e for e in posted if isinstance(e, m.FollowerAck)]
    finally:
        stream.stop()
        stream.join(5)
        master_log.close()
