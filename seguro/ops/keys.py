"""`seguro keys`: the ship's event keyring file (node/etcd/sealing.py), made and rotated by hand.

A rotation without downtime is two steps, each ended by `seguro reload`: `add` a key (every node can
then read it) and copy the file to every replica; then `use` it (new batches are sealed under it) and
copy again. Batches sealed under the old key stay readable while any keyring keeps it: `drop` it only
once etcd's retained batches are all newer than the rotation (`seguro etcd reclaim` trims them)."""

from __future__ import annotations

from pathlib import Path

from seguro.node.etcd import sealing
from seguro.node.etcd.sealing import Keyring, KeyringError


def create(path: Path) -> Keyring:
    if path.exists() or path.is_symlink():
        raise KeyringError(f"{path} exists: a keyring is never overwritten (add or use keys in it)")
    ring = Keyring(1, {1: sealing.new_key()})
    sealing.save(path, ring)
    return ring


def add(path: Path) -> Keyring:
    """A new key, not yet current: readable by every node that reloads this file."""
    ring = sealing.load(path)
    new_id = ring.next_id()
    ring = Keyring(ring.current, {**ring.keys, new_id: sealing.new_key()}, new_id)
    sealing.save(path, ring)
    return ring


def use(path: Path, key_id: int) -> Keyring:
    ring = sealing.load(path)
    if key_id not in ring.keys:
        raise KeyringError(f"{path} has no key {key_id} (it has {ring.ids})")
    ring = Keyring(key_id, dict(ring.keys), ring.issued)
    sealing.save(path, ring)
    return ring


def drop(path: Path, key_id: int) -> Keyring:
    ring = sealing.load(path)
    if key_id == ring.current:
        raise KeyringError(f"key {key_id} is the current key: use another first")
    if key_id not in ring.keys:
        raise KeyringError(f"{path} has no key {key_id} (it has {ring.ids})")
    kept = {i: k for i, k in ring.keys.items() if i != key_id}
    ring = Keyring(ring.current, kept, ring.next_id() - 1)
    sealing.save(path, ring)
    return ring
