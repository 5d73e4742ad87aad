"""Mesa (directed messaging) peeks answered as vere answers them itself, without an event: vere-v4.5's
pkg/vere/io/mesa.c (vere-v3.5's does the same; only comments and a leak fix differ) and mesa/pact.c.

_mesa_hear_peek peeks Arvo for the whole message as one "jumbo frame" (the sam is
seguro.urbit.ames_filter.mesa_peek_sam). Arvo's answer is `[~ mark [pac pas pof]]`; vere takes
u3r_at(7) of it (_mesa_page_scry_jumbo_cb): `pac` a page packet (an indirect atom) carrying the frame's
data and the message's auth (signature or hmac), `pas` a list of 64-byte hash pairs, one per 1 KiB leaf
of the frame, and `pof` the message's LSS proof (seguro.urbit.lss) as bytes, when the message has more
than one leaf. vere hashes nothing: Arvo made the auth, the pairs and the proof, so answering needs no
keys. From the frame vere sends one page packet (_mesa_send_piece / _mesa_send_leaf):
  - to an "init" peek (fragment 0, nit set) of a message of several leaves: the proof, as the page's
    data, with the message's auth;
  - else leaf `fra` of the frame: its bytes, with the message's auth when fra is 0, else the leaf's hash
    pair (or no auth when its pair is all zero bytes).
The page's name is the peek's own (ship re-etched at its rank's width, rift, bloq, path as sent) with the
answered fragment number; its head has no next hop and hop count 0; the packet is etched by
mesa_etch_pact_to_buf. It goes to the address the peek came from (_mesa_hear_peek's lan_u).

Where we differ, and why (none of it changes a packet we send):
  - vere caches frames (its jumbo cache) and, on a miss, peeks and then answers every requester waiting
    in its pending-interest table with fragment 0 (_mesa_page_scry_jumbo_cb passes 0, not the fragment
    asked for); once cached, it answers each peek with the fragment asked for. We keep no cache, so each
    peek is peeked afresh and answered as vere answers with the frame cached: the fragment asked for.
  - Where vere would read past its buffers (a fragment beyond the frame, a pair `pas` does not give, a
    proof `pof` was not given for, more pairs than leaves), or crash etching a packet larger than
    PACT_SIZE, we send nothing and say why (`Unanswered`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from seguro.urbit import lss
from seguro.urbit.mesa import (
    AUTH_HMAC,
    AUTH_NONE,
    AUTH_PAIR,
    AUTH_SIGN,
    AUTH_SIZE,
    HOP_NONE,
    MESA_COOKIE,
    PACT_SIZE,
    PAGE,
    MesaSiftError,
    Name,
    Pact,
    mug_bytes,
    num_leaves,
    sift_pact,
)
from seguro.urbit.noun import Noun, to_list

JUMBO_BLOQ = 23  # vere's default jumbo frame size, in leaves (main.c: u3_Host.ops_u.jum_y = 23)
PUG = 1 << 31  # u3a_is_pug: an indirect atom is one that is not direct (direct atoms are below 2^31)


class Unanswered(Exception):
    """vere sends nothing (or we refuse to send what it would read from past its buffers); the message
    is the reason counted: "empty", "misshapen", "no fragment" or "too large"."""


@dataclass(frozen=True)
class Frame:
    """A jumbo frame as _mesa_page_scry_jumbo_cb keeps it (u3_mesa_line): the frame's name, the message's
    auth and total size, the frame's data, its leaves' hash pairs and the message's proof hashes."""

    name: Name
    tob: int
    auth: tuple[int, bytes]
    data: bytes
    pairs: list[bytes]
    proof: bytes


def _at7(result: Noun) -> Noun | None:
    """u3r_at(7, res): the tail of the tail; None (u3_none) where there is none."""
    if isinstance(result, tuple) and isinstance(result[1], tuple):
        return result[1][1]
    return None


