"""The on-disk facts of vere's event log, as plain data: names, META's byte encoding, epoch directories.

- `.urb/log/` holds a top-level LMDB environment (META only, version 3) and one directory per epoch,
  `0i<N>`, whose events start at N+1 (N: the snapshot's event, 0 for the first epoch). Each epoch holds
  an environment with EVENTS and META, `epoc.txt` ("1": north/south.bin snapshots, vere 3.x; "2":
  image.bin, vere 4.x) and `vere.txt`, and, except `0i0`, a copy of the snapshot at N.
- vere 1.x-2.x: one environment directly in `.urb/log/` with EVENTS and META (version 1).
- EVENTS (MDB_INTEGERKEY): key = the event number as a native 8-byte integer (little-endian on every
  platform vere runs on), value = 4-byte little-endian mug + jam bytes.
- META values: the little-endian bytes of the field with trailing zero bytes stripped.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

MAP_SIZE = 1 << 40  # vere's default --lmdb-map-size (1 TiB); sparse, it costs no disk
MAX_DBS = 2
FILE_MODE = 0o664
EVENTS, META = b"EVENTS", b"META"
VERSION_EPOCHS = 3  # META version of the epoch system (vere >= 3.0); 1: one environment (1.x-2.x)
EPOCH_FORMATS = {3: 1, 4: 2}  # vere major version -> the epoc.txt it writes
SNAPSHOT_FILES = {1: ("north.bin", "south.bin"), 2: ("image.bin",)}  # by epoch format
VERE_VERSIONS = {3: "3.5", 4: "4.5"}  # what vere.txt says for the release this export matches
_EPOCH_DIR = re.compile(r"0i(0|[1-9][0-9]*)")


class PierError(ValueError):
    """The pier is not a log vere wrote; the message names the event or the file."""


@dataclass(frozen=True)
class Meta:
    """A pier's identity: META's `version`, `who` (the @p as an integer), `fake` and `life` (the number
    of boot formula events)."""

    version: int
    who: int
    fake: bool
    life: int

    def encode(self) -> dict[bytes, bytes]:
        return {
            b"version": _le(self.version),
            b"who": _le(self.who),
            b"fake": b"" if self.fake else b"\x01",  # a loobean: yes (c3y) is 0
            b"life": _le(self.life),
        }

    @classmethod
    def decode(cls, values: dict[bytes, bytes], where: str) -> Meta:
        """Read and check META as vere 4.5 does: version <= 3, who <= 128 bits, fake 0 or 1, life < 2^31."""
        missing = [k.decode() for k in (b"version", b"who", b"fake", b"life") if k not in values]
        if missing:
            raise PierError(f"{where}: META lacks {', '.join(missing)}")
        version, who, life = (int.from_bytes(values[k], "little") for k in (b"version", b"who", b"life"))
        fake_bytes = values[b"fake"]
        if not 1 <= version <= VERSION_EPOCHS:
            raise PierError(f"{where}: META version {version} (vere reads 1..{VERSION_EPOCHS})")
        if len(values[b"who"]) > 16:
            raise PierError(f"{where}: META who is {len(values[b'who'])} bytes (an @p is at most 16)")
        if len(fake_bytes) > 1 or (fake_bytes and fake_bytes[0] > 1):
            raise PierError(f"{where}: META fake is {fake_bytes.hex()!r}, not a loobean")
        if life >= 1 << 31:
            raise PierError(f"{where}: META life {life} is out of range (< 2^31)")
        return cls(version, who, not fake_bytes or fake_bytes[0] == 0, life)


def _le(value: int) -> bytes:
    return value.to_bytes(max(1, (value.bit_length() + 7) // 8), "little").rstrip(b"\0")


def event_key(event: int) -> bytes:
    return event.to_bytes(8, "little")


def key_event(key: bytes) -> int:
    return int.from_bytes(key, "little")


def log_dir(pier: Path) -> Path:
    return Path(pier) / ".urb" / "log"


def epoch_dir(pier: Path, base: int) -> Path:
    return log_dir(pier) / f"0i{base}"


def epochs(pier: Path) -> list[int]:
    """The epochs' bases (N of `0i<N>`), oldest first; [] for a 1.x-2.x pier (or no log)."""
    root = log_dir(pier)
    if not root.is_dir():
        return []
    try:
        found = [_EPOCH_DIR.fullmatch(p.name) for p in root.iterdir() if p.is_dir()]
    except OSError as e:
        raise PierError(f"{root}: {e.strerror or e}") from None
    return sorted(int(m.group(1)) for m in found if m)


def write_text_atomically(path: Path, text: str) -> None:
    """As vere writes epoc.txt and vere.txt: a .tmp file, fsynced, renamed over, the directory fsynced."""
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, path)
    fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_small_text(path: Path, max_bytes: int) -> str:
    """epoc.txt (< 7 bytes) and vere.txt (< 127), trailing white space trimmed, as vere reads them."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise PierError(f"{path}: {e.strerror or e}") from None
    if len(data) >= max_bytes:
        raise PierError(f"{path} is {len(data)} bytes (vere reads fewer than {max_bytes})")
    return data.decode(errors="replace").rstrip()
