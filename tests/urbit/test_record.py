"""Event record tests: vere's EVENTS value layout, corrupt records, event nouns and @da conversion."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seguro.urbit.noun import atom_from_bytes, cord, equal, from_list, jam, mug, term
from seguro.urbit.record import (
    DA_UNIX_EPOCH,
    Record,
    RecordError,
    da_from_unix,
    da_from_unix_us,
    decode_record,
    encode_record,
    event_noun,
    path_noun,
    path_segments,
    split_event,
    unix_from_da,
    unix_us_from_da,
)

# An ames packet event: [now [/a/ames/~ [%hear lane packet]]]
NOW = da_from_unix_us(1_700_000_000, 250_000)
WIRE = path_noun("a", "ames")
CARD = (term("hear"), ((0x7F000001, 31337), atom_from_bytes(bytes(range(1, 200)))))
EVENT = event_noun(NOW, WIRE, CARD)


def test_layout_is_mug_then_jam() -> None:
    data = encode_record(0x1234ABCD, EVENT)
    assert data[:4] == bytes([0xCD, 0xAB, 0x34, 0x12])
    assert data[4:] == jam(EVENT)
    record = decode_record(data)
    assert record.mug == 0x1234ABCD and record.jam == jam(EVENT)
    assert equal(record.event, EVENT)
    assert not record.is_boot


def test_known_bytes() -> None:
    # mug 0 (boot), event [1 2 3]: the jam is vere's vector 71 48 34
    assert encode_record(0, (1, (2, 3))) == bytes([0, 0, 0, 0, 0x71, 0x48, 0x34])
    assert decode_record(bytes([0, 0, 0, 0, 0x71, 0x48, 0x34])).is_boot


def test_boot_formula_is_stored_raw_with_mug_zero() -> None:
    formula = (2, ((0, 3), (0, 2)))  # a raw Nock formula, no timestamp
    record = decode_record(encode_record(0, formula))
    assert record.mug == 0 and equal(record.event, formula)
    with pytest.raises(RecordError, match="head is a cell"):
        split_event(((1, 2), (3, 4)))


def test_record_equality_by_bytes() -> None:
    a = decode_record(encode_record(7, EVENT))
    b = decode_record(encode_record(7, event_noun(NOW, path_noun("a", "ames"), CARD)))
    assert a == b and hash(a) == hash(b)
    assert a != decode_record(encode_record(8, EVENT))
    assert isinstance(a, Record)


def test_deep_event_record() -> None:
    card = (term("blit"), from_list(range(100_000)))
    data = encode_record(mug(card), event_noun(NOW, WIRE, card))
    record = decode_record(data)
    da, wire, got = split_event(record.event)
    assert da == NOW and equal(wire, WIRE) and equal(got, card)
    assert record.mug == mug(card)


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"", "too short: only 0 bytes"),
        (b"\x01\x02\x03", "too short: only 3 bytes"),
        (b"\x01\x02\x03\x04", "no jam after the mug"),
        (b"\x00\x00\x00\x80\x02", "bit 31"),
        (b"\x00\x00\x00\x00\x02\x00", "trailing zero"),
        (b"\x00\x00\x00\x00\x01", "does not cue"),
        (b"\x00\x00\x00\x00\x0f", "does not cue.*back-reference"),
        (bytes(4) + jam(EVENT)[:-3], "does not cue.*truncated"),
        (bytes(4) + bytes([0x02, 0x01]), "does not cue.*trailing"),
    ],
)
def test_corrupt_records(data: bytes, fragment: str) -> None:
    with pytest.raises(RecordError, match=fragment):
        decode_record(data)


def test_canonical_check() -> None:
    # atom 1 written with a 2-bit length whose value has a leading zero: 0 | 001 | 0 | 10 -> cue gives 1
    bits = [0, 0, 0, 1, 0, 1, 0]  # tag 0, c=2 zeros, 1, low bit of b=2 is 0, value bits 1,0
    body = bytes([sum(b << i for i, b in enumerate(bits))])
    data = bytes(4) + body
    assert decode_record(data).event == 1  # vere accepts it
    with pytest.raises(RecordError, match="not canonical"):
        decode_record(data, canonical=True)
    assert decode_record(encode_record(5, EVENT), canonical=True).mug == 5


def test_encode_rejects() -> None:
    with pytest.raises(RecordError, match="out of 32 bits"):
        encode_record(1 << 32, 0)
    with pytest.raises(RecordError, match="out of 32 bits"):
        encode_record(-1, 0)
    with pytest.raises(RecordError, match="bit 31"):
        encode_record(1 << 31, 0)
    with pytest.raises(RecordError, match="not a noun"):
        encode_record(0, (1, -1))
    with pytest.raises(RecordError, match="must be an int"):
        encode_record("0", 0)  # type: ignore[arg-type]


def test_split_event_errors() -> None:
    assert split_event(EVENT) == (NOW, WIRE, CARD)
    with pytest.raises(RecordError, match="not a cell"):
        split_event(5)
    with pytest.raises(RecordError, match="ovum"):
        split_event((NOW, 7))
    with pytest.raises(RecordError, match="@da"):
        event_noun(-1, WIRE, CARD)


def test_paths() -> None:
    assert (cord("a"), (cord("ames"), 0)) == WIRE
    assert path_segments(WIRE) == ["a", "ames"]
    assert path_segments(0) == []
    with pytest.raises(RecordError, match="not a path"):
        path_segments((1, 2))
    with pytest.raises(RecordError, match="not a path"):
        path_segments(((1, 2), 0))


# ---------------------------------------------------------------- @da


def test_da_known_values() -> None:
    assert da_from_unix_us(0, 0) == DA_UNIX_EPOCH << 64
    assert da_from_unix_us(946_684_800, 0) == 170141184492615420181573981275213004800  # ~2000.1.1
    assert da_from_unix_us(0, 500_000) & ((1 << 64) - 1) == 0x8000 << 48  # half a second
    assert da_from_unix_us(0, 1) & ((1 << 64) - 1) == 0  # 65536 / 1e6 rounds down to 0
    assert da_from_unix_us(0, 16) & ((1 << 64) - 1) == 1 << 48
    assert unix_us_from_da(da_from_unix_us(0, 500_000)) == (0, 500_000)
    assert unix_us_from_da((DA_UNIX_EPOCH << 64) | (1 << 48)) == (0, 15)


def test_da_vector_from_serial_tests() -> None:
    """The "date" atom in vere's serial_tests.c is a real @da: its fraction sits in the top 16 bits."""
    date = atom_from_bytes(bytes([0, 0, 0, 0, 0, 0, 0xC, 0xA8, 0xAB, 0x60, 0xEF, 0x2D, 0xD, 0, 0, 0x80]))
    seconds, micro = unix_us_from_da(date)
    assert 1_577_836_800 < seconds < 1_609_459_200  # during 2020
    assert micro == (0xA80C * 1_000_000) // 65536
    assert da_from_unix_us(seconds, micro) >> 64 == date >> 64
    assert da_from_unix_us(seconds, micro + 1) == date  # truncation in both directions loses < 1 unit


