"""vere's inbound filtering (STUN, header, mug, recipient, remote scry) and mesa's lanes and %push, with
packets built byte by byte from the layouts in vere's pkg/vere/io/ames.c, ames/stun.c and mesa/pact.c."""

from __future__ import annotations

import zlib

import pytest

from seguro.node.effects import GalaxySend, Unserved, effects_of
from seguro.urbit import ames, fine, mesa
from seguro.urbit.ames_filter import classify, is_stun_request, is_stun_response, stun_response
from seguro.urbit.mesa import mug_bytes
from seguro.urbit.noun import cord, from_list

OUR, THEM = 0x0100, 0x0200  # two stars: 2-byte ships, class 0


def mug20(data: bytes) -> int:
    return mug_bytes(data) & 0xFFFFF


def ames_packet(sen: int, rec: int, body: bytes, *, sim: int = 0, req: int = 0, ver: int = 0,
                bad_mug: bool = False) -> bytes:  # fmt: skip
    """_ames_etch_head + _ames_etch_prel: a LE header word (bit 2 req, 3 sim, 4-6 version, 7-8 and 9-10
    the ship classes, 11-30 the mug, 31 relayed; loobean bits, 0 = yes), life byte, sender, receiver."""
    rest = bytes([0x21]) + sen.to_bytes(2, "little") + rec.to_bytes(2, "little") + body
    mug = mug20(rest) ^ (1 if bad_mug else 0)
    word = (req << 2) | (sim << 3) | (ver << 4) | (0 << 7) | (0 << 9) | (mug << 11) | (1 << 31)
    return word.to_bytes(4, "little") + rest


def wail_body(fra: int, path: bytes) -> bytes:
    """_fine_sift_wail: tag 0, fragment u32 LE, path length u16 LE, path."""
    return b"\x00" + fra.to_bytes(4, "little") + len(path).to_bytes(2, "little") + path


def stun_request(tid: bytes) -> bytes:
    """u3_stun_make_request: type 0x0001, length 8, magic cookie, transaction id, FINGERPRINT."""
    head = b"\x00\x01\x00\x08" + bytes.fromhex("2112a442") + tid
    return head + b"\x80\x28\x00\x04" + (zlib.crc32(head) ^ 0x5354554E).to_bytes(4, "big")


def mesa_packet(typ: int, body: bytes, *, mug_delta: int = 0) -> bytes:
    """mesa/pact.c _mesa_etch_head: bits from the low end: 2 unused, 2 next-hop, 3 protocol (1), 2 type,
    3 hops, 20 mug of the body; then MESA_COOKIE as a LE word; then the body."""
    word = (0 << 2) | (1 << 4) | (typ << 7) | (0 << 9) | ((mug20(body) ^ mug_delta) << 12)
    return word.to_bytes(4, "little") + (0x67E00200).to_bytes(4, "little") + body


def mesa_name(her: int, path: bytes, fra: int = 0) -> bytes:
    """_mesa_etch_name: meta byte (rank 0: 2-byte ship; rift 1 byte; not init; no auth; 1-byte fragment),
    ship, rift, bloq, fragment, path length u16 LE, path."""
    ship = her.to_bytes(2, "little")
    return bytes([0]) + ship + bytes([13, 3, fra]) + len(path).to_bytes(2, "little") + path


def mesa_data(tob: int, fragment: bytes) -> bytes:
    """_mesa_etch_data: meta (tob 2 bytes: bot 1; no auth: aut 0, auv 1; fragment length 1 byte: men 1),
    tob, fragment length, fragment."""
    meta = 1 | (0 << 2) | (1 << 3) | (1 << 6)
    return bytes([meta]) + tob.to_bytes(2, "little") + bytes([len(fragment)]) + fragment


def test_mug_bytes_is_veres_mug() -> None:
    assert mug_bytes(b"") == 0x79FF04E8  # (mug 0)


def test_a_well_formed_packet_to_us_is_heard() -> None:
    packet = ames_packet(THEM, OUR, b"hello ames")
    verdict = classify(packet, OUR)
    assert (verdict.action, verdict.form) == ("hear", "hear")
    assert verdict.ovum("10.0.0.1", 4000, packet) == ames.datagram_to_ovum("10.0.0.1", 4000, packet)


