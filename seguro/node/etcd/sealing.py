"""Events in etcd are sealed: AES-256-GCM under a per-ship key that etcd never sees.

A ship's boot events hold its private networking keys, and its log is the ship: anyone with read access
to etcd must learn nothing from it, and anyone with write access must not be able to slip a record in.
So the master seals each record before it leaves for etcd, and every reader opens it:

- the associated data binds the record to its ship, event number and epoch (the fencing token it was
  committed under): a record copied to another event, epoch or ship fails to open and is refused;
- each sealed record names its key's id (`Record.key` on the wire; 0 means plaintext), so keys rotate
  without downtime: new batches go out under the current key, old ones open with old keys until trimmed;
- a node that has a keyring refuses plaintext records: with encryption on, a record without a seal is
  one that nobody with the key wrote.

Local RocksDB logs and the push streams between replicas (over mutual TLS) carry plaintext, as vere's
own LMDB log does. The keyring is a JSON file, readable by its owner only (a looser mode is refused):
{"current": 2, "keys": {"1": "<base64 of 32 bytes>", "2": "..."}}.
"""

from __future__ import annotations

import base64
import json
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from seguro.invariant import InvariantViolation
from seguro.node.tls import loose_mode
from seguro.proto.seguro.v1 import replication_pb2 as pb

NONCE_BYTES = 12
TAG_BYTES = 16
KEY_BYTES = 32
AD_LABEL = b"seguro/event/v1"


class KeyringError(ValueError):
    """The keyring file is unusable: missing, unreadable, malformed, or readable by others."""


class SealError(InvariantViolation):
    """A committed record in etcd cannot be opened: a wrong or missing key, or a record moved, altered or
    written in plaintext into a sealed ship. Never retried, never skipped: the node stops loudly rather
    than apply (or serve) an event it cannot trust."""


@dataclass(frozen=True)
class Keyring:
    """The ship's event keys by id, and which one seals new records."""

    current: int
    keys: dict[int, bytes] = field(repr=False)  # never printed: repr shows ids only
    issued: int = 0  # the highest id ever given out: a dropped id is never reused for other bytes

    def __post_init__(self) -> None:
        if self.current not in self.keys:
            raise KeyringError(f"keyring: current key {self.current} is not among its keys {self.ids}")
        for key_id, key in self.keys.items():
            if not 0 < key_id < 1 << 32 or len(key) != KEY_BYTES:
                raise KeyringError(f"keyring: key {key_id} needs an id in 1..2^32-1 and {KEY_BYTES} bytes")

    @property
    def ids(self) -> list[int]:
        return sorted(self.keys)

    def seal(self, ship: str, event: int, epoch: int, data: bytes) -> tuple[int, bytes]:
        """(key id, nonce + ciphertext + tag) of one record."""
        nonce = os.urandom(NONCE_BYTES)
        sealed = AESGCM(self.keys[self.current]).encrypt(nonce, data, associated(ship, event, epoch))
        return self.current, nonce + sealed

    def open(self, ship: str, event: int, epoch: int, key_id: int, blob: bytes) -> bytes:
        key = self.keys.get(key_id)
        if key is None:
            raise SealError(f"event {event} is sealed with key {key_id}, which this keyring lacks "
                            f"(it has {self.ids}): add the key before making it current")  # fmt: skip
        try:
            if len(blob) < NONCE_BYTES + TAG_BYTES:
                raise InvalidTag
            return AESGCM(key).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], associated(ship, event, epoch))
        except InvalidTag:
            raise SealError(f"event {event} (epoch {epoch}) of ship {ship} fails authentication under key "
                            f"{key_id}: altered, or copied from another event, epoch or ship") from None

    def next_id(self) -> int:
        return max(self.issued, *self.keys) + 1

    def to_json(self) -> str:
        keys = {str(i): base64.b64encode(k).decode() for i, k in sorted(self.keys.items())}
        issued = self.next_id() - 1
        return json.dumps({"current": self.current, "issued": issued, "keys": keys}, indent=1)


def seal_record(keyring: Keyring | None, ship: str, epoch: int, event: int, data: bytes) -> pb.Record:
    """Event `event` as stored in etcd: sealed under the keyring's current key, when there is one."""
    if keyring is None:
        return pb.Record(event=event, data=data)
    key, sealed = keyring.seal(ship, event, epoch, data)
    return pb.Record(event=event, data=sealed, key=key)


def open_record(keyring: Keyring | None, ship: str, epoch: int, r: pb.Record) -> None:
    """Replace a sealed record's data with its plaintext; refuse what this node cannot trust."""
    if r.key:
        if keyring is None:
            raise SealError(f"event {r.event} of ship {ship} is sealed (key {r.key}) and this node has no "
                            "keyring: set event_keys")  # fmt: skip
        r.data, r.key = keyring.open(ship, r.event, epoch, r.key, r.data), 0
    elif keyring is not None:
        raise SealError(f"event {r.event} of ship {ship} is in etcd in plaintext, and this node seals its "
                        "events: nobody with the key wrote it, so it is not applied")  # fmt: skip


def associated(ship: str, event: int, epoch: int) -> bytes:
    return AD_LABEL + b"\0" + ship.encode() + b"\0" + struct.pack(">QQ", event, epoch)


def new_key() -> bytes:
    return AESGCM.generate_key(bit_length=KEY_BYTES * 8)


def load(path: Path) -> Keyring:
    """Read a keyring file, refusing one that others may read or write."""
    try:
        if why := loose_mode(path, "keyring"):
            raise KeyringError(why)
        raw = json.loads(path.read_text())
        keys = {_key_id(i): base64.b64decode(k, validate=True) for i, k in raw["keys"].items()}
        return Keyring(_whole(raw["current"]), keys, _whole(raw.get("issued", 0)))
    except KeyringError:
        raise
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise KeyringError(f"keyring {path} cannot be read: {type(e).__name__}") from None  # no key bytes


def _key_id(text: str) -> int:
    """A key id as the file spells it: a plain decimal ('01' and ' 1' would alias key 1)."""
    if not text.isdigit() or str(int(text)) != text:
        raise ValueError("a key id is a plain decimal number")
    return int(text)


def _whole(value: object) -> int:
    if type(value) is not int:  # not a bool, not 1.9
        raise TypeError("a key id is a whole number")
    return value


def save(path: Path, ring: Keyring) -> None:
    """Write a keyring file with mode 600, atomically (a rotation never leaves half a file), through a
    symlink to the file it names rather than over the link."""
    path = path.resolve()
    tmp = path.with_name(path.name + ".tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)  # a leftover tmp file keeps its mode through O_TRUNC
        with os.fdopen(fd, "w") as f:
            f.write(ring.to_json())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        raise KeyringError(f"keyring {path} cannot be written: {e.strerror}") from None