def test_da_float_variants() -> None:
    assert da_from_unix(1_700_000_000.25) == da_from_unix_us(1_700_000_000, 250_000)
    assert da_from_unix(1.9999999) == da_from_unix_us(2, 0)
    assert unix_from_da(da_from_unix_us(1_700_000_000, 250_000)) == 1_700_000_000.25
    for bad in (-1.0, float("nan"), float("inf"), 2.0**32):
        with pytest.raises(ValueError):
            da_from_unix(bad)
    with pytest.raises(ValueError, match="microseconds"):
        da_from_unix_us(0, 1_000_000)
    with pytest.raises(ValueError, match="before the Unix epoch"):
        unix_us_from_da(5)
    with pytest.raises(ValueError, match="2\\^32"):
        unix_us_from_da((DA_UNIX_EPOCH + (1 << 32)) << 64)


@given(st.integers(0, (1 << 32) - 1), st.integers(0, 999_999))
@settings(max_examples=300, deadline=None)
def test_da_roundtrip_within_resolution(seconds: int, micro: int) -> None:
    da = da_from_unix_us(seconds, micro)
    back_s, back_us = unix_us_from_da(da)
    assert back_s == seconds and 0 <= micro - back_us <= 16  # 2^-16 s is ~15.3 us
    assert da_from_unix_us(back_s, back_us) <= da


@given(st.integers(0, (1 << 31) - 1), st.binary(min_size=1, max_size=40))
@settings(max_examples=200, deadline=None)
def test_record_roundtrip(mug_value: int, payload: bytes) -> None:
    event = event_noun(NOW, WIRE, (term("hear"), atom_from_bytes(payload)))
    record = decode_record(encode_record(mug_value, event), canonical=True)
    assert record.mug == mug_value and equal(record.event, event)
