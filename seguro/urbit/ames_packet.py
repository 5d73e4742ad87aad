"""The old Ames packet's header and prelude, transcribed from vere's pkg/vere/io/ames.c (identical in
vere-v3.5 and vere-v4.5), for filtering datagrams the way vere does before any becomes an event.

Header: one little-endian 32-bit word (_ames_sift_head / _ames_etch_head), from the low bit:
2 reserved, 1 req, 1 sim (is ames), 3 version, 2 sender class, 2 receiver class, 20 mug, 1 relayed.
The flags are loobeans, as in ames.hoon's etch-shot: a 0 bit is %.y. So a plain Ames packet has
bit 3 = 0, a remote-scry ("fine") request has bits 3,2 = 1,0 and a fine response 1,1; and an
unrelayed packet has bit 31 = 1, a relayed one 0 (then 6 bytes of origin lane follow the header).

Prelude (_ames_sift_prel): [origin (6 bytes, if relayed)] life byte (sender's tick low nibble,
receiver's high), sender ship (2 << sender class bytes, LE), receiver ship (2 << receiver class bytes).

Mug (_ames_check_mug): vere's u3r_mug_bytes over everything after the header and origin, of which the
header keeps the low 20 bits.
"""

from __future__ import annotations

from dataclasses import dataclass

from seguro.urbit.mesa import mug_bytes

HEAD_SIZE = 4
ORIGIN_SIZE = 6


@dataclass(frozen=True)
class Head:
    """u3_head with its loobeans read as Python truth (a 0 bit is True)."""

    req: bool  # a fine request (when not sim)
    sim: bool  # an Ames packet
    ver: int
    sac: int  # sender class: the sender is 2 << sac bytes
    rac: int  # receiver class
    mug: int  # the low 20 bits of the body's mug
    rel: bool  # relayed: an origin lane follows the header

    @property
    def kind(self) -> str:
        """_ames_pact_typ: "ames", "wail" (fine request) or "purr" (fine response)."""
        return "ames" if self.sim else "wail" if self.req else "purr"


@dataclass(frozen=True)
class Prel:
    """u3_prel: life ticks, sender, receiver, and the origin lane of a relayed packet (0 if none)."""

    sic: int
    ric: int
    sen: int
    rec: int
    rog: int = 0


def sift_head(data: bytes) -> Head:
    """_ames_sift_head: the first 4 bytes, a little-endian word (c3_sift_word)."""
    word = int.from_bytes(data[:HEAD_SIZE], "little")
    return Head(
        req=not (word >> 2) & 1,
        sim=not (word >> 3) & 1,
        ver=(word >> 4) & 7,
        sac=(word >> 7) & 3,
        rac=(word >> 9) & 3,
        mug=(word >> 11) & 0xFFFFF,
        rel=not (word >> 31) & 1,
    )


def etch_head(head: Head) -> bytes:
    """_ames_etch_head, the inverse of sift_head (loobeans back to bits: True is 0)."""
    word = (
        (int(not head.req) << 2)
        | (int(not head.sim) << 3)
        | ((head.ver & 7) << 4)
        | ((head.sac & 3) << 7)
        | ((head.rac & 3) << 9)
        | ((head.mug & 0xFFFFF) << 11)
        | (int(not head.rel) << 31)
    )
    return word.to_bytes(HEAD_SIZE, "little")


def origin_size(head: Head) -> int:
    """_ames_origin_size: 6 bytes of origin lane when relayed."""
    return ORIGIN_SIZE if head.rel else 0


def prel_size(head: Head) -> int:
    """_ames_prel_size: origin, one life byte, sender and receiver."""
    return origin_size(head) + 1 + (2 << head.sac) + (2 << head.rac)


def check_mug(head: Head, data: bytes) -> bool:
    """_ames_check_mug: the low 20 bits of the mug of all bytes after header and origin.
    (vere would read out of bounds on a relayed packet shorter than its origin; callers check first.)"""
    return mug_bytes(data[HEAD_SIZE + origin_size(head) :]) & 0xFFFFF == head.mug


def sift_prel(head: Head, data: bytes) -> Prel:
    """_ames_sift_prel over the bytes after the header (at least prel_size(head) of them)."""
    cur, rog = 0, 0
    if head.rel:
        rog, cur = int.from_bytes(data[:ORIGIN_SIZE], "little"), ORIGIN_SIZE
    life = data[cur]
    cur += 1
    sen_len, rec_len = 2 << head.sac, 2 << head.rac
    sen = int.from_bytes(data[cur : cur + sen_len], "little")
    rec = int.from_bytes(data[cur + sen_len : cur + sen_len + rec_len], "little")
    return Prel(life & 0xF, (life >> 4) & 0xF, sen, rec, rog)


def etch_prel(head: Head, prel: Prel) -> bytes:
    """_ames_etch_prel (ships truncated to their class's width, as _ames_ship_of_chubs does)."""
    origin = prel.rog.to_bytes(8, "little")[:ORIGIN_SIZE] if head.rel else b""
    life = bytes([(prel.sic & 0xF) | ((prel.ric & 0xF) << 4)])
    sen = (prel.sen & ((1 << (8 * (2 << head.sac))) - 1)).to_bytes(2 << head.sac, "little")
    rec = (prel.rec & ((1 << (8 * (2 << head.rac))) - 1)).to_bytes(2 << head.rac, "little")
    return origin + life + sen + rec
