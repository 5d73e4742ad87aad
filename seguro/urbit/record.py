"""vere event records: the value of one row of the EVENTS table, byte for byte.

A record is a 4-byte little-endian mug (of the kernel after the event; 0 for boot events) followed by the
jam of the event (pkg/vere/disk.c: u3_disk_etch / u3_disk_sift). A replicated log that wrote anything else
could not be replayed by vere, so decoding is strict and says exactly what is wrong.

Timestamped events are `[@da ovum]` with ovum = `[wire card]`; the first `life` events are raw Nock
formulas with no timestamp. @da conversion follows pkg/noun/manage.c (u3m_time_in_tv / u3m_time_out_tv).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from seguro.urbit.noun import Noun, cord, cue, from_list, jam, to_list, uncord

MUG_BYTES = 4
MUG_LIMIT = 1 << 31  # mugs are 31-bit; 0 marks a boot event, whose mug replay does not check
DA_UNIX_EPOCH = 0x8000000CCE9E0D80  # @da seconds at 1970-01-01T00:00:00Z
_SECONDS_LIMIT = 1 << 32  # vere keeps Unix seconds in a c3_w (until 2106)
_LOW64 = (1 << 64) - 1


class RecordError(ValueError):
    """A record or event noun that vere would not have written."""


@dataclass(frozen=True)
class Record:
    """One decoded EVENTS value. Equality is by mug and jam bytes (noun == would recurse)."""

    mug: int
    event: Noun = field(compare=False, repr=False)
    jam: bytes = field(repr=False)

    @property
    def is_boot(self) -> bool:
        """Boot events (formulas and the first timestamped events) are stored with mug 0."""
        return self.mug == 0


def _check_mug(mug: int) -> None:
    if not isinstance(mug, int) or isinstance(mug, bool):
        raise RecordError(f"mug must be an int, got {type(mug).__name__}")
    if not 0 <= mug < (1 << 32):
        raise RecordError(f"mug {mug:#x} is out of 32 bits")
    if mug >= MUG_LIMIT:
        raise RecordError(f"mug {mug:#x} has bit 31 set; vere's mugs are 31-bit")


def encode_record(mug: int, event: Noun) -> bytes:
    """The EVENTS value vere writes for `event` with kernel mug `mug`."""
    _check_mug(mug)
    try:
        body = jam(event)
    except (TypeError, ValueError) as exc:
        raise RecordError(f"event is not a noun: {exc}") from exc
    return mug.to_bytes(MUG_BYTES, "little") + body


def decode_record(data: bytes, *, canonical: bool = False) -> Record:
    """Parse an EVENTS value. With `canonical`, also require the jam to be exactly what jam would write
    (catches encodings vere never produces, at the cost of re-jamming)."""
    data = bytes(data)
    if len(data) <= MUG_BYTES:
        what = "no jam after the mug" if len(data) == MUG_BYTES else f"only {len(data)} bytes"
        raise RecordError(f"record too short: {what} (need a 4-byte mug and a non-empty jam)")
    mug = int.from_bytes(data[:MUG_BYTES], "little")
    _check_mug(mug)
    body = data[MUG_BYTES:]
    if body[-1] == 0:
        zeros = len(body) - len(body.rstrip(b"\x00"))
        raise RecordError(f"jam has {zeros} trailing zero byte(s); vere strips them")
    try:
        event = cue(body)
    except ValueError as exc:
        raise RecordError(f"jam does not cue ({len(body)} bytes): {exc}") from exc
    if canonical and jam(event) != body:
        raise RecordError("jam is not canonical: re-jamming the event gives different bytes")
    return Record(mug=mug, event=event, jam=body)


# ---------------------------------------------------------------- events


def event_noun(da: int, wire: Noun, card: Noun) -> Noun:
    """A timestamped event `[da [wire card]]`."""
    if not isinstance(da, int) or da < 0:
        raise RecordError(f"event time must be an atom (@da), got {da!r:.40}")
    return (da, (wire, card))


def split_event(event: Noun) -> tuple[int, Noun, Noun]:
    """(da, wire, card) of a timestamped event; RecordError naming the part that has the wrong shape."""
    if not isinstance(event, tuple) or len(event) != 2:
        raise RecordError("event is not a cell, expected [@da [wire card]]")
    da, ovum = event
    if isinstance(da, tuple):
        raise RecordError("event head is a cell, expected an @da atom (a boot formula?)")
    if not isinstance(ovum, tuple) or len(ovum) != 2:
        raise RecordError(f"event ovum is the atom {ovum!r:.40}, expected a [wire card] cell")
    wire, card = ovum
    return da, wire, card


def path_noun(*segments: str) -> Noun:
    """A wire/path such as /a/ames as a noun: a list of cords."""
    return from_list(cord(s) for s in segments)


def path_segments(noun: Noun) -> list[str]:
    """Inverse of `path_noun`; RecordError if `noun` is not a list of UTF-8 cords."""
    try:
        items = to_list(noun)
        if any(isinstance(item, tuple) for item in items):
            raise ValueError("a path segment is a cell")
        return [uncord(item) for item in items]
    except ValueError as exc:
        raise RecordError(f"not a path: {exc}") from exc


# ---------------------------------------------------------------- @da


DA_TICK = 1 << 48  # vere's smallest step between two events' times (1/65536 s)


def later_than(event: Noun, floor_da: int) -> tuple[Noun, int]:
    """`event` ([@da ovum]) with its time raised to at least `floor_da + DA_TICK`, and that time: event
    time never goes backwards, whatever the clock of the replica that stamps it says."""
    da, _, _ = split_event(event)
    at_least = floor_da + DA_TICK if floor_da else da
    return ((event if da >= at_least else (at_least, event[1])), max(da, at_least))  # type: ignore[index]


def event_da(event: Noun) -> int:
    """The time of a timestamped event; 0 for a boot formula (no time)."""
    try:
        return split_event(event)[0]
    except RecordError:
        return 0


def da_from_unix_us(seconds: int, microseconds: int) -> int:
    """@da from whole Unix seconds and microseconds, integer-exact as vere's u3m_time_in_tv."""
    if not 0 <= seconds < _SECONDS_LIMIT:
        raise ValueError(f"Unix seconds {seconds} outside vere's range [0, 2^32)")
    if not 0 <= microseconds < 1_000_000:
        raise ValueError(f"microseconds {microseconds} outside [0, 1e6)")
    fraction = ((microseconds * 65536) // 1_000_000) << 48
    return ((DA_UNIX_EPOCH + seconds) << 64) | fraction


def da_from_unix(seconds: float) -> int:
    """@da from a Unix time in seconds, rounded to the nearest microsecond (as a timeval would hold it)."""
    if not math.isfinite(seconds):
        raise ValueError(f"Unix time {seconds} is not finite")
    whole, micro = divmod(round(seconds * 1_000_000), 1_000_000)
    return da_from_unix_us(whole, micro)


def unix_us_from_da(da: int) -> tuple[int, int]:
    """(Unix seconds, microseconds) from @da, truncating as vere's u3m_time_out_tv."""
    if not isinstance(da, int) or da < (DA_UNIX_EPOCH << 64):
        raise ValueError(f"@da {da!r:.40} is before the Unix epoch")
    seconds = (da >> 64) - DA_UNIX_EPOCH
    if seconds >= _SECONDS_LIMIT:
        raise ValueError(f"@da is {seconds} Unix seconds, past vere's 2^32 limit")
    return seconds, (((da & _LOW64) >> 48) * 1_000_000) // 65536


def unix_from_da(da: int) -> float:
    """Unix time in seconds from @da, at vere's microsecond resolution."""
    seconds, micro = unix_us_from_da(da)
    return seconds + micro / 1_000_000
