"""Following the master key across etcd member loss: pyetcd never re-creates a watch itself."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterator

import grpc
from pyetcd import etcdrpc
from pyetcd.etcdrpc import kv_pb2

from seguro.node import tls
from seguro.node.etcd.schema import OnMasterChange, decode_master, describe, token_metadata

log = logging.getLogger(__name__)

# ---- master watch -----------------------------------------------------------------------------------------


class MasterWatch:
    """Watches `master` from a background thread, on its own channels, one endpoint at a time.

    pyetcd never re-creates a watch, and a watch on a hung (SIGSTOPped) or minority member stays silent. So a
    stream error, or a read with a deadline (made after `poll_interval_s` without news) that fails or twice
    shows a change the stream did not bring, moves to the next endpoint after a bounded backoff and re-watches
    from the revision after the last delivered change: missed changes are replayed, in revision order, each
    delivered once. Only when that history is compacted does the watch jump to the present state.
    """

    def __init__(
        self,
        netlocs: list[str],
        key: str,
        on_change: OnMasterChange,
        timeout_s: float,
        poll_interval_s: float = 1.0,
        max_backoff_s: float = 1.0,
    ) -> None:
        self._netlocs = netlocs
        self._key = key.encode()
        self._on_change = on_change
        self._timeout_s = timeout_s
        self._metadata: tuple | None = None  # the session's etcd token, when the process logs in
        self._poll_interval_s = poll_interval_s
        self._max_backoff_s = max_backoff_s
        self._stop = threading.Event()
        self._stream: grpc.Future | None = None
        self._revision = 0  # every change up to this revision is delivered
        self._state: tuple[int, int] | None = None  # _state_of() the key as last delivered
        self.endpoint = netlocs[0]
        self.sessions = 0
        self._thread = threading.Thread(target=self._run, name=f"seguro-watch-{key}", daemon=True)
        self._thread.start()

    def cancel(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        stream = self._stream
        if stream is not None:
            stream.cancel()
        self._thread.join(timeout_s)

    def _run(self) -> None:
        backoff_s, index = 0.05, 0
        while not self._stop.is_set():
            self.endpoint = self._netlocs[index % len(self._netlocs)]
            self.sessions += 1
            started = time.monotonic()
            try:
                self._session(self.endpoint)
            except Exception as e:  # any failure of this endpoint: move on to the next
                if not self._stop.is_set():
                    log.info("master watch via %s ended: %s", self.endpoint, describe(e))
            if time.monotonic() - started > 3 * self._poll_interval_s:
                backoff_s = 0.05  # that session was healthy for a while: this is a fresh failure
            index += 1
            self._stop.wait(backoff_s)
            backoff_s = min(backoff_s * 2, self._max_backoff_s)

    def _session(self, netloc: str) -> None:
        """Watch from the revision after the last delivered one (replaying what was missed); when quiet,
        re-read the key and give up on the stream if it twice misses a change. Returns when broken."""
        with tls.channel(netloc) as channel:
            login = tls.current_login()  # a token of this member's own: simple tokens are per member
            auth = etcdrpc.AuthStub(channel)
            self._metadata = token_metadata(auth, login, self._timeout_s) if login is not None else None
            kv = etcdrpc.KVStub(channel)
            if self._state is None:
                self._sync(kv)  # the first call of on_change: the holder now
            create = etcdrpc.WatchCreateRequest(key=self._key, start_revision=self._revision + 1)
            requests: queue.Queue = queue.Queue()
            requests.put(etcdrpc.WatchRequest(create_request=create))
            self._stream = etcdrpc.WatchStub(channel).Watch(iter(requests.get, None), metadata=self._metadata)
            replies: queue.Queue = queue.Queue()
            threading.Thread(target=self._read, args=(self._stream, replies), daemon=True).start()
            suspect = False
            try:
                while not self._stop.is_set():
                    try:
                        reply = replies.get(timeout=self._poll_interval_s)
                    except queue.Empty:
                        missed = self._missed_change(kv)
                        if missed and suspect:
                            return  # the stream is stale: replay from another endpoint
                        suspect = missed
                        continue
                    suspect = False
                    if reply is None or isinstance(reply, Exception):
                        raise reply or ConnectionError("watch stream closed")
                    if reply.compact_revision:
                        self._sync(kv)  # history we missed is compacted away: jump to the present
                        return
                    if reply.canceled:
                        return
                    self._apply_events(reply.events)
            finally:
                requests.put(None)
                self._stream.cancel()

    @staticmethod
    def _read(stream: Iterator, replies: queue.Queue) -> None:
        try:
            for reply in stream:
                replies.put(reply)
            replies.put(None)
        except Exception as e:
            replies.put(e)

    def _read_key(self, kv: etcdrpc.KVStub) -> etcdrpc.RangeResponse:
        """Linearizable read through this endpoint, with a deadline (a hung member fails it)."""
        return kv.Range(etcdrpc.RangeRequest(key=self._key), timeout=self._timeout_s, metadata=self._metadata)

    def _sync(self, kv: etcdrpc.KVStub) -> None:
        reply = self._read_key(kv)
        self._revision = max(self._revision, reply.header.revision)
        self._deliver(reply.kvs[0] if reply.kvs else None, reply.header.revision)

    def _missed_change(self, kv: etcdrpc.KVStub) -> bool:
        """True when the key differs from what was delivered; else nothing changed up to the read."""
        reply = self._read_key(kv)
        if _state_of(reply.kvs[0] if reply.kvs else None) != self._state:
            return True
        self._revision = max(self._revision, reply.header.revision)  # re-watches start near the present
        return False

    def _apply_events(self, events: list) -> None:
        for event in events:
            if event.kv.mod_revision <= self._revision:
                continue  # already delivered (or reflected by a read at a later revision)
            self._revision = event.kv.mod_revision
            put = event.type == kv_pb2.Event.PUT
            self._deliver(event.kv if put else None, event.kv.mod_revision)

    def _deliver(self, kv: kv_pb2.KeyValue | None, revision: int) -> None:
        state = _state_of(kv)
        if state == self._state:
            return
        self._state = state
        info = decode_master(kv.value, kv.create_revision, kv.lease) if kv is not None else None
        try:
            self._on_change(info, revision)
        except Exception:
            log.exception("master watch callback failed")


def _state_of(kv: kv_pb2.KeyValue | None) -> tuple[int, int]:
    """What identifies a state of the master key: (create_revision, mod_revision); (0, 0) when absent."""
    return (kv.create_revision, kv.mod_revision) if kv is not None else (0, 0)
