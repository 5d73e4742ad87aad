"""Mesa (directed messaging) lanes, effects, events and packet parsing, as vere 3.5 and 4.5 speak them
(pkg/vere/io/mesa.c and pkg/vere/io/mesa/pact.c; both versions carry mesa next to the old ames driver).

Lanes: mesa's lane is `[%if ip port]` (mesa.c, u3_mesa_encode_lane: ip a host-order u32, port an atom).
A `%push` effect may also name a galaxy by its bare number (mesa.c, _realise_lane: a direct atom is a
galaxy, sent to its DNS address at _ames_czar_port). The old `[%.n p]`/`[%.y g]` lanes of `%send` are in
ames.py; _realise_lane would crash on one (u3x_trel), so here they are refused.

Outbound: `[/ames [%push lanes packet]]` (mesa.c, _mesa_io_kick: the wire's head must be %ames; _mesa_kick
%push; _mesa_ef_send) sends one packet to every lane. vere also re-sends a request 9 times at 1 s until
answered, and sends a %push of a page packet to the lanes that asked for it (its pending-interest table)
rather than the effect's lanes; we keep no such state, so a push is one datagram per lane.

Inbound: a mesa packet (one whose second word is MESA_COOKIE) that vere hands to Arvo becomes
`[[%ames %ames ~] [%heer [%if ip port] packet]]` (mesa.c, _mesa_hear_poke / _mesa_hear_page; the ovum's
wire is [tar wir], pkg/vere/auto.c).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from seguro.urbit.ames import AmesError, packet_atom, packet_bytes
from seguro.urbit.noun import Noun, _mug_fold, cord, from_list, to_list

IF = cord("if")
PUSH = cord("push")
HEER = cord("heer")
MESA_WIRE: Noun = (cord("ames"), 0)  # both the effect's wire (/ames) and the event's wir
HEER_WIRE: Noun = (cord("ames"), MESA_WIRE)  # [tar wir] = /ames/ames (_mesa_hear_poke: tar %ames)
MESA_COOKIE = 0x67E00200  # mesa/mesa.h
PACT_SIZE = 1472  # mesa/mesa.h; v4.5's _mesa_hear drops anything larger
PAGE, PEEK, POKE = 1, 2, 3  # mesa/mesa.h, u3_mesa_ptag (0 is PACT_RESV)
HOP_NONE, HOP_SHORT = 0, 1  # mesa/mesa.h, u3_mesa_hop_type
AUTH_SIGN, AUTH_NONE, AUTH_HMAC, AUTH_PAIR = 0, 1, 2, 3  # mesa/mesa.h, u3_mesa_auth_type
AUTH_SIZE = {AUTH_SIGN: 64, AUTH_NONE: 0, AUTH_HMAC: 16, AUTH_PAIR: 64}  # signature, -, hmac, two hashes


class MesaSiftError(AmesError):
    """A mesa packet that vere's mesa_sift_pact_from_buf refuses; the message is vere's."""


# ---------------------------------------------------------------- lanes, effects, events


def encode_if_lane(ip: str, port: int) -> Noun:
    """`[%if ip port]` for an IPv4 address and port (mesa.c, u3_mesa_encode_lane)."""
    try:
        address = int(ipaddress.IPv4Address(ip))
    except ValueError as exc:
        raise AmesError(f"lane address must be IPv4, got {ip!r}") from exc
    if not isinstance(port, int) or not 0 < port < 65536:
        raise AmesError(f"lane port must be in 1..65535, got {port!r}")
    return (IF, (address, port))


def realise_lane(lane: Noun) -> tuple[str, int] | int:
    """(ip, port) of a `[%if ip port]` lane, or the galaxy number of an atom lane (mesa.c, _realise_lane).
    vere takes the ip's low word (u3r_word) and asserts the port fits 16 bits; with networking on it
    never sends to 0.0.0.0 or 255.255.255.255 (_mesa_send_buf) and skips port 0 (_mesa_send_bufs)."""
    if isinstance(lane, int):
        if not 0 <= lane < 256:  # vere indexes its 256 galaxy addresses with it
            raise AmesError(f"galaxy lane {lane} is not a galaxy (0..255)")
        return lane
    tag, rest = lane
    if tag != IF or not isinstance(rest, tuple):
        raise AmesError("inscrutable lane: neither a galaxy nor [%if ip port]")
    ip, port = rest
    if not isinstance(ip, int) or not isinstance(port, int) or port > 0xFFFF:
        raise AmesError(f"[%if ip port] needs atoms and a 16-bit port, got {rest!r}")
    ip &= 0xFFFFFFFF
    if port == 0 or ip in (0, 0xFFFFFFFF):
        raise AmesError(f"unroutable lane {ipaddress.IPv4Address(ip)}:{port}")
    return str(ipaddress.IPv4Address(ip)), port


def push_effect(lanes: list[Noun], payload: bytes) -> Noun:
    """`[/ames [%push lanes packet]]`, the effect mesa emits to send one packet to several lanes."""
    return (MESA_WIRE, (PUSH, (from_list(lanes), packet_atom(payload))))


def effect_to_push(effect: Noun) -> tuple[list[Noun], bytes] | None:
    """(lanes, payload) of a %push effect on an /ames wire (_mesa_io_kick); None for any other effect."""
    if not isinstance(effect, tuple) or not isinstance(effect[1], tuple) or effect[1][0] != PUSH:
        return None
    wire, (_, body) = effect
    if not isinstance(wire, tuple) or wire[0] != cord("ames"):
        return None  # vere's mesa driver takes %push only on an /ames wire
    if not isinstance(body, tuple):
        raise AmesError("%push must be [%push lanes packet]")
    lanes, packet = body
    try:
        return to_list(lanes), packet_bytes(packet)
    except ValueError as exc:
        raise AmesError(f"malformed %push: {exc}") from exc


def heer_ovum(ip: str, port: int, payload: bytes) -> Noun:
    """`[[%ames %ames ~] [%heer [%if ip port] packet]]` for a mesa packet vere hands to Arvo."""
    return (HEER_WIRE, (HEER, (encode_if_lane(ip, port), packet_atom(payload))))


# ---------------------------------------------------------------- packets (mesa/pact.c)


@dataclass(frozen=True)
class Name:
    """u3_mesa_name: whose namespace (`her`), which rift, which fragment of which path."""

    her: int
    rif: int
    boq: int
    nit: bool
    aut: bool
    fra: int
    path: bytes


@dataclass(frozen=True)
class Pact:
    """A sifted mesa packet: its head, its name (and a poke's payload name) and, for a page or a poke,
    its data (u3_mesa_data): the message's total size, the auth (type and bytes) and the fragment."""

    typ: int
    hop: int
    nex: int
    name: Name
    payload: Name | None = None
    tob: int = 0  # total bytes of the message a page or poke carries a fragment of
    auth: tuple[int, bytes] = (AUTH_NONE, b"")
    data: bytes = b""


class _Sifter:
    """pact.c's u3_sifter: a cursor that fails with vere's message, first failure wins."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:  # _sift_next
        if n > len(self.data) - self.pos:
            raise MesaSiftError("unexpected eof")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def bits(self) -> int:  # one byte of bit fields (_sift_bits fails first when nothing is left)
        if self.pos >= len(self.data):
            raise MesaSiftError("unexpected end of packet")
        return self.take(1)[0]

    def byte(self) -> int:  # _sift_byte
        return self.take(1)[0]

    def var(self, n: int) -> int:  # _sift_var_word / _sift_var_chub / _sift_short: little-endian
        return int.from_bytes(self.take(n), "little")


def mug_bytes(data: bytes) -> int:
    """vere's u3r_mug_bytes (pkg/noun/retrieve.c): 31-bit murmur3, seed 0xcafebabe, over raw bytes."""
    return _mug_fold(data, 0xCAFEBABE, 0x7FFF)


def is_new_pact(data: bytes) -> bool:
    """A mesa packet rather than an old ames one (pact.c, mesa_is_new_pact): its second LE word."""
    return len(data) >= 8 and int.from_bytes(data[4:8], "little") == MESA_COOKIE


def sift_pact(data: bytes) -> Pact:
    """Parse a mesa packet as pact.c's mesa_sift_pact_from_buf does; MesaSiftError carries its message."""
    if len(data) < 8:
        raise MesaSiftError("unexpected end of packet")
    head = int.from_bytes(data[:4], "little")
    nex, pro, typ = (head >> 2) & 3, (head >> 4) & 7, (head >> 7) & 3  # mesa_sift_head: LSB first
    hop, mug = (head >> 9) & 7, (head >> 12) & 0xFFFFF
    if pro != 1:
        raise MesaSiftError("bad protocol")
    if int.from_bytes(data[4:8], "little") != MESA_COOKIE:
        raise MesaSiftError("bad cookie")
    sif = _Sifter(data[8:])
    name, payload, (tob, auth, fragment) = _sift_body(sif, typ, nex)
    if mug_bytes(data[8 : 8 + sif.pos]) & 0xFFFFF != mug:  # _mesa_sift_pact, before trailing bytes
        raise MesaSiftError("bad mug")
    if sif.pos != len(sif.data):
        raise MesaSiftError("trailing bytes")
    return Pact(typ, hop, nex, name, payload, tob, auth, fragment)


_Data = tuple[int, tuple[int, bytes], bytes]


def _sift_body(sif: _Sifter, typ: int, nex: int) -> tuple[Name, Name | None, _Data]:
    """_mesa_sift_peek_pact / _page_pact / _poke_pact. Type 0 (PACT_RESV) has no body in vere, whose
    _mesa_hear then treats it as a poke of uninitialised fields; we refuse it."""
    if typ == PEEK:
        return _sift_name(sif), None, (0, (AUTH_NONE, b""), b"")
    if typ == POKE:
        name, payload = _sift_name(sif), _sift_name(sif)
        return name, payload, _sift_data(sif)
    if typ == PAGE:
        name, data = _sift_name(sif), _sift_data(sif)
        if nex == HOP_SHORT:
            sif.take(6)
        elif nex != HOP_NONE:
            raise MesaSiftError(f"mesa: sift invalid hop {'long' if nex == 2 else 'many'}")
        return name, None, data
    raise MesaSiftError("reserved packet type")


def _sift_name(sif: _Sifter) -> Name:
    """_mesa_sift_name: meta byte (rank 2, rift-len 2, init 1, auth 1, fragment-len 2 bits), ship of
    2 << rank bytes, rift, bloq byte, fragment (absent when init), path length (u16) and path."""
    meta = sif.bits()
    ran, rif_len, nit, tau, gaf = meta & 3, (meta >> 2) & 3, (meta >> 4) & 1, (meta >> 5) & 1, meta >> 6
    her = sif.var(2 << ran)
    rif = sif.var(rif_len + 1)
    boq = sif.byte()
    if nit and (tau or gaf):
        raise MesaSiftError("init name with auth or fragment bits")  # vere asserts (crashes)
    fra = 0 if nit else sif.var(1 << gaf)
    path = sif.take(sif.var(2))
    return Name(her, rif, boq, bool(nit), bool(tau), fra, path)


def _sift_data(sif: _Sifter) -> _Data:
    """_mesa_sift_data: (tob, (auth type, auth bytes), fragment). Meta: tob-len 2, auth 1, auth-value 1,
    unused 2, fragment-len 2 bits; auth is a 64-byte signature, a 16-byte hmac, nothing, or two hashes."""
    meta = sif.bits()
    bot, aut, auv, men = meta & 3, (meta >> 2) & 1, (meta >> 3) & 1, meta >> 6
    tob = sif.var(1 << bot)
    typ = {(1, 1): AUTH_SIGN, (1, 0): AUTH_HMAC, (0, 1): AUTH_NONE, (0, 0): AUTH_PAIR}[(aut, auv)]
    auth = sif.take(AUTH_SIZE[typ])
    nel = sif.byte() if men == 3 else men
    if nel > 4:
        raise MesaSiftError("var_word too long")
    return tob, (typ, auth), sif.take(sif.var(nel))


def num_leaves(tob: int) -> int:
    """How many 1 KiB leaves a message of `tob` bytes has (pact.c, mesa_num_leaves)."""
    return (tob + 1023) // 1024


def encode_path(path: bytes) -> Noun:
    """mesa.c's _mesa_encode_path: split on '/', except that the last byte always ends the last segment
    (so "a/b" is /a/b, "/a" is /''/a, and "a/" is the one segment 'a/')."""
    if not path:
        return 0
    parts = path[:-1].split(b"/")
    parts[-1] += path[-1:]
    return from_list(int.from_bytes(part, "little") for part in parts)
