"""How a worker is started: the runtime setting's words -> the protocol to speak and the argv to run.

- (nothing), `ship` or `ship1 [ARGS]`: the reference ship, protocol 1; `ship2 [ARGS]`: it as vere 4.x's
  worker, protocol 2 (it owns the pier's log). ARGS go to `seguro ship serve` (e.g. fault injection).
- `vere3:PATH`: vere 3.x's serf, as lord.c (vere-v3.5) spawns it: `PATH serf <pier> <key> <wag> <hap>
  <lom> <rock|0> <eph|0> <tos> <per>` (main.c reads these 11 words by position).
- `vere4:PATH`: vere 4.x's worker, as lord.c (vere-v4.5) spawns it: `PATH work --snap-dir <pier> ...`,
  with the snapshot timer set as far off as vere's arithmetic allows (4,000,000 s: mars.c multiplies the
  seconds by 1000 in 32 bits), because the worker may snapshot only events Seguro has committed.
- anything else: a protocol-1 command line, run as given.
The values are vere's defaults (main.c): cache sizes 50000, loom 2^31, toss 0, runtime flags 0, the disk
key 0:0:0:0 (vere's key is unused by the worker), LMDB map 1 TiB.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

VERE4_SNAP_TIME_S = 4_000_000
_HAP = _PER = "50000"
_LOOM_BITS = "31"
_LMDB_MAP_BYTES = str(1 << 40)


SNAPSHOT_FILES = {  # where each runtime keeps its snapshot, under its pier
    "ship": ("snapshot.jam",),  # the reference ship (seguro.urbit.ship.kernel.SNAPSHOT_NAME)
    "vere3": (".urb/chk/north.bin", ".urb/chk/south.bin"),
    "vere4": (".urb/chk/image.bin",),
}


@dataclass(frozen=True)
class Launch:
    """What to run and how to speak to it. `vere`: a real vere, whose filtering of traffic applies.
    `snapshot_format`: whose snapshot files it keeps ("" for a command line Seguro does not know)."""

    protocol: int
    argv: tuple[str, ...]
    vere: bool = False
    snapshot_format: str = ""

    def snapshot_files(self, pier: Path) -> dict[str, Path]:
        """The runtime's snapshot files by their name (what replicas exchange) -> where it keeps them."""
        return {Path(p).name: pier / p for p in SNAPSHOT_FILES.get(self.snapshot_format, ())}


def reference_ship(pier: Path, protocol: int, extra: Sequence[str] = ()) -> tuple[str, ...]:
    flags = ("--protocol", "2") if protocol == 2 else ()
    return (sys.executable, "-m", "seguro.urbit.ship", "--pier", str(pier), *flags, *extra)


def launch(words: Sequence[str], pier: Path) -> Launch:
    """The runtime for `words` (the node's `runtime` setting) with its pier at `pier`; ValueError if a
    `vere3:`/`vere4:` word has no path."""
    head, rest = (words[0], tuple(words[1:])) if words else ("ship", ())
    if head in ("ship", "ship1", "ship2"):
        protocol = 2 if head == "ship2" else 1
        return Launch(protocol, reference_ship(pier, protocol, rest), snapshot_format="ship")
    kind, _, path = head.partition(":")
    if kind in ("vere3", "vere4"):
        if not path or rest:
            raise ValueError(f"runtime {kind}:PATH takes the path of the urbit binary and nothing else, "
                             f"got {' '.join(words)!r}")  # fmt: skip
        major = int(kind[-1])
        return Launch(1 if major == 3 else 2, vere_argv(major, path, pier), vere=True, snapshot_format=kind)
    return Launch(1, tuple(words))


def vere_argv(major: int, binary: str, pier: Path) -> tuple[str, ...]:
    if major == 3:
        return (binary, "serf", str(pier), "0:0:0:0", "0", _HAP, _LOOM_BITS, "0", "0", "0", _PER)
    return (
        binary, "work", "--snap-dir", str(pier), "--runtime-config", "0", "--temporary-cache-size", _HAP,
        "--loom", _LOOM_BITS, "--toss", "0", "--persistent-cache-size", _PER,
        "--snap-time", str(VERE4_SNAP_TIME_S), "--lmdb-map-size", _LMDB_MAP_BYTES,
    )  # fmt: skip
