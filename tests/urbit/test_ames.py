"""Datagram <-> Ames event/effect conversions, with vere's lane encoding."""

from __future__ import annotations

import pytest

from seguro.urbit import ames
from seguro.urbit.noun import cord, cue, equal, from_list, jam
from seguro.urbit.record import da_from_unix


def test_lane_encoding_matches_vere() -> None:
    # u3_ames_encode_lane: [%.n (port << 32) ^ ip], ip as a host-order u32
    assert ames.encode_lane("127.0.0.1", 4000) == (1, (4000 << 32) | 0x7F000001)
    assert ames.encode_lane("10.1.2.3", 65535) == (1, (65535 << 32) | 0x0A010203)
    assert ames.decode_lane((1, (31337 << 32) | 0xC0A80001)) == ("192.168.0.1", 31337)


def test_lane_address_zero_means_localhost_as_in_vere() -> None:
    assert ames.decode_lane((1, 9000 << 32)) == ("127.0.0.1", 9000)


@pytest.mark.parametrize(
    ("lane", "error", "message"),
    [
        ((0, 5), ames.GalaxyLaneError, "galaxy lane 5"),
        (7, ames.AmesError, "must be a cell"),
        ((2, 5), ames.AmesError, "tag must be"),
        ((1, 1 << 48), ames.AmesError, "below 2\\^48"),
        ((1, (1, 2)), ames.AmesError, "below 2\\^48"),
        ((1, 0x7F000001), ames.AmesError, "port 0"),
    ],
)
def test_decode_lane_rejects(lane: object, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        ames.decode_lane(lane)  # type: ignore[arg-type]


@pytest.mark.parametrize(("ip", "port"), [("::1", 80), ("localhost", 80), ("1.2.3.4", 0), ("1.2.3.4", 70000)])
def test_encode_lane_rejects(ip: str, port: int) -> None:
    with pytest.raises(ames.AmesError):
        ames.encode_lane(ip, port)


def test_datagram_to_ovum_shape() -> None:
    ovum = ames.datagram_to_ovum("127.0.0.1", 4000, b"\x01\x02hi")
    wire, (tag, (lane, packet)) = ovum
    assert wire == (cord("a"), (cord("ames"), 0))
    assert tag == cord("hear")
    assert lane == ames.encode_lane("127.0.0.1", 4000)
    assert packet == int.from_bytes(b"\x01\x02hi", "little")
    assert ames.hear_of_ovum(ovum) == (lane, packet)


def test_datagram_event_is_timestamped_with_da() -> None:
    event = ames.datagram_event(1_700_000_000.5, "127.0.0.1", 4000, b"x")
    assert event == (da_from_unix(1_700_000_000.5), ames.datagram_to_ovum("127.0.0.1", 4000, b"x"))
    assert jam(event) and equal(cue(jam(event)), event)  # a valid noun


@pytest.mark.parametrize(("payload", "message"), [(b"", "empty datagram"), (b"x" * 65_508, "exceeds")])
def test_bad_datagrams(payload: bytes, message: str) -> None:
    with pytest.raises(ames.AmesError, match=message):
        ames.datagram_to_ovum("127.0.0.1", 1, payload)


def test_packet_bytes_roundtrip_drops_only_trailing_nuls() -> None:
    assert ames.packet_bytes(ames.packet_atom(b"\x00a\x00b")) == b"\x00a\x00b"
    assert ames.packet_bytes(ames.packet_atom(b"ab\x00\x00")) == b"ab"  # as in vere


def test_effects_to_datagrams_keeps_ip_sends_only() -> None:
    lane = ames.encode_lane("127.0.0.1", 5000)
    effects = [
        ames.send_effect(lane, b"one"),
        ((cord("behn"), 0), (cord("doze"), 0)),
        ((cord("newt"), 0), (cord("send"), ((0, 1), 5))),  # galaxy lane: not routable here
        ((cord("newt"), 0), (cord("send"), (ames.encode_lane("10.0.0.2", 6000), cord("two")))),
    ]
    want = [(("127.0.0.1", 5000), b"one"), (("10.0.0.2", 6000), b"two")]
    assert ames.effects_to_datagrams(effects) == want
    assert ames.effects_to_datagrams(from_list(effects)) == want
    assert ames.effects_to_datagrams([]) == []


@pytest.mark.parametrize(
    "effect",
    [
        5,
        ((cord("newt"), 0), (cord("send"), 5)),
        ((cord("newt"), 0), (cord("send"), ((1, 1 << 50), 5))),
        ((cord("newt"), 0), (cord("send"), (ames.encode_lane("1.2.3.4", 5), (1, 2)))),
        ((cord("newt"), 0), (cord("send"), (ames.encode_lane("1.2.3.4", 5), 0))),
    ],
)
def test_malformed_send_effects_raise_alone_and_are_skipped_in_a_list(effect: object) -> None:
    with pytest.raises(ames.AmesError):
        ames.effect_to_datagram(effect)  # type: ignore[arg-type]
    good = ames.send_effect(ames.encode_lane("1.2.3.4", 5), b"ok")
    assert ames.effects_to_datagrams([effect, good]) == [(("1.2.3.4", 5), b"ok")]  # type: ignore[list-item]


def test_effects_must_be_a_list() -> None:
    with pytest.raises(ValueError, match="null-terminated"):
        ames.effects_to_datagrams((1, 2))


def test_hear_of_other_ovums() -> None:
    assert ames.hear_of_ovum(((cord("b"), 0), (cord("wake"), 0))) is None
    assert ames.hear_of_ovum((ames.AMES_WIRE, (cord("born"), 0))) is None
    with pytest.raises(ames.AmesError, match="packet"):
        ames.hear_of_ovum((ames.AMES_WIRE, (cord("hear"), 5)))
