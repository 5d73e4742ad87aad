"""A replica's local, durable copy of a ship's event log, on RocksDB (rocksdict).

Why this layout: other tools (catch-up, export to a vere pier, `seguro log`) read it directly, and a
replica must be able to prove after a crash exactly which events it holds.

On-disk layout under the data directory DIR (layout version 1):

- ``DIR/log`` is one RocksDB database, opened in raw (bytes) mode.
- Column family ``default``: key = event number as 8-byte big-endian u64 (so byte order is event order),
  value = the record bytes exactly as vere's EVENTS table holds them (4-byte little-endian mug, then the
  jam of the event). Events are contiguous: no gaps, never overwritten, never deleted.
- Column family ``meta``:
  - ``layout``, ``who``, ``life``, ``genesis``: UTF-8 JSON values (``layout`` is the integer 1; ``who`` is
    the ship as the caller gave it, an @p string or its integer; ``life`` the number of boot formula
    events; ``genesis`` the id of the ship's genesis record in etcd, set when the node first joins it).
  - ``base``: the event before the first one, for a log that begins after event 1 (a chopped vere log:
    the snapshot at ``base`` stands for the events before); ``pier``: an imported pier's vere META.
  - ``epoch/`` + 8-byte big-endian epoch -> 8-byte big-endian first event: the epoch history, i.e. the
    fencing epoch under which events from that first event on were written. Both columns strictly
    increase (first events never decrease) in key order.

Every write is one RocksDB WriteBatch written with sync=True (fsync of the WAL before returning), so an
append that returned survives a process or machine crash. The adapter stays thin on purpose: no
replication logic here, only the invariants of the log itself (contiguity, monotonic epochs).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import rocksdict

from seguro.invariant import require
from seguro.node.eventlog_report import Problem, VerifyReport, check_record
from seguro.urbit.record import decode_record

LAYOUT_VERSION = 1
META_CF = "meta"
EPOCH_PREFIX = b"epoch/"
KEY_SIZE = 8
MAX_EVENT = 2**64 - 1
_SCAN_BAD_KEYS_MAX = 1024  # bound on malformed keys skipped while locating the first/last event on open


class EventLogError(Exception):
    """The event log cannot be opened or used (missing, locked, damaged); the message says which."""


class EventLogLocked(EventLogError):
    """Another process (or another EventLog in this one) holds the database's RocksDB LOCK."""


def event_key(event: int) -> bytes:
    """Key of `event` in the default column family: 8-byte big-endian, so byte order is event order."""
    require(1 <= event <= MAX_EVENT, "event number out of range", event=event)
    return event.to_bytes(KEY_SIZE, "big")


def key_event(key: bytes) -> int | None:
    """Event number of a default-column-family key, or None when the key is malformed (not 8 bytes)."""
    return int.from_bytes(key, "big") if len(key) == KEY_SIZE else None


def _u64(value: int) -> bytes:
    return value.to_bytes(KEY_SIZE, "big")


def _raw_options(create: bool) -> rocksdict.Options:
    options = rocksdict.Options(raw_mode=True)
    options.create_if_missing(create)
    options.create_missing_column_families(create)
    options.enable_statistics()  # cheap next to fsync; lets operators and tests count WAL syncs
    return options


def _open_error(path: Path, exc: Exception) -> EventLogError:
    text = str(exc)
    if "LOCK" in text or "lock" in text:
        return EventLogLocked(
            f"event log {path} is in use by another process or handle (RocksDB LOCK held): {text}"
        )
    return EventLogError(f"cannot open event log {path}: {text}")


