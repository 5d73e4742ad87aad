"""Conversions between UDP datagrams and Ames events/effects, following vere 3.x (pkg/vere/io/ames.c).

Inbound: a datagram from ip:port becomes the ovum `[[%a %ames ~] [%hear lane packet]]` (vere's
`_ames_put_packet`: wire `/ames` planned on the `%a` vane), timestamped into the event `[@da ovum]`.

Outbound: Arvo emits `[wire [%send lane packet]]` effects (vere handles them in `_ames_kick_newt`, on the
`/newt/...` wire); each becomes one datagram.

Lane (vere's `u3_ames_encode_lane`): `[%.n p]` where p = (port << 32) | ipv4, the address as a host-order
u32 (127.0.0.1 = 0x7f000001), so p < 2^48. `[%.y galaxy]` lanes name a galaxy whose address vere resolves
through DNS; we cannot route those and skip them.

Packet: the datagram's bytes as a little-endian atom (vere's `u3i_bytes`/`u3r_bytes`). As in vere,
trailing NUL bytes of a datagram do not survive the atom; Ames packets never end in one.
"""

from __future__ import annotations

import ipaddress
import logging

from seguro.urbit.noun import Noun, cord, to_list
from seguro.urbit.record import da_from_unix, event_noun

log = logging.getLogger(__name__)

YES = 0  # %.y, loobean true
NO = 1  # %.n, loobean false
AMES_WIRE: Noun = (cord("a"), (cord("ames"), 0))
NEWT_WIRE: Noun = (cord("newt"), 0)
HEAR = cord("hear")
SEND = cord("send")
MAX_DATAGRAM_BYTES = 65_507  # the most a UDP/IPv4 datagram can carry


class AmesError(ValueError):
    """A lane, datagram, event or effect is malformed."""


class GalaxyLaneError(AmesError):
    """A `[%.y galaxy]` lane: routed through the galaxy's DNS name (`galaxy_address`)."""


GALAXY_NAMES = (  # the @p suffix syllables: galaxy g is ~GALAXY_NAMES[3g:3g+3]
    "zodnecbudwessevpersutletfulpensytdurwepserwylsunrypsyxdyrnuphebpeglupdepdysputlughecryttyvsydnex"
    "lunmeplutseppesdelsulpedtemledtulmetwenbynhexfebpyldulhetmevruttylwydtepbesdexsefwycburderneppur"
    "rysrebdennutsubpetrulsynregtydsupsemwynrecmegnetsecmulnymtevwebsummutnyxrextebfushepbenmuswyxsym"
    "selrucdecwexsyrwetdylmynmesdetbetbeltuxtugmyrpelsyptermebsetdutdegtexsurfeltudnuxruxrenwytnubmed"
    "lytdusnebrumtynseglyxpunresredfunrevrefmectedrusbexlebduxrynnumpyxrygryxfeptyrtustyclegnemfermer"
    "tenlusnussyltecmexpubrymtucfyllepdebbermughuttunbylsudpemdevlurdefbusbeprunmelpexdytbyttyplevmyl"
    "wedducfurfexnulluclennerlexrupnedlecrydlydfenwelnydhusrelrudneshesfetdesretdunlernyrsebhulryllud"
    "remlysfynwerrycsugnysnyllyndyndemluxfedsedbecmunlyrtesmudnytbyrsenwegfyrmurtelreptegpecnelnevfes"
)
GALAXY_PORT, GALAXY_PORT_LOCAL = 13337, 31337  # vere's _ames_czar_port: + the galaxy's number


def galaxy_name(galaxy: int) -> str:
    """The galaxy's name without the sig, e.g. 0 -> 'zod'."""
    if not 0 <= galaxy < 256:
        raise AmesError(f"a galaxy is 0..255, got {galaxy}")
    return GALAXY_NAMES[3 * galaxy : 3 * galaxy + 3]


def galaxy_address(galaxy: int, domain: str, local: bool = False) -> tuple[str, int]:
    """Where vere sends to a galaxy: `<name>.<domain>` at 13337 + galaxy, or with local networking (vere's
    -L) 127.0.0.1 at 31337 + galaxy (pkg/vere/io/ames.c, _ames_czar_port and _ames_etch_czar)."""
    name = galaxy_name(galaxy)
    if local:
        return "127.0.0.1", GALAXY_PORT_LOCAL + galaxy
    return f"{name}.{domain}", GALAXY_PORT + galaxy


def effect_to_galaxy_send(effect: Noun) -> tuple[int, bytes] | None:
    """(galaxy, payload) for a %send effect to a `[%.y galaxy]` lane; None for any other effect."""
    if not isinstance(effect, tuple) or not isinstance(effect[1], tuple) or effect[1][0] != SEND:
        return None
    body = effect[1][1]
    if not isinstance(body, tuple) or not isinstance(body[0], tuple) or body[0][0] != YES:
        return None
    galaxy = body[0][1]
    if not isinstance(galaxy, int) or not 0 <= galaxy < 256:
        raise AmesError(f"galaxy lane {galaxy!r} is not a galaxy (0..255)")
    return galaxy, packet_bytes(body[1])


