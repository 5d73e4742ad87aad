"""The runtime snapshot a replica keeps and serves: the newest one its runtime took at a committed event,
copied out of the runtime's pier into DATA/snapshots/<event>/ with a manifest (event, mug, format, each
file's size and SHA-256), so that the runtime may overwrite its own while a peer is being served.

A new or wiped replica receives one into a temporary directory, checks every file against the manifest,
and only then renames it into place: a torn or corrupt transfer is never installed. `seguro log chop`
drops the events a kept snapshot stands for.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20
MANIFEST = "manifest.json"
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789._-")
_SHA256 = re.compile(r"[0-9a-f]{64}")
MAX_FILE_BYTES = 1 << 40  # a loom is at most 2^35 bytes; a snapshot file of more is no snapshot


class SnapshotError(ValueError):
    """A snapshot is missing, malformed, or does not match its manifest."""


@dataclass(frozen=True)
class SnapshotFile:
    name: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    """Which snapshot: of which genesis (the ship's log it belongs to), at which event and mug, in whose
    format, and each file's size and SHA-256."""

    event: int
    mug: int
    format: str
    files: tuple[SnapshotFile, ...]
    genesis: str = ""

    def encode(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def decode(cls, data: bytes) -> Manifest:
        """The manifest in `data`, or SnapshotError for anything else (from a peer or a damaged disk)."""
        try:
            raw = json.loads(data)
            files = tuple(SnapshotFile(str(f["name"]), int(f["size"]), str(f["sha256"])) for f in raw["files"])  # noqa: E501
            event, mug = int(raw["event"]), int(raw["mug"])
            fmt, genesis = str(raw["format"]), str(raw["genesis"])
        except (ValueError, KeyError, TypeError, OverflowError, RecursionError) as e:
            raise SnapshotError(f"malformed snapshot manifest: {type(e).__name__}: {e}") from None
        for f in files:
            bad_name = f.name in ("", MANIFEST) or f.name.startswith(".") or not set(f.name) <= _NAME_CHARS
            if bad_name or not 0 <= f.size < MAX_FILE_BYTES or not _SHA256.fullmatch(f.sha256):
                raise SnapshotError(f"snapshot manifest names a bad file: {f.name[:64]!r}")
        if not 1 <= event < 1 << 64 or not 0 <= mug < 1 << 32 or not files or len(files) > 8:
            raise SnapshotError("snapshot manifest has no event, a bad mug, or no files")
        return cls(event, mug, fmt[:32], files, genesis[:128])

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)


class SnapshotStore:
    """DATA/snapshots: the newest kept snapshot, and the means to send, receive and restore one."""

    def __init__(self, data_dir: Path) -> None:
        self.root = data_dir / "snapshots"

    def newest(self, genesis: str | None = None) -> tuple[Manifest, Path] | None:
        """The kept snapshot with the highest event (None if there is none), of `genesis` when given: a
        snapshot left from another life of this data directory is never served, chopped by or restored."""
        if not self.root.is_dir():
            return None
        kept = sorted((int(p.name), p) for p in self.root.iterdir() if p.name.isdigit() and p.is_dir())
        for _, path in reversed(kept):
            try:
                manifest = Manifest.decode((path / MANIFEST).read_bytes())
                if genesis is None or manifest.genesis == genesis:
                    return manifest, path
                log.warning("ignoring a kept snapshot of another genesis", extra={"path": str(path)})
            except (OSError, SnapshotError) as e:
                log.warning("unreadable kept snapshot", extra={"path": str(path), "error": str(e)})
        return None

    def keep(self, event: int, mug: int, fmt: str, files: dict[str, Path], genesis: str) -> Manifest:
        """Copy the runtime's snapshot files (just saved at committed `event`) into the store."""
        staging = self._staging(event)
        entries = []
        for name, source in files.items():
            shutil.copyfile(source, staging / name)
            entries.append(SnapshotFile(name, (staging / name).stat().st_size, _sha256(staging / name)))
        manifest = Manifest(event, mug, fmt, tuple(entries), genesis)
        self._commit(staging, manifest)
        return manifest

    def chunks(self, genesis: str, manifest_only: bool = False) -> Iterator[tuple[Manifest, str, int, bytes]]:
        """(manifest, file name, offset, bytes) of the newest snapshot of `genesis`: first the manifest
        (name "")."""
        newest = self.newest(genesis)
        if newest is None:
            raise SnapshotError("this replica keeps no snapshot")
        manifest, path = newest
        yield manifest, "", 0, manifest.encode()
        if manifest_only:
            return
        for f in manifest.files:
            with open(path / f.name, "rb") as stream:
                offset = 0
                while data := stream.read(CHUNK_BYTES):
                    yield manifest, f.name, offset, data
                    offset += len(data)

    def receive(self, manifest: Manifest, parts: Iterable[tuple[str, int, bytes]]) -> Path:
        """Write a peer's snapshot from its file chunks, check it against `manifest`, install it."""
        staging = self._staging(manifest.event)
        sizes = {f.name: f.size for f in manifest.files}
        try:
            for name, offset, data in parts:
                if name not in sizes:
                    raise SnapshotError(f"the peer sent a file not in its manifest: {name[:64]!r}")
                target = staging / name
                if offset != (target.stat().st_size if target.exists() else 0):
                    raise SnapshotError(f"the peer sent {name} out of order (offset {offset})")
                if offset + len(data) > sizes[name]:
                    raise SnapshotError(f"the peer sent more of {name} than the {sizes[name]} bytes it said")
                with open(target, "ab") as out:
                    out.write(data)
            for f in manifest.files:
                got = staging / f.name
                if not got.exists() or got.stat().st_size != f.size or _sha256(got) != f.sha256:
                    raise SnapshotError(f"{f.name} does not match the manifest (size or SHA-256)")
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return self._commit(staging, manifest)

    def discard(self, event: int) -> None:
        """Forget a kept snapshot (one that could not be installed must not be advertised)."""
        shutil.rmtree(self.root / str(event), ignore_errors=True)

    def restore(self, targets: dict[str, Path], genesis: str) -> Manifest:
        """Put the newest kept snapshot where the runtime loads it: every file first copied beside its
        target and synced, then all renamed over (a failure before the renames leaves the targets as
        they were)."""
        newest = self.newest(genesis)
        if newest is None:
            raise SnapshotError("no snapshot to restore")
        manifest, path = newest
        if {f.name for f in manifest.files} != set(targets):
            raise SnapshotError(f"snapshot of format {manifest.format} does not hold {sorted(targets)}")
        staged = []
        for name, target in targets.items():
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(target.name + ".tmp")
            shutil.copyfile(path / name, tmp)
            _fsync(tmp)
            staged.append((tmp, target))
        for tmp, target in staged:
            os.replace(tmp, target)
        return manifest

    def _staging(self, event: int) -> Path:
        staging = self.root / f".incoming-{event}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        return staging

    def _commit(self, staging: Path, manifest: Manifest) -> Path:
        """Manifest written and synced, the directory renamed into place, older snapshots removed."""
        (staging / MANIFEST).write_bytes(manifest.encode())
        for f in [*manifest.files, SnapshotFile(MANIFEST, 0, "")]:
            _fsync(staging / f.name)
        final = self.root / str(manifest.event)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(staging, final)
        _fsync(self.root)
        for other in self.root.iterdir():
            if other != final and other.name.isdigit() and int(other.name) < manifest.event:
                shutil.rmtree(other, ignore_errors=True)
        return final


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while data := f.read(CHUNK_BYTES):
            digest.update(data)
    return digest.hexdigest()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
