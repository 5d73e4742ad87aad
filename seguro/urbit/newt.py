"""Newt framing: how vere's king and serf delimit messages on a pipe (pkg/vere/newt.c).

A frame is one version byte 0x00, a u32 little-endian payload length (> 0), then the payload, which
is the jam of one noun. A pipe delivers bytes in arbitrary pieces, so the decoder buffers until a
whole frame is present, and it checks the header before trusting the length: a corrupt or hostile
peer must produce a clear error, not a 4 GiB allocation or a hang.
"""

from __future__ import annotations

import os
import struct
from typing import BinaryIO

from seguro.urbit.noun import Noun, cue, jam

NEWT_VERSION = 0
HEADER_BYTES = 5
MAX_FRAME_BYTES_DEFAULT = 1 << 30  # 1 GiB: larger than any event or snapshot message we send
_HEADER = struct.Struct("<BI")


class NewtError(ValueError):
    """A byte stream is not a valid sequence of newt frames."""


def encode_frame(payload: bytes) -> bytes:
    """Frame one payload (already jammed) for the wire."""
    if not payload:
        raise NewtError("newt payload must not be empty")
    if len(payload) > 0xFFFFFFFF:
        raise NewtError(f"newt payload too large for a u32 length: {len(payload)} bytes")
    return _HEADER.pack(NEWT_VERSION, len(payload)) + payload


def encode_noun(noun: Noun) -> bytes:
    """Jam `noun` and frame it."""
    return encode_frame(jam(noun))


def decode_noun(payload: bytes) -> Noun:
    """Cue one frame's payload; any failure becomes NewtError so callers see a single error type."""
    try:
        return cue(payload)
    except ValueError as exc:  # cue's one error: the peer sent garbage
        raise NewtError(f"newt payload is not a valid jam ({len(payload)} bytes): {exc}") from exc


def parse_header(header: bytes, max_frame_bytes: int) -> int:
    """Validate a 5-byte header and return the payload length."""
    version, length = _HEADER.unpack(header)
    if version != NEWT_VERSION:
        raise NewtError(f"bad newt version byte 0x{version:02x} (expected 0x00); header={header.hex()}")
    if length == 0:
        raise NewtError("newt frame with zero length")
    if length > max_frame_bytes:
        raise NewtError(f"newt frame of {length} bytes exceeds the limit of {max_frame_bytes} bytes")
    return length


class FrameDecoder:
    """Incremental decoder: feed it whatever a read returned, get back every completed payload.

    After an error the decoder stays failed: the stream has lost its framing and cannot resync.
    """

    def __init__(self, max_frame_bytes: int = MAX_FRAME_BYTES_DEFAULT) -> None:
        self._max_frame_bytes = max_frame_bytes
        self._buffer = bytearray()
        self._need_bytes: int | None = None  # payload length once the header is parsed
        self._error: NewtError | None = None

    @property
    def buffered_bytes(self) -> int:
        """Bytes received but not yet returned as a frame (nonzero at EOF means a torn frame)."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        """Add `data`; return the payloads of all frames it completed, in order."""
        if self._error is not None:
            raise self._error
        self._buffer += data
        frames: list[bytes] = []
        try:
            while True:
                payload = self._next_frame()
                if payload is None:
                    return frames
                frames.append(payload)
        except NewtError as exc:
            self._error = exc
            raise

    def _next_frame(self) -> bytes | None:
        if self._need_bytes is None:
            if len(self._buffer) < HEADER_BYTES:
                return None
            self._need_bytes = parse_header(bytes(self._buffer[:HEADER_BYTES]), self._max_frame_bytes)
            del self._buffer[:HEADER_BYTES]
        if len(self._buffer) < self._need_bytes:
            return None
        payload = bytes(self._buffer[: self._need_bytes])
        del self._buffer[: self._need_bytes]
        self._need_bytes = None
        return payload


def _read_exactly(stream: BinaryIO, size: int) -> bytes:
    """Read `size` bytes, tolerating short reads; returns fewer only at EOF."""
    chunks: list[bytes] = []
    remaining = size
    while remaining > 0:
        chunk = stream.read(remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def read_frame(stream: BinaryIO, max_frame_bytes: int = MAX_FRAME_BYTES_DEFAULT) -> bytes | None:
    """Blocking read of one frame's payload; None at a clean EOF (between frames).

    For the serf side, whose only job is to wait for the next command. EOF inside a frame is an error.
    """
    header = _read_exactly(stream, HEADER_BYTES)
    if not header:
        return None
    if len(header) < HEADER_BYTES:
        raise NewtError(f"EOF inside a newt header after {len(header)} bytes")
    length = parse_header(header, max_frame_bytes)
    payload = _read_exactly(stream, length)
    if len(payload) < length:
        raise NewtError(f"EOF inside a newt frame: got {len(payload)} of {length} payload bytes")
    return payload


def write_all(fd: int, data: bytes) -> None:
    """Write every byte to a blocking fd (os.write may write less than asked on a pipe)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