def encode_lane(ip: str, port: int) -> Noun:
    """`[%.n (port << 32) | ipv4]` for an IPv4 address and UDP port."""
    try:
        address = ipaddress.IPv4Address(ip)
    except ValueError as exc:
        raise AmesError(f"lane address must be IPv4, got {ip!r}") from exc
    if not isinstance(port, int) or not 0 < port < 65536:
        raise AmesError(f"lane port must be in 1..65535, got {port!r}")
    return (NO, (port << 32) | int(address))


def decode_lane(lane: Noun) -> tuple[str, int]:
    """(ip, port) of an IP lane. Like vere's `_ames_send_lane`, address 0 means localhost."""
    if not isinstance(lane, tuple):
        raise AmesError(f"lane must be a cell, got atom {lane!r}")
    tag, value = lane
    if tag == YES:
        raise GalaxyLaneError(f"galaxy lane {value!r} cannot be routed without DNS")
    if tag != NO:
        raise AmesError(f"lane tag must be %.y (0) or %.n (1), got {tag!r}")
    if not isinstance(value, int) or value >> 48:
        raise AmesError(f"ip lane must be an atom below 2^48, got {value!r}")
    ip_u32 = value & 0xFFFFFFFF
    port = value >> 32
    if port == 0:
        raise AmesError(f"ip lane has port 0: {value:#x}")
    return str(ipaddress.IPv4Address(ip_u32 or 0x7F000001)), port


def packet_atom(payload: bytes) -> int:
    """A datagram's bytes as a little-endian atom."""
    if not payload:
        raise AmesError("empty datagram")
    if len(payload) > MAX_DATAGRAM_BYTES:
        raise AmesError(f"datagram of {len(payload)} bytes exceeds {MAX_DATAGRAM_BYTES}")
    return int.from_bytes(payload, "little")


def packet_bytes(packet: Noun) -> bytes:
    """The datagram bytes of a packet atom (minimal length: trailing NULs are not representable)."""
    if not isinstance(packet, int):
        raise AmesError("packet must be an atom, got a cell")
    if packet == 0:
        raise AmesError("empty packet")
    data = packet.to_bytes((packet.bit_length() + 7) // 8, "little")
    if len(data) > MAX_DATAGRAM_BYTES:
        raise AmesError(f"packet of {len(data)} bytes exceeds {MAX_DATAGRAM_BYTES}")
    return data


def datagram_to_ovum(ip: str, port: int, payload: bytes) -> Noun:
    """`[[%a %ames ~] [%hear lane packet]]` for a datagram received from ip:port."""
    return (AMES_WIRE, (HEAR, (encode_lane(ip, port), packet_atom(payload))))


def datagram_event(wall_s: float, ip: str, port: int, payload: bytes) -> Noun:
    """The event `[@da ovum]` for a datagram received at Unix time `wall_s`."""
    wire, card = datagram_to_ovum(ip, port, payload)
    return event_noun(da_from_unix(wall_s), wire, card)


def born_event(wall_s: float) -> Noun:
    """`[//ames %born ~]` (on the %a vane), which vere 4.x's ames driver sends on every start (io/mesa.c,
    `_mesa_io_talk`); vere 3.5's has it commented out."""
    return event_noun(da_from_unix(wall_s), AMES_WIRE, (cord("born"), 0))


def hear_of_ovum(ovum: Noun) -> tuple[Noun, int] | None:
    """(lane, packet) if `ovum` is an ames %hear, else None. Raises on a malformed %hear."""
    if not isinstance(ovum, tuple) or ovum[0] != AMES_WIRE:
        return None
    card = ovum[1]
    if not isinstance(card, tuple) or card[0] != HEAR:
        return None
    body = card[1]
    if not isinstance(body, tuple) or not isinstance(body[1], int):
        raise AmesError("%hear must be [%hear lane packet] with an atom packet")
    lane, packet = body
    decode_lane(lane)
    return lane, packet


def send_effect(lane: Noun, payload: bytes) -> Noun:
    """`[/newt [%send lane packet]]`, the effect Ames emits to send one datagram."""
    return (NEWT_WIRE, (SEND, (lane, packet_atom(payload))))


def effect_to_datagram(effect: Noun) -> tuple[tuple[str, int], bytes] | None:
    """((ip, port), payload) for a %send effect; None for any other effect or a galaxy lane."""
    if not isinstance(effect, tuple):
        raise AmesError(f"effect must be a [wire card] cell, got atom {effect!r}")
    card = effect[1]
    if not isinstance(card, tuple) or card[0] != SEND:
        return None
    body = card[1]
    if not isinstance(body, tuple):
        raise AmesError("%send must be [%send lane packet]")
    lane, packet = body
    try:
        address = decode_lane(lane)
    except GalaxyLaneError as exc:
        log.debug("skipping %%send to a galaxy lane", extra={"reason": str(exc)})
        return None
    return address, packet_bytes(packet)


def effects_to_datagrams(effects: Noun | list[Noun]) -> list[tuple[tuple[str, int], bytes]]:
    """Every datagram the %send effects in `effects` ask for (a Python list or a noun list). The event is
    already done when its effects are read: a malformed effect is skipped and logged, never fatal."""
    items = effects if isinstance(effects, list) else to_list(effects)
    datagrams: list[tuple[tuple[str, int], bytes]] = []
    for effect in items:
        try:
            datagram = effect_to_datagram(effect)
        except AmesError as exc:
            log.warning("skipping a malformed effect", extra={"reason": str(exc)[:200]})
            continue
        if datagram is not None:
            datagrams.append(datagram)
    return datagrams