@pytest.mark.parametrize(
    ("packet", "reason"),
    [
        (b"\x00\x01", "bad header"),
        (ames_packet(THEM, OUR, b"x", ver=1), "version"),
        (ames_packet(THEM, OUR, b"hello", bad_mug=True), "bad mug"),
        (ames_packet(THEM, THEM, b"hello"), "not for us"),
        (b"hello, plain text", "version"),  # what the reference ship sends: why the filter is off by default
        (ames_packet(THEM, OUR, wail_body(1, b"/a") + b"!", sim=1), "bad wail"),
        (ames_packet(THEM, OUR, wail_body(1, b"a/b"), sim=1), "bad wail path"),
    ],
)
def test_vere_drops(packet: bytes, reason: str) -> None:
    verdict = classify(packet, OUR)
    assert (verdict.action, verdict.reason) == ("drop", reason)


def test_a_stun_request_is_answered_not_heard() -> None:
    request = stun_request(bytes(range(12)))
    verdict = classify(request, OUR)
    assert (verdict.action, verdict.reason, verdict.request) == ("stun", "stun", request)
    assert classify(stun_response(request, "1.2.3.4", 5), OUR, stun_tid=bytes(range(12))).action == "drop"


def test_a_short_prelude_is_dropped() -> None:
    rest = bytes([0x21, 1])  # a life byte and half a sender
    word = (mug20(rest) << 11) | (1 << 31)
    assert classify(word.to_bytes(4, "little") + rest, OUR).reason == "bad prelude"


def test_version_filter_can_be_off() -> None:
    assert classify(ames_packet(THEM, OUR, b"x", ver=1), OUR, version=None).action == "hear"


def test_stun_request_and_response_as_vere_makes_them() -> None:
    tid = bytes(range(12))
    request = stun_request(tid)
    assert is_stun_request(request) and not is_stun_request(request[:-1] + b"\0")
    response = stun_response(request, "1.2.3.4", 5678)
    assert len(response) == 40 and is_stun_response(response, tid)
    assert not is_stun_response(response, bytes(12))
    assert response[26:28] == (5678 ^ 0x2112).to_bytes(2, "big")  # X-Port
    assert response[28:32] == (0x01020304 ^ 0x2112A442).to_bytes(4, "big")  # X-Address
    assert classify(response, OUR, stun_tid=tid).reason == "stun"


def test_a_scry_request_yields_the_peek_vere_makes() -> None:
    packet = ames_packet(THEM, OUR, wail_body(5000, b"/c/x/1/kids"), sim=1)
    verdict = classify(packet, OUR)
    assert verdict.action == "scry"
    path = from_list([cord(s) for s in ("fine", "hunk", "4.097", "4.096", "c", "x", "1", "kids")])
    assert verdict.sam == (0, (1, (cord("once"), (cord("ax"), (0, path)))))  # [~ %.n %once %ax %$ path]
    wail = verdict.request
    assert isinstance(wail, fine.Wail) and (wail.fra, wail.prel.sen) == (5000, THEM)


def meow(number: int, data: bytes) -> int:
    """A fragment as Arvo returns it (_fine_sift_meow): 64-byte signature, fragment count u32, data."""
    return int.from_bytes(b"\xab" * 64 + number.to_bytes(4, "little") + data, "little")


def test_the_answer_to_a_scry_request_is_a_purr_the_requester_hears() -> None:
    path = b"/c/x/1/kids"
    wail = classify(ames_packet(THEM, OUR, wail_body(2, path), sim=1), OUR).request
    assert isinstance(wail, fine.Wail)
    result = (0, (cord("noun"), from_list([meow(2, b"one"), meow(2, b"two")])))  # [~ mark page]
    purr = fine.answer(wail, result)
    assert purr is not None
    word = int.from_bytes(purr[:4], "little")
    assert (word >> 2) & 3 == 3 and word >> 31 == 1  # not a request, not ames, not relayed
    assert (word >> 11) & 0xFFFFF == mug20(purr[4:])
    assert purr[4:9] == bytes([0x12]) + OUR.to_bytes(2, "little") + THEM.to_bytes(2, "little")  # swapped
    peep = (2).to_bytes(4, "little") + len(path).to_bytes(2, "little") + path
    assert purr[9:] == peep + b"\xab" * 64 + (2).to_bytes(4, "little") + b"two"  # fragment 2 of the page
    verdict = classify(purr, THEM)
    assert (verdict.action, verdict.form) == ("hear", "fine")
    assert verdict.ovum("1.2.3.4", 5, purr)[0] == (cord("ames"), (cord("fine"), 0))
    assert fine.answer(wail, 0) is None and fine.answer_lane(wail) is None  # a star: vere looks it up


