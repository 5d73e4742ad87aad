"""Newt framing: byte-exact frames, partial reads, and clear errors on a corrupt stream."""

from __future__ import annotations

import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from seguro.urbit import newt
from seguro.urbit.noun import cord, jam


def test_frame_is_version_length_jam() -> None:
    # jam(0) = 0x02 (pkg/noun/serial_tests.c); header = 0x00 then u32 LE length
    assert newt.encode_noun(0) == b"\x00\x01\x00\x00\x00\x02"
    live = (cord("live"), 0)
    assert newt.encode_noun(live) == b"\x00" + len(jam(live)).to_bytes(4, "little") + jam(live)


def test_decoder_handles_one_byte_reads_and_many_frames_per_read() -> None:
    nouns = [0, (1, (2, 3)), (cord("work"), (0, (cord("x" * 300), 0)))]
    stream = b"".join(newt.encode_noun(n) for n in nouns)
    decoder = newt.FrameDecoder()
    got = [p for byte in stream for p in decoder.feed(bytes([byte]))]
    assert [newt.decode_noun(p) for p in got] == nouns
    assert decoder.buffered_bytes == 0
    assert [newt.decode_noun(p) for p in newt.FrameDecoder().feed(stream)] == nouns


@given(st.lists(st.binary(min_size=1, max_size=40), max_size=6), st.lists(st.integers(1, 17), min_size=1))
def test_any_chunking_gives_the_same_frames(payloads: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(newt.encode_frame(p) for p in payloads)
    decoder = newt.FrameDecoder()
    got: list[bytes] = []
    pos, i = 0, 0
    while pos < len(stream):
        step = cuts[i % len(cuts)]
        got += decoder.feed(stream[pos : pos + step])
        pos, i = pos + step, i + 1
    assert got == payloads


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x01\x01\x00\x00\x00\x02", "bad newt version byte 0x01"),
        (b"\x00\x00\x00\x00\x00", "zero length"),
        (b"\x00\x01\x01\x00\x00" + b"\x02" * 257, "exceeds the limit of 256 bytes"),
    ],
)
def test_decoder_rejects_bad_headers_and_stays_failed(data: bytes, message: str) -> None:
    decoder = newt.FrameDecoder(max_frame_bytes=256)
    with pytest.raises(newt.NewtError, match=message):
        decoder.feed(data)
    with pytest.raises(newt.NewtError, match=message):
        decoder.feed(newt.encode_noun(0))


def test_oversize_length_is_rejected_before_the_payload_arrives() -> None:
    decoder = newt.FrameDecoder(max_frame_bytes=1024)
    with pytest.raises(newt.NewtError, match="4294967295 bytes exceeds"):
        decoder.feed(b"\x00\xff\xff\xff\xff")


def test_encode_rejects_empty_payload() -> None:
    with pytest.raises(newt.NewtError, match="empty"):
        newt.encode_frame(b"")


def test_read_frame_blocking_reader() -> None:
    stream = io.BytesIO(newt.encode_noun(7) + newt.encode_noun((1, 2)))
    assert newt.decode_noun(newt.read_frame(stream) or b"") == 7
    assert newt.decode_noun(newt.read_frame(stream) or b"") == (1, 2)
    assert newt.read_frame(stream) is None


@pytest.mark.parametrize(
    ("data", "message"),
    [(b"\x00\x05", "EOF inside a newt header"), (b"\x00\x05\x00\x00\x00ab", "got 2 of 5 payload bytes")],
)
def test_read_frame_torn_frames(data: bytes, message: str) -> None:
    with pytest.raises(newt.NewtError, match=message):
        newt.read_frame(io.BytesIO(data))


def test_decode_noun_garbage_is_a_newt_error() -> None:
    with pytest.raises(newt.NewtError, match="not a valid jam"):
        newt.decode_noun(b"\x00\x00\x00")
