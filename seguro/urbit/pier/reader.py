"""Reading a pier's event log: its environments in event order, their META, their events.

Read-only LMDB transactions: a reader never blocks vere's writer (it takes a reader slot in lock.mdb,
as `urbit` itself does), so a running ship's log can be read while it grows.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import lmdb

from seguro.urbit.pier.layout import (
    EVENTS,
    MAP_SIZE,
    MAX_DBS,
    META,
    Meta,
    PierError,
    epoch_dir,
    epochs,
    event_key,
    key_event,
    log_dir,
    read_small_text,
)


@dataclass(frozen=True)
class Segment:
    """One environment holding events base+1.. : an epoch `0i<base>`, or the whole 1.x-2.x log (base 0).
    `epoch_format` and `vere` are None for the 1.x-2.x layout."""

    path: Path
    base: int
    epoch_format: int | None = None
    vere: str | None = None


def open_env(path: Path) -> lmdb.Environment:
    """An existing environment, read-only (raises PierError when it is not one)."""
    if not (path / "data.mdb").is_file():
        raise PierError(f"{path}: no data.mdb")
    try:
        return lmdb.open(str(path), map_size=MAP_SIZE, max_dbs=MAX_DBS, readonly=True, create=False)
    except (lmdb.Error, OSError) as e:
        raise PierError(f"{path}: {e}") from None


def read_meta(env: lmdb.Environment, where: str) -> Meta:
    try:
        db = env.open_db(META, create=False)
        with env.begin(db=db) as txn:
            values = {bytes(k): bytes(v) for k, v in txn.cursor()}
    except lmdb.NotFoundError:
        raise PierError(f"{where}: no META table") from None
    except lmdb.Error as e:
        raise PierError(f"{where}: {e}") from None
    return Meta.decode(values, where)


def segments(pier: Path) -> list[Segment]:
    """The pier's environments, oldest first; PierError when it has no event log at all."""
    bases = epochs(pier)
    if not bases:
        if (log_dir(pier) / "data.mdb").is_file():
            return [Segment(log_dir(pier), 0)]
        raise PierError(f"{pier}: no event log (.urb/log/ with data.mdb or epochs 0i<N>)")
    found = []
    for base in bases:
        path = epoch_dir(pier, base)
        fmt_text = read_small_text(path / "epoc.txt", 7)
        if not re.fullmatch(r"[0-9]+", fmt_text):
            raise PierError(f"{path / 'epoc.txt'} says {fmt_text!r}, not an epoch format number")
        found.append(Segment(path, base, int(fmt_text), read_small_text(path / "vere.txt", 127)))
    return found


class SegmentReader:
    """One environment's EVENTS, read in short read-only transactions."""

    def __init__(self, segment: Segment) -> None:
        self.segment = segment
        self.env = open_env(segment.path)
        try:  # vere creates EVENTS at an epoch's first event: a freshly rolled epoch has none yet
            self.events_db: object | None = self.env.open_db(EVENTS, integerkey=True, create=False)
        except lmdb.NotFoundError:
            self.events_db = None
        except lmdb.Error as e:
            self.env.close()
            raise PierError(f"{segment.path}: {e}") from None

    def close(self) -> None:
        self.env.close()

    def __enter__(self) -> SegmentReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def meta(self) -> Meta:
        return read_meta(self.env, str(self.segment.path))

    def bounds(self) -> tuple[int, int]:
        """(first, last) event held; (0, 0) when empty."""
        if self.events_db is None:
            return 0, 0
        with _lmdb_errors(self.segment.path), self.env.begin(db=self.events_db) as txn:
            cursor = txn.cursor()
            if not cursor.first():
                return 0, 0
            first = key_event(cursor.key())
            cursor.last()
            return first, key_event(cursor.key())

    def read(self, from_event: int, max_events: int = 10_000) -> list[tuple[int, bytes]]:
        """Up to `max_events` (event, record) pairs from `from_event`, in key order, in one transaction
        (short, so a live writer's pages can be reused)."""
        out: list[tuple[int, bytes]] = []
        if self.events_db is None:
            return out
        with _lmdb_errors(self.segment.path), self.env.begin(db=self.events_db, buffers=False) as txn:
            cursor = txn.cursor()
            if not cursor.set_range(event_key(from_event)):
                return out
            for key, value in cursor:
                out.append((key_event(key), value))
                if len(out) >= max_events:
                    break
        return out

    def iterate(self, from_event: int = 0) -> Iterator[tuple[int, bytes]]:
        """Every (event, record) from `from_event` (default: the first held), in key order."""
        event = max(from_event, self.segment.base + 1)
        while chunk := self.read(event):
            yield from chunk
            event = chunk[-1][0] + 1


@contextlib.contextmanager
def _lmdb_errors(path: Path) -> Iterator[None]:
    """A damaged or unreadable environment is a PierError naming it, not a traceback."""
    try:
        yield
    except lmdb.Error as e:
        raise PierError(f"{path}: {e}") from None