def test_mesa_packets() -> None:
    peek = mesa_packet(mesa.PEEK, mesa_name(OUR, b"ax/stuff"))
    verdict = classify(peek, OUR)
    assert verdict.action == "scry"
    sky = [cord(s) for s in ("mess", "13", "pact", "31", "etch", "data", "0", "ax", "stuff")]
    bem = ((OUR, (0, (cord("ud"), 1))), from_list(sky))  # [[our %$ [%ud 1]] sky]
    assert verdict.sam == (0, (1, (cord("beam"), (cord("ax"), bem))))
    assert classify(mesa_packet(mesa.PEEK, mesa_name(THEM, b"x")), OUR).reason == "not for us"
    poke = mesa_packet(mesa.POKE, mesa_name(OUR, b"ack") + mesa_name(THEM, b"msg") + mesa_data(3, b"abc"))
    heard = classify(poke, OUR)
    assert (heard.action, heard.form) == ("hear", "heer")
    lane = (cord("if"), (0x0A000001, 4000))
    assert heard.ovum("10.0.0.1", 4000, poke) == (
        (cord("ames"), (cord("ames"), 0)), (cord("heer"), (lane, int.from_bytes(poke, "little"))))
    page = mesa_packet(mesa.PAGE, mesa_name(THEM, b"ack") + mesa_data(3, b"abc"))
    assert classify(page, OUR).form == "heer"
    big = mesa_packet(mesa.PAGE, mesa_name(THEM, b"ack") + mesa_data(2000, b"abc"))
    assert classify(big, OUR).reason == "mesa fragment"
    assert classify(mesa_packet(mesa.PEEK, mesa_name(OUR, b"x"), mug_delta=1), OUR).reason == "bad mug"
    assert classify(peek + b"\0", OUR).reason == "bad mesa packet"  # trailing bytes
    assert classify(peek[:12], OUR).reason == "bad mesa packet"
    assert classify(peek + bytes(1500), OUR).reason == "too large"


def test_mesa_path_encoding_as_vere_splits_it() -> None:
    assert mesa.encode_path(b"a/bc") == from_list([cord("a"), cord("bc")])
    assert mesa.encode_path(b"/a") == from_list([0, cord("a")])
    assert mesa.encode_path(b"a/") == from_list([cord("a/")])
    assert mesa.encode_path(b"") == 0


def push(lanes: list, payload: bytes = b"pact") -> object:
    return mesa.push_effect(lanes, payload)


def test_a_push_to_three_lanes_is_three_datagrams() -> None:
    lanes = [mesa.encode_if_lane("127.0.0.1", p) for p in (4001, 4002, 4003)]
    assert effects_of([push(lanes)]) == tuple((("127.0.0.1", p), b"pact") for p in (4001, 4002, 4003))


def test_if_lanes_route_and_galaxies_and_bad_lanes_are_told_apart() -> None:
    assert mesa.realise_lane((cord("if"), (0xC0A80001, 31337))) == ("192.168.0.1", 31337)
    lanes = [(cord("if"), (0x0A000002, 6000)), 1, (cord("if"), (0, 6000)), (1, 0x7F000001 | 9 << 32), 300]
    found = effects_of([push(lanes)])
    assert found == (
        (("10.0.0.2", 6000), b"pact"),
        GalaxySend(1, b"pact"),
        *[Unserved("push to unroutable lane")] * 3,  # 0.0.0.0, an old %.n lane, galaxy 300
    )


def test_a_push_vere_would_not_take_is_unserved() -> None:
    off_wire = ((cord("newt"), 0), push([1])[1])  # _mesa_io_kick takes %push on /ames only
    assert effects_of([off_wire]) == (Unserved("push"),)
    assert effects_of([(mesa.MESA_WIRE, (mesa.PUSH, 5))]) == (Unserved("malformed push"),)