class EventLog:
    """One replica's event log in `data_dir`/log. Not safe to share across processes (RocksDB LOCK)."""

    def __init__(self, data_dir: Path, create: bool = True, read_only: bool = False) -> None:
        """Open (or with `create`, create) the log. `read_only` takes no lock: a point-in-time view that
        works while a node holds the log open (for `seguro log` against a running node)."""
        self.path = Path(data_dir) / "log"
        self.read_only = read_only
        self._lock = threading.Lock()
        self._options = _raw_options(create and not read_only)
        self._write_options = rocksdict.WriteOptions()
        self._write_options.sync = True
        self._db = self._open(create and not read_only)
        try:
            self._meta_cf = self._db.get_column_family_handle(META_CF)
            self._meta = self._db.get_column_family(META_CF)
            self._last = max(self._edge_event(last=True), self._base())
            self._epochs = [(epoch, first) for epoch, first, _ in self._epoch_entries() if epoch is not None]
            layout = self._meta.get(b"layout")
            if layout is not None and json.loads(layout) != LAYOUT_VERSION:
                raise EventLogError(
                    f"{self.path} has layout {json.loads(layout)}; this Seguro reads layout {LAYOUT_VERSION}"
                )
            if not read_only and layout is None:
                self._write({b"layout": json.dumps(LAYOUT_VERSION).encode()})
        except BaseException:
            self.close()
            raise

    def _open(self, create: bool) -> rocksdict.Rdict:
        if not create and not (self.path / "CURRENT").exists():
            raise EventLogError(f"no event log at {self.path} (missing or never created)")
        if create:
            self.path.mkdir(parents=True, exist_ok=True)
        exists = (self.path / "CURRENT").exists()
        try:
            families = set(rocksdict.Rdict.list_cf(str(self.path))) if exists else {"default", META_CF}
        except Exception as exc:  # a damaged CURRENT or MANIFEST: say so, not a traceback
            raise _open_error(self.path, exc) from None
        if META_CF not in families:
            raise EventLogError(f"{self.path} is a RocksDB database but not an event log (no '{META_CF}')")
        column_families = {name: rocksdict.Options(raw_mode=True) for name in sorted(families - {"default"})}
        access = rocksdict.AccessType.read_only() if self.read_only else rocksdict.AccessType.read_write()
        try:
            db = rocksdict.Rdict(str(self.path), self._options, column_families, access)
        except Exception as exc:  # rocksdict raises bare Exception for every RocksDB status
            raise _open_error(self.path, exc) from None
        return db

    # -- lifecycle ------------------------------------------------------------------------------------

    def close(self) -> None:
        """Release the database and its LOCK; idempotent. rocksdict keeps the DB (and its LOCK) alive
        while any handle or iterator on it lives, so drop ours first; a reader still suspended inside
        `read`/`scan` keeps it open until that generator is closed or collected."""
        with self._lock:
            if self._db is not None:
                self._meta_cf = self._meta = None  # type: ignore[assignment]
                self._db.close()
                self._db = None  # type: ignore[assignment]

    def __enter__(self) -> EventLog:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- events ---------------------------------------------------------------------------------------

    def last_event(self) -> int:
        """Highest event held durably, 0 when empty (cached; recovered on open from the last key)."""
        return self._last

    def first_event(self) -> int:
        """Lowest event held, 0 when empty."""
        return self._edge_event(last=False)

    def _base(self) -> int:
        value = self._meta.get(b"base")
        return int(json.loads(value)) if value is not None else 0

    def set_base(self, base: int, **meta: Any) -> None:
        """Make an empty log begin after event `base` (a chopped vere log: a snapshot at `base` stands for
        events 1..base), with other metadata (genesis, pier, base_mug: the snapshot's mug) in the same
        synced write. Only an empty log can be given a base."""
        self._require_writable()
        with self._lock:
            require(self._last == 0 and base >= 0, "only an empty log takes a base", last=self._last)
            values = {"base": base, **{k: v for k, v in meta.items() if v is not None}}
            self._write({k.encode(): json.dumps(v, sort_keys=True).encode() for k, v in values.items()})
            self._last = base

    def chop(self, through: int, mug: int | None = None) -> int:
        """Drop events up to `through`, which a kept snapshot stands for from now on (the log then begins
        after it, as a chopped vere log does); returns how many records went. The base (and `mug`, the
        state's mug at it, when known) moves in the same synced batch as the deletions."""
        self._require_writable()
        with self._lock:
            base = self._base()
            require(base <= through <= self._last, "chop within the log", base=base, through=through,
                    last=self._last)  # fmt: skip
            first = max(base + 1, self.first_event())
            batch = rocksdict.WriteBatch(raw_mode=True)
            for event in range(first, through + 1):
                batch.delete(_u64(event))
            batch.put(b"base", json.dumps(through).encode(), self._meta_cf)
            if mug is None:
                batch.delete(b"base_mug", self._meta_cf)  # it was the mug at the old base
            else:
                batch.put(b"base_mug", json.dumps(mug).encode(), self._meta_cf)
            self._db.write(batch, self._write_options)
            return max(0, through - first + 1)

    def append(self, first_event: int, records: Sequence[bytes], *, epoch: int | None = None) -> int:
        """Durably append `records` as events first_event.. in one synced batch; return the new last event.

        `first_event` must be last_event()+1: a gap or an overwrite means the caller's view of the log is
        wrong. With `epoch`: the current epoch continues; a greater one is recorded in the same batch as
        starting at `first_event`, so the history never lags the events it describes; a smaller one is
        an invariant violation (a deposed master's batch)."""
        if not records:
            raise ValueError("append needs at least one record")
        for index, record in enumerate(records):
            if not record:
                raise ValueError(f"record for event {first_event + index} is empty")
        self._require_writable()
        with self._lock:
            last = self._last
            require(
                first_event == last + 1, "append must be contiguous", first_event=first_event, last_event=last
            )
            new_last = first_event + len(records) - 1
            require(new_last <= MAX_EVENT, "event number overflow", new_last=new_last)
            batch = rocksdict.WriteBatch(raw_mode=True)
            for index, record in enumerate(records):
                batch.put(_u64(first_event + index), bytes(record))
            current = self._epochs[-1][0] if self._epochs else None
            new_epoch = epoch is not None and epoch != current and self._epoch_is_new(epoch, first_event)
            if new_epoch:
                batch.put(EPOCH_PREFIX + _u64(epoch), _u64(first_event), self._meta_cf)
            try:
                self._db.write(batch, self._write_options)
            except Exception as exc:  # a failed synced write: RocksDB may now refuse writes until reopened
                raise EventLogError(f"append of events {first_event}..{new_last} failed: {exc}") from None
            if new_epoch:
                self._epochs.append((epoch, first_event))
            self._last = new_last
            return new_last

    def get(self, event: int) -> bytes | None:
        """The record of `event`, or None when the log does not hold it."""
        return self._db.get(_u64(event)) if 1 <= event <= MAX_EVENT else None

    def read(self, from_event: int, to_event: int | None = None) -> Iterator[tuple[int, bytes]]:
        """Yield (event, record) for from_event..to_event (inclusive; None = the last event), in order.

        Bounded memory (one RocksDB iterator). A gap or malformed key inside the range is an invariant
        violation: readers such as catch-up must never skip an event silently."""
        require(from_event >= 1, "events start at 1", from_event=from_event)
        first = self.first_event()
        expected = max(from_event, first) if first else from_event
        for key, value in self.scan(from_event, to_event):
            event = key_event(key)
            require(event == expected, "event log is not contiguous", expected=expected, key=key.hex())
            yield expected, value
            expected += 1

    def scan(
        self, from_event: int | None = None, to_event: int | None = None
    ) -> Iterator[tuple[bytes, bytes]]:
        """Yield raw (key, value) pairs of the default column family from `from_event`'s key (None: the
        very first key) up to and including `to_event`'s, unchecked: for `verify` and `dump`, which must
        show a damaged log as it is."""
        options = rocksdict.ReadOptions()
        if to_event is not None and to_event < MAX_EVENT:
            options.set_iterate_upper_bound(_u64(max(to_event + 1, 0)))
        iterator = self._db.iter(options)
        if from_event is None:
            iterator.seek_to_first()
        else:
            iterator.seek(_u64(max(from_event, 0)))
        while iterator.valid():
            yield iterator.key(), iterator.value()
            iterator.next()
        self._check_status(iterator, "scanning")

    def _check_status(self, iterator: rocksdict.RdictIter, doing: str) -> None:
        """An iterator stops (valid() is False) on a storage error too, e.g. an SST block checksum
        mismatch; without this check a damaged log would read as a shorter, healthy one."""
        try:
            iterator.status()
        except Exception as exc:  # rocksdict raises bare Exception for RocksDB statuses
            raise EventLogError(f"storage error in {self.path} while {doing}: {exc}") from None

    def _edge_event(self, last: bool) -> int:
        """First or last well-formed event key, skipping (boundedly) malformed keys that verify reports."""
        iterator = self._db.iter()
        if last:
            iterator.seek_to_last()
        else:
            iterator.seek_to_first()
        step = iterator.prev if last else iterator.next
        for _ in range(_SCAN_BAD_KEYS_MAX):
            if not iterator.valid():
                self._check_status(iterator, "locating the first/last event")
                return 0
            event = key_event(iterator.key())
            if event:
                return event
            step()
        raise EventLogError(
            f"event log {self.path} damaged: over {_SCAN_BAD_KEYS_MAX} malformed keys at an end"
        )

    # -- metadata -------------------------------------------------------------------------------------

    def set_meta(
        self,
        *,
        who: str | int | None = None,
        life: int | None = None,
        genesis: str | None = None,
        pier: dict[str, Any] | None = None,
    ) -> None:
        """Record which ship (and which genesis of it) this log belongs to and its boot formula count.
        A log never changes owner. `pier`: vere's META of an imported pier (version, who, fake, life) and
        where its snapshot is kept, so that an export writes it back."""
        updates: dict[bytes, bytes] = {}
        if who is not None:
            current = self.meta().get("who")
            require(current in (None, who), "event log belongs to another ship", who=current, new_who=who)
            updates[b"who"] = json.dumps(who).encode()
        if pier is not None:
            updates[b"pier"] = json.dumps(pier, sort_keys=True).encode()
        if genesis is not None:
            current = self.meta().get("genesis")
            require(current in (None, genesis), "event log belongs to another genesis", genesis=current,
                    new_genesis=genesis)  # fmt: skip
            updates[b"genesis"] = json.dumps(genesis).encode()
        if life is not None:
            require(life >= 0, "life must be a natural number", life=life)
            updates[b"life"] = json.dumps(life).encode()
        if updates:
            self._write(updates)

    def meta(self) -> dict[str, Any]:
        """The JSON-valued metadata (layout, who, life, genesis, base, pier) that has been set."""
        found: dict[str, Any] = {}
        for name in ("layout", "who", "life", "genesis", "base", "base_mug", "pier"):
            value = self._meta.get(name.encode())
            if value is not None:
                found[name] = json.loads(value)
        return found

    def record_epoch(self, epoch: int, first_event: int) -> None:
        """Record that events from `first_event` on are written under fencing `epoch`.

        The history is monotonic: epochs strictly increase and first events never decrease. Recording
        the latest entry again is a no-op (idempotent retry)."""
        self._require_writable()
        with self._lock:
            if self._epoch_is_new(epoch, first_event):
                self._write({EPOCH_PREFIX + _u64(epoch): _u64(first_event)})
                self._epochs.append((epoch, first_event))

    def epochs(self) -> list[tuple[int, int]]:
        """The epoch history as (epoch, first_event), oldest first."""
        return list(self._epochs)

    def _epoch_is_new(self, epoch: int, first_event: int) -> bool:
        """True when (epoch, first_event) extends the history; False for a repeat of the latest entry."""
        require(
            0 <= epoch <= MAX_EVENT and first_event >= 1, "bad epoch entry", epoch=epoch, first=first_event
        )
        if self._epochs and self._epochs[-1] == (epoch, first_event):
            return False
        last_epoch, last_first = self._epochs[-1] if self._epochs else (-1, 0)
        require(epoch > last_epoch, "epochs must strictly increase", epoch=epoch, last_epoch=last_epoch)
        require(first_event >= last_first, "epoch first events must not decrease", first=first_event)
        return True

    def _epoch_entries(self) -> Iterator[tuple[int | None, int | None, bytes]]:
        """(epoch, first_event, raw key) for every epoch key; None where the entry is malformed."""
        iterator = self._meta.iter()
        iterator.seek(EPOCH_PREFIX)
        while iterator.valid() and iterator.key().startswith(EPOCH_PREFIX):
            key, value = iterator.key(), iterator.value()
            good = len(key) == len(EPOCH_PREFIX) + KEY_SIZE and len(value) == KEY_SIZE
            epoch = int.from_bytes(key[len(EPOCH_PREFIX) :], "big") if good else None
            yield epoch, (int.from_bytes(value, "big") if good else None), key
            iterator.next()

    def _write(self, meta_updates: dict[bytes, bytes]) -> None:
        self._require_writable()
        batch = rocksdict.WriteBatch(raw_mode=True)
        for key, value in meta_updates.items():
            batch.put(key, value, self._meta_cf)
        self._db.write(batch, self._write_options)

    def _require_writable(self) -> None:
        if self.read_only:
            raise EventLogError(f"event log {self.path} is open read-only")

    # -- observability and checking -------------------------------------------------------------------

    def wal_syncs(self) -> int:
        """How many times RocksDB fsynced its WAL since open (from RocksDB statistics)."""
        for line in (self._options.get_statistics() or "").splitlines():
            if line.startswith("rocksdb.wal.synced COUNT"):
                return int(line.rsplit(":", 1)[1])
        return 0

    def verify(
        self, decode: Callable[[bytes], object] = decode_record, max_problems: int = 10
    ) -> VerifyReport:
        """Check every key and record, in bounded memory: keys are 8 bytes, events contiguous, each record
        decodes (mug + jam) with `decode`, and the epoch history is monotonic."""
        report = VerifyReport(max_problems=max_problems)
        try:
            self._verify_events(report, decode)
        except EventLogError as exc:
            report.add(Problem("storage", report.last_event + 1 if report.count else None, str(exc)))
        self._verify_epochs(report)
        return report

    def _verify_events(self, report: VerifyReport, decode: Callable[[bytes], object]) -> None:
        previous: int | None = None
        for key, value in self.scan():
            event = key_event(key)
            if event is None or event == 0:
                report.add(Problem("bad-key", previous, f"key {key[:16].hex()} is not an event number >= 1"))
                continue
            report.count += 1
            report.total_bytes += len(value)
            report.first_event = report.first_event or event
            report.last_event = event
            if previous is not None and event != previous + 1:
                report.add(Problem("gap", previous + 1, f"events {previous + 1}..{event - 1} missing"))
            previous = event
            check_record(report, event, value, decode)

    def _verify_epochs(self, report: VerifyReport) -> None:
        last_epoch, last_first = -1, 0
        for epoch, first, key in self._epoch_entries():
            if epoch is None or first is None:
                report.add(Problem("epoch", None, f"malformed epoch entry {key[:24].hex()}"))
                continue
            report.epochs += 1
            if epoch <= last_epoch or first < last_first or first < 1:
                report.add(Problem("epoch", first, f"epoch {epoch} from event {first} breaks the history"))
            last_epoch, last_first = epoch, first
