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
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20
MANIFEST = "manifest.json"
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789._-")


class SnapshotError(ValueError):
    """A snapshot is missing, malformed, or does not match its manifest."""


@dataclass(frozen=True)
class SnapshotFile:
    name: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    event: int
    mug: int
    format: str
    files: tuple[SnapshotFile, ...]

    def encode(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def decode(cls, data: bytes) -> Manifest:
        try:
            raw = json.loads(data)
            files = tuple(SnapshotFile(str(f["name"]), int(f["size"]), str(f["sha256"])) for f in raw["files"])  # noqa: E501
            manifest = cls(int(raw["event"]), int(raw["mug"]), str(raw["format"]), files)
        except (ValueError, KeyError, TypeError) as e:
            raise SnapshotError(f"malformed snapshot manifest: {e}") from None
        for f in manifest.files:
            if not f.name or f.name.startswith(".") or not set(f.name) <= _NAME_CHARS or f.size < 0:
                raise SnapshotError(f"snapshot manifest names a bad file: {f.name!r}")
        if manifest.event < 1 or not manifest.files:
            raise SnapshotError("snapshot manifest has no event or no files")
        return manifest

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)


class SnapshotStore:
    """DATA/snapshots: the newest kept snapshot, and the means to send, receive and restore one."""

    def __init__(self, data_dir: Path) -> None:
        self.root = data_dir / "snapshots"

    def newest(self) -> tuple[Manifest, Path] | None:
        """The kept snapshot with the highest event (None if there is none)."""
        if not self.root.is_dir():
            return None
        kept = sorted((int(p.name), p) for p in self.root.iterdir() if p.name.isdigit() and p.is_dir())
        for _, path in reversed(kept):
            try:
                return Manifest.decode((path / MANIFEST).read_bytes()), path
            except (OSError, SnapshotError) as e:
                log.warning("unreadable kept snapshot", extra={"path": str(path), "error": str(e)})
        return None

    def keep(self, event: int, mug: int, fmt: str, files: dict[str, Path]) -> Manifest:
        """Copy the runtime's snapshot files (just saved at committed `event`) into the store."""
        staging = self._staging(event)
        entries = []
        for name, source in files.items():
            shutil.copyfile(source, staging / name)
            entries.append(SnapshotFile(name, (staging / name).stat().st_size, _sha256(staging / name)))
        manifest = Manifest(event, mug, fmt, tuple(entries))
        self._commit(staging, manifest)
        return manifest

    def chunks(self, manifest_only: bool = False) -> Iterator[tuple[Manifest, str, int, bytes]]:
        """(manifest, file name, offset, bytes) of the newest snapshot: first the manifest (name "")."""
        newest = self.newest()
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
        known = {f.name for f in manifest.files}
        try:
            for name, offset, data in parts:
                if name not in known:
                    raise SnapshotError(f"the peer sent a file not in its manifest: {name!r}")
                target = staging / name
                if offset != (target.stat().st_size if target.exists() else 0):
                    raise SnapshotError(f"the peer sent {name} out of order (offset {offset})")
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

    def restore(self, targets: dict[str, Path]) -> Manifest:
        """Put the newest kept snapshot where the runtime loads it (each file through a renamed .tmp)."""
        newest = self.newest()
        if newest is None:
            raise SnapshotError("no snapshot to restore")
        manifest, path = newest
        if {f.name for f in manifest.files} != set(targets):
            raise SnapshotError(f"snapshot of format {manifest.format} does not hold {sorted(targets)}")
        for name, target in targets.items():
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(target.name + ".tmp")
            shutil.copyfile(path / name, tmp)
            _fsync(tmp)
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
