"""Remote scry ("fine") over the old Ames packet, as vere answers it itself (pkg/vere/io/ames.c, the same
in vere-v3.5 and vere-v4.5): a request ("wail") never becomes an event; vere peeks Arvo for a page of
response fragments and sends the requested one back as a "purr" packet.

Arvo signs the fragments: each "meow" it returns already carries its 64-byte signature, so building the
answer needs no keys. What we do not do: vere routes the answer to the requester by its own lookup
(_ames_try_send: a galaxy's lane is `[%.y galaxy]`; any other ship's lanes come from %nail effects or a
peek of /peers/(scot %p ship)/forward-lane). `answer_lane` covers galaxies; other requesters need that
peek, and we have no @p printer for its path, so `answer_lane` returns None for them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from seguro.urbit import ames_packet as ap
from seguro.urbit.ames import YES
from seguro.urbit.mesa import mug_bytes
from seguro.urbit.noun import Noun, cord, from_list, to_list

FINE_PAGE = 4096  # packets per page
FINE_FRAG = 1024  # bytes per fragment packet
FINE_PATH_MAX = 384  # longest allowed scry path
SIG_SIZE = 64


class FineError(ValueError):
    """A wail vere drops: "bad wail" (_fine_sift_wail) or "bad wail path" (_fine_scry_path)."""


@dataclass(frozen=True)
class Wail:
    """A parsed fine request (u3_head, u3_prel and u3_peep), what vere keeps to build its answer."""

    head: ap.Head
    prel: ap.Prel
    fra: int  # fragment number
    path: bytes  # the path as sent, e.g. b"/c/x/1/kids/sys/kelvin"
    key: Noun  # the path parsed, a list of cords


def sift_wail(head: ap.Head, prel: ap.Prel, data: bytes, cur: int) -> Wail:
    """_fine_sift_wail, then _fine_scry_path: tag byte 0, fragment (u32 LE), path length (u16 LE, at
    most 384), the path, and nothing after it."""
    if cur + 6 > len(data):  # vere checks the fragment and length fields, not the tag byte
        raise FineError("bad wail")
    if data[cur] != 0:
        raise FineError("bad wail")  # "fine: wail tag unknown"
    fra = int.from_bytes(data[cur + 1 : cur + 5], "little")
    length = int.from_bytes(data[cur + 5 : cur + 7], "little")
    if length > FINE_PATH_MAX or cur + 7 + length != len(data):
        raise FineError("bad wail")
    path = data[cur + 7 :]
    key = scry_path(path)
    if key is None:
        raise FineError("bad wail path")
    return Wail(head, prel, fra, path, key)


def scry_path(path: bytes) -> Noun | None:
    """ames.c's PATH_PARSER, `;~(pfix fas (most fas (cook crip (star ;~(less fas prn)))))`, run by
    `rush` on the path as a C string (u3i_string stops at a NUL). prn is any byte 32..255 but 127.
    So: a leading '/', then '/'-separated segments, each possibly empty. None when it does not parse."""
    text = path.split(b"\0", 1)[0]
    if not text.startswith(b"/"):
        return None
    segments = text[1:].split(b"/")
    if any(byte < 32 or byte == 127 for segment in segments for byte in segment):
        return None
    return from_list(int.from_bytes(segment, "little") for segment in segments)


def scot_ud(number: int) -> int:
    """`(scot %ud n)`: decimal with a dot every three digits from the right, as a cord."""
    return cord(f"{number:,}".replace(",", "."))


def lop(fra: int) -> int:
    """_fine_lop: the first fragment of the page holding `fra` (u32 arithmetic, as in C)."""
    return (1 + (((fra - 1) & 0xFFFFFFFF) // FINE_PAGE) * FINE_PAGE) & 0xFFFFFFFF


def peek_sam(wail: Wail) -> Noun:
    """The peek vere makes for a wail (_fine_hear_request, a cache miss): u3_pier_peek_last with gang ~,
    care %ax, desk ~ and path /fine/hunk/(scot %ud lop)/(scot %ud 4096)/<key>; u3_lord_peek makes the
    sam `[gang %.n %once care desk path]` (pkg/vere/lord.c)."""
    path = (cord("fine"), (cord("hunk"), (scot_ud(lop(wail.fra)), (scot_ud(FINE_PAGE), wail.key))))
    return (0, (1, (cord("once"), (cord("ax"), (0, path)))))


def fragment_of(wail: Wail, result: Noun) -> int | None:
    """The requested meow in a peek result `[~ mark fragments]` (_fine_hunk_scry_cb: u3r_at(7) is the
    page's list, from fragment lop onward); None when the scry is empty or too short."""
    if not isinstance(result, tuple) or not isinstance(result[1], tuple):
        return None
    try:
        page = to_list(result[1][1])
    except ValueError:
        return None
    index = (wail.fra - lop(wail.fra)) & 0xFFFFFFFF
    meow = page[index] if index < len(page) else None
    return meow if isinstance(meow, int) else None


def sift_meow(meow: int) -> tuple[bytes, int, bytes] | None:
    """_fine_sift_meow: (signature, number of fragments, data) of a fragment atom, whose byte length
    must lie in 65..1092; the fragment count takes up to 4 bytes, the data the rest."""
    size = (meow.bit_length() + 7) // 8
    if not SIG_SIZE + 1 <= size <= SIG_SIZE + 4 + FINE_FRAG:
        return None
    raw = meow.to_bytes(size, "little")
    num_len = min(4, size - SIG_SIZE)
    num = int.from_bytes(raw[SIG_SIZE : SIG_SIZE + 4], "little")
    return raw[:SIG_SIZE], num, raw[SIG_SIZE + num_len :]


def answer(wail: Wail, result: Noun) -> bytes | None:
    """The purr datagram vere sends for `wail` given its peek `result` (_fine_hunk_scry_cb ->
    _fine_etch_response); None where vere sends nothing (empty scry, fragment out of range, bad meow)."""
    meow = fragment_of(wail, result)
    parts = sift_meow(meow) if meow is not None else None
    if parts is None:
        return None
    head = ap.Head(req=False, sim=False, ver=wail.head.ver, sac=wail.head.rac, rac=wail.head.sac,
                   mug=0, rel=False)  # fmt: skip
    prel = ap.Prel(sic=wail.prel.ric, ric=wail.prel.sic, sen=wail.prel.rec, rec=wail.prel.sen)
    body = ap.etch_prel(head, prel) + _etch_purr(wail, *parts)
    return ap.etch_head(replace(head, mug=mug_bytes(body) & 0xFFFFF)) + body


def _etch_purr(wail: Wail, sig: bytes, num: int, dat: bytes) -> bytes:
    """_fine_etch_purr: the request's peep (fragment u32, path length u16, path), then the meow
    (_fine_etch_meow): signature, the fragment count (4 bytes if there is data, else only its
    significant bytes), the data."""
    peep = wail.fra.to_bytes(4, "little") + len(wail.path).to_bytes(2, "little") + wail.path
    num_len = 4 if dat else (num.bit_length() + 7) // 8
    return peep + sig + num.to_bytes(4, "little")[:num_len] + dat


def answer_lane(wail: Wail) -> Noun | None:
    """Where vere sends the answer (_ames_try_send): `[%.y galaxy]` when the requester is a galaxy; for
    any other ship vere looks its lanes up (see the module's docstring), which we do not: None."""
    return (YES, wail.prel.sen) if wail.prel.sen < 256 else None


def lanes_of(result: Noun) -> list[Noun]:
    """The lanes in a forward-lane peek result `[~ mark lanes]` (_ames_lane_scry_cb), for a caller that
    does that lookup itself."""
    if not isinstance(result, tuple) or not isinstance(result[1], tuple):
        return []
    try:
        return to_list(result[1][1])
    except ValueError:
        return []