def frame_of(result: Noun) -> Frame:
    """The frame in a jumbo peek's result (_mesa_page_scry_jumbo_cb). Unanswered("empty") when the peek
    gave nothing at u3r_at(7) (vere marks the name blocked and sends nothing), "misshapen" where vere logs
    "jumbo frame misshapen" or "jumbo frame parse failure", or would overrun its buffers."""
    page = _at7(result)
    if page is None:
        raise Unanswered("empty")
    if not isinstance(page, tuple) or not isinstance(page[1], tuple):
        raise Unanswered("misshapen")  # u3r_trel fails
    pac, (pas, pof) = page
    if not isinstance(pac, int) or pac < PUG or not isinstance(pof, int):
        raise Unanswered("misshapen")  # u3a_is_pug; u3r_bytes of pof needs an atom
    try:
        jumbo = sift_pact(pac.to_bytes((pac.bit_length() + 7) // 8, "little"))
        pairs = to_list(pas)
    except (MesaSiftError, ValueError) as exc:
        raise Unanswered("misshapen") from exc
    if jumbo.typ != PAGE:  # vere reads the page's data from whatever packet it got
        raise Unanswered("misshapen")
    if len(pairs) > num_leaves(len(jumbo.data)) or not all(isinstance(p, int) for p in pairs):
        raise Unanswered("misshapen")  # vere copies every pair into room for one per leaf
    leaves = num_leaves(jumbo.tob)
    tip = lss.proof_size(leaves) * 32 if leaves > 1 and jumbo.name.fra == 0 else 0
    return Frame(jumbo.name, jumbo.tob, jumbo.auth, jumbo.data,
                 [(p & (1 << 512) - 1).to_bytes(64, "little") for p in pairs],  # type: ignore[operator]
                 (pof & (1 << 8 * tip) - 1).to_bytes(tip, "little"))  # fmt: skip


def answer(peek: Pact, result: Noun) -> bytes:
    """The page packet vere sends to `peek`'s sender, given the jumbo peek's `result`
    (_mesa_hear_peek with the frame cached -> _mesa_send_piece). Raises Unanswered."""
    frame = frame_of(result)
    fra = peek.name.fra
    name = replace(peek.name, fra=fra & ~((1 << JUMBO_BLOQ) - 1))  # _mesa_lop
    if name.fra == 0 and name.nit and lss.proof_size(num_leaves(frame.tob)) > 1:
        if not frame.proof:
            raise Unanswered("misshapen")  # a frame from fragment > 0 has no proof: vere reads garbage
        return etch_page(name, frame.tob, frame.auth, frame.proof)
    # else a leaf; an init peek of a single-leaf message gets its one leaf (a nit name's fra is 0)
    return etch_page(*_leaf(frame, name, fra))


def _leaf(frame: Frame, name: Name, fra: int) -> tuple[Name, int, tuple[int, bytes], bytes]:
    """_mesa_send_leaf: leaf i = fra - frame fra * 2^JUMBO_BLOQ of the frame, 1 KiB at most, with the
    message's auth for fragment 0, else the leaf's pair, or no auth when the pair is all zeros."""
    i = fra - frame.name.fra * (1 << JUMBO_BLOQ)
    if i < 0 or (i > 0 and i * 1024 >= len(frame.data)):
        raise Unanswered("no fragment")  # vere would read past the frame's data and its pairs
    data = frame.data[i * 1024 : i * 1024 + 1024]
    if fra == 0:
        auth = frame.auth
    elif i >= len(frame.pairs):
        raise Unanswered("misshapen")  # a pair slot `pas` did not fill: vere reads uninitialised memory
    elif frame.pairs[i] == lss.ZERO_PAIR:
        auth = (AUTH_NONE, b"")
    else:
        auth = (AUTH_PAIR, frame.pairs[i])
    return replace(name, fra=fra), frame.tob, auth, data


# ---------------------------------------------------------------- etching (mesa/pact.c)


def rank(ship: int) -> int:
    """pact.c, _mesa_rank of u3_ship_rank: galaxies and stars 0 (2 bytes), planets 1 (4), moons 2 (8),
    comets 3 (16)."""
    return 0 if ship < 1 << 16 else 1 if ship < 1 << 32 else 2 if ship < 1 << 64 else 3


def chub_tag(value: int) -> int:
    """pact.c, _mesa_make_chub_tag: 0, 1, 2 or 3 for a value of at most 1, 2, 4 or 8 bytes."""
    return 0 if value <= 0xFF else 1 if value <= 0xFFFF else 2 if value <= 0xFFFFFFFF else 3


def _met3(value: int) -> int:
    return (value.bit_length() + 7) // 8


def etch_name(name: Name) -> bytes:
    """pact.c, _mesa_etch_name: meta byte from the low bits (rank 2, rift length - 1 2, init 1, auth 1,
    fragment tag 2), the ship (2 << rank bytes), the rift, the bloq, the fragment unless init, then the
    path's length (u16) and the path. All little-endian."""
    ran, rif = rank(name.her), max(_met3(name.rif) - 1, 0)
    tau, gaf = (0, 0) if name.nit else (int(name.aut), chub_tag(name.fra))
    meta = ran | rif << 2 | int(name.nit) << 4 | tau << 5 | gaf << 6
    out = bytes([meta]) + name.her.to_bytes(2 << ran, "little") + name.rif.to_bytes(rif + 1, "little")
    out += bytes([name.boq]) + (b"" if name.nit else name.fra.to_bytes(1 << gaf, "little"))
    return out + len(name.path).to_bytes(2, "little") + name.path


def etch_data(tob: int, auth: tuple[int, bytes], fragment: bytes) -> bytes:
    """pact.c, _mesa_etch_data: meta byte (tob tag 2, aut 1: sign or hmac, auv 1: sign or none, 2 unused,
    length tag 2: min(bytes of the length, 3)), tob (1 << tag bytes), the auth bytes, the length's byte
    count when the tag is 3, the length, the fragment."""
    typ, value = auth
    if len(value) != AUTH_SIZE[typ]:
        raise ValueError(f"auth of type {typ} is {AUTH_SIZE[typ]} bytes, not {len(value)}")
    bot, nel = chub_tag(tob), _met3(len(fragment))
    aut, auv = int(typ in (AUTH_SIGN, AUTH_HMAC)), int(typ in (AUTH_SIGN, AUTH_NONE))
    meta = bot | aut << 2 | auv << 3 | min(nel, 3) << 6
    out = bytes([meta]) + tob.to_bytes(1 << bot, "little") + value
    return out + (bytes([nel]) if nel >= 3 else b"") + len(fragment).to_bytes(nel, "little") + fragment


def etch_head(typ: int, body: bytes, nex: int = HOP_NONE, hop: int = 0) -> bytes:
    """pact.c, _mesa_etch_head, from the low bits: 2 unused, next hop 2, protocol 3 (1), type 2, hop
    count 3, the body's mug 20 (_mesa_etch_pact: u3r_mug_bytes & 0xfffff); then MESA_COOKIE."""
    word = nex << 2 | 1 << 4 | typ << 7 | hop << 9 | (mug_bytes(body) & 0xFFFFF) << 12
    return word.to_bytes(4, "little") + MESA_COOKIE.to_bytes(4, "little")


def etch_page(name: Name, tob: int, auth: tuple[int, bytes], fragment: bytes,
              cap: int | None = PACT_SIZE) -> bytes:  # fmt: skip
    """A page packet as _mesa_send_piece fills it (no next hop, hop count 0) and mesa_etch_pact_to_buf
    etches it into `cap` bytes: Unanswered("too large") past them, where vere's etcher asserts."""
    body = etch_name(name) + etch_data(tob, auth, fragment)
    if cap is not None and 8 + len(body) > cap:
        raise Unanswered("too large")
    return etch_head(PAGE, body) + body

