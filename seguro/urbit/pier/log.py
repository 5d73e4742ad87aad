"""The newest epoch of a pier's event log, open for reading and writing: what a protocol-2 worker (vere
4.x, or the reference ship speaking protocol 2) replays on start and appends each event to, and what a
Seguro node keeps in step with the replicated log while no worker runs.

LMDB takes one writer at a time across processes (its lock file), so node and worker may both hold the
log open; Seguro writes only while its worker is stopped. Writes are synced, as vere's are.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import lmdb

from seguro.urbit.pier.layout import (
    EVENTS,
    FILE_MODE,
    MAP_SIZE,
    MAX_DBS,
    Meta,
    PierError,
    event_key,
    key_event,
)
from seguro.urbit.pier.reader import read_meta, segments
from seguro.urbit.pier.writer import write_pier

READ_BATCH_EVENTS = 1000


class PierLog:
    """Events base+1..head of the pier's last epoch."""

    def __init__(self, pier: Path) -> None:
        layout = segments(pier)
        last = layout[-1]
        if last.epoch_format is None:
            raise PierError(f"{pier}: a vere 1.x-2.x log (no epochs); import it, then export it for vere 4")
        self.pier, self.base, self.path = pier, last.base, last.path
        try:
            self._env = lmdb.open(str(last.path), map_size=MAP_SIZE, max_dbs=MAX_DBS, mode=FILE_MODE,
                                  sync=True, metasync=True, create=False)  # fmt: skip
            self._db = self._env.open_db(EVENTS, integerkey=True)
        except lmdb.Error as e:
            raise PierError(f"{last.path}: {e}") from None
        self.meta: Meta = read_meta(self._env, str(last.path))

    @classmethod
    def create(cls, pier: Path, meta: Meta, vere_major: int = 4, base: int = 0) -> PierLog:
        """A new empty log (epoch 0i<base>) with `meta`, then opened. With a base, the runtime's snapshot
        of events 1..base must already be where it loads it."""
        write_pier(pier, meta, base, [], vere_major, snapshot_in_place=bool(base))
        return cls(pier)

    def close(self) -> None:
        self._env.close()

    def __enter__(self) -> PierLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def head(self) -> int:
        """The last event held (the epoch's base when it holds none)."""
        with self._txn() as txn:
            cursor = txn.cursor()
            return key_event(cursor.key()) if cursor.last() else self.base

    def get(self, event: int) -> bytes | None:
        with self._txn() as txn:
            value = txn.get(event_key(event))
            return bytes(value) if value is not None else None

    def read(self, first: int, last: int) -> list[tuple[int, bytes]]:
        """(event, record) for first..last held, at most READ_BATCH_EVENTS of them."""
        out: list[tuple[int, bytes]] = []
        with self._txn() as txn:
            cursor = txn.cursor()
            if not cursor.set_range(event_key(first)):
                return out
            for key, value in cursor:
                event = key_event(key)
                if event > last or len(out) >= READ_BATCH_EVENTS:
                    break
                out.append((event, bytes(value)))
        return out

    def append(self, records: Iterable[tuple[int, bytes]]) -> int:
        """Add events after the head, contiguous, in one synced transaction; returns the new head. The
        head is read inside that transaction, so a concurrent writer makes it fail, never skip."""
        items = list(records)
        try:
            with self._env.begin(db=self._db, write=True) as txn:
                cursor = txn.cursor()
                head = key_event(cursor.key()) if cursor.last() else self.base
                for index, (event, _) in enumerate(items):
                    if event != head + 1 + index:
                        raise PierError(f"{self.path}: append of event {event} after {head + index}")
                _, added = cursor.putmulti([(event_key(e), r) for e, r in items], append=True)
                if added != len(items):
                    raise PierError(f"{self.path}: {len(items) - added} appended events were already there")
        except lmdb.Error as e:
            raise PierError(f"{self.path}: {e}") from None
        return head + len(items)

    def clear_stale_readers(self) -> int:
        """Free the reader slots of processes that died holding them (a SIGKILLed worker's): LMDB clears
        them only when an environment is first opened, and 126 of them make every open fail."""
        try:
            return self._env.reader_check()
        except lmdb.Error as e:
            raise PierError(f"{self.path}: {e}") from None

    def truncate_after(self, event: int) -> int:
        """Delete every event after `event` (never below the epoch's base: what is below lives in older
        epochs and a snapshot); returns how many went."""
        if event < self.base:
            raise PierError(f"{self.path}: cannot cut back to {event}, below the epoch's base {self.base}")
        gone = 0
        try:
            with self._env.begin(db=self._db, write=True) as txn:
                cursor = txn.cursor()
                if cursor.set_range(event_key(event + 1)):
                    while cursor.delete():
                        gone += 1
        except lmdb.Error as e:
            raise PierError(f"{self.path}: {e}") from None
        return gone

    def _txn(self) -> lmdb.Transaction:
        try:
            return self._env.begin(db=self._db)
        except lmdb.Error as e:
            raise PierError(f"{self.path}: {e}") from None
