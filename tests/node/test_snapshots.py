"""The kept snapshot store: what a peer may send it, what a damaged disk may hold, and what is served."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from seguro.node.snapshots import Manifest, SnapshotError, SnapshotFile, SnapshotStore


def manifest_bytes(**change: object) -> bytes:
    file = {"name": "snapshot.jam", "size": 3, "sha256": hashlib.sha256(b"abc").hexdigest()}
    good = {"event": 10, "mug": 7, "format": "ship", "genesis": "g1", "files": [file]}
    return json.dumps({**good, **change}).encode()


@pytest.mark.parametrize(
    "data",
    [
        b"[" * 200_000,  # RecursionError inside json
        manifest_bytes(event=1e400),  # OverflowError
        manifest_bytes(event=1 << 64),
        manifest_bytes(mug=-1),
        manifest_bytes(files=[{"name": "../../etc/passwd", "size": 1, "sha256": "0" * 64}]),
        manifest_bytes(files=[{"name": "manifest.json", "size": 1, "sha256": "0" * 64}]),
        manifest_bytes(files=[{"name": "a", "size": 1, "sha256": "not hex"}]),
        manifest_bytes(files=[]),
        b"\xff\xfe",
    ],
)
def test_a_bad_manifest_is_a_snapshot_error_never_another_exception(data: bytes) -> None:
    with pytest.raises(SnapshotError):
        Manifest.decode(data)


def test_a_peer_cannot_send_more_than_its_manifest_says_nor_a_file_that_does_not_match(
    tmp_path: Path,
) -> None:
    store = SnapshotStore(tmp_path)
    manifest = Manifest.decode(manifest_bytes())
    with pytest.raises(SnapshotError, match="more of snapshot.jam"):
        store.receive(manifest, iter([("snapshot.jam", 0, b"abc"), ("snapshot.jam", 3, b"x" * 1000)]))
    with pytest.raises(SnapshotError, match="does not match"):
        store.receive(manifest, iter([("snapshot.jam", 0, b"abd")]))
    with pytest.raises(SnapshotError, match="not in its manifest"):
        store.receive(manifest, iter([("other", 0, b"abc")]))
    assert store.newest() is None  # nothing half-received is ever installed
    store.receive(manifest, iter([("snapshot.jam", 0, b"ab"), ("snapshot.jam", 2, b"c")]))
    assert store.newest("g1") is not None and store.newest("another genesis") is None
    assert [name for _, name, _, _ in store.chunks("g1")] == ["", "snapshot.jam"]
    with pytest.raises(SnapshotError):
        list(store.chunks("another genesis"))


def test_a_damaged_kept_manifest_is_skipped_not_fatal(tmp_path: Path) -> None:
    source = tmp_path / "snapshot.jam"
    source.write_bytes(b"state")
    store = SnapshotStore(tmp_path)
    kept = store.keep(5, 9, "ship", {"snapshot.jam": source}, genesis="g1")
    assert kept.files == (SnapshotFile("snapshot.jam", 5, hashlib.sha256(b"state").hexdigest()),)
    (tmp_path / "snapshots" / "5" / "manifest.json").write_bytes(b"[" * 100_000)
    assert store.newest("g1") is None
