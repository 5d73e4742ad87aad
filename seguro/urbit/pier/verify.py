"""Is a pier's event log sound? META present and in range, epochs contiguous (no gap, no overlap), every
record a vere record (4-byte mug + jam that cues). The first problem is named with its event number."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from seguro.urbit.pier.layout import (
    SNAPSHOT_FILES,
    VERSION_EPOCHS,
    Meta,
    PierError,
    log_dir,
)
from seguro.urbit.pier.reader import Segment, SegmentReader, open_env, read_meta, segments
from seguro.urbit.record import RecordError, decode_record


class PierProblem(PierError):
    """A pier that is not a sound log; `event` is the first bad event number when there is one."""

    def __init__(self, message: str, event: int | None = None) -> None:
        super().__init__(message)
        self.event = event


@dataclass
class PierReport:
    pier: str
    meta: dict[str, object] = field(default_factory=dict)
    first_event: int = 0
    last_event: int = 0
    epochs: list[dict[str, object]] = field(default_factory=list)
    problem: str = ""
    bad_event: int | None = None

    @property
    def ok(self) -> bool:
        return not self.problem

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "ok": self.ok}


def check_record(event: int, record: bytes, decode: bool) -> None:
    """A record vere could have written: mug and jam, and with `decode`, a jam that cues."""
    try:
        if decode:
            decode_record(record)
        elif len(record) <= 4:
            raise RecordError("truncated (no jam after the mug)")
        elif record[-1] == 0:
            raise RecordError("the jam has a trailing zero byte; vere strips them")
    except (RecordError, ValueError) as e:
        raise PierProblem(f"event {event}: {e}", event) from None


def pier_meta(pier: Path, layout: list[Segment]) -> Meta:
    """The identity as vere takes it (the newest environment's META), after checking that the epoch
    system's top-level META is there and says version 3."""
    if layout[0].epoch_format is not None:
        env = open_env(log_dir(pier))
        try:
            top = read_meta(env, f"{log_dir(pier)} (top level)")
        finally:
            env.close()
        if top.version != VERSION_EPOCHS:
            raise PierProblem(f"top-level META version {top.version}, the epoch system writes 3")
    with SegmentReader(layout[-1]) as newest:
        return newest.meta()


def walk(pier: Path, decode: bool = True, report: PierReport | None = None) -> Iterator[tuple[int, bytes]]:
    """Every (event, record) of the pier in order, checked as it goes (PierProblem at the first fault).
    Fills `report` (epochs, first and last event) on the way."""
    layout = segments(pier)
    meta = pier_meta(pier, layout)
    report = report or PierReport(str(pier))
    report.meta = asdict(meta)
    expected = layout[0].base + 1
    report.first_event = expected
    for i, segment in enumerate(layout):
        _check_segment(segment, i, expected, meta)
        with SegmentReader(segment) as reader:
            first, last = reader.bounds()
            report.epochs.append({"base": segment.base, "format": segment.epoch_format, "vere": segment.vere,
                                  "first_event": first, "last_event": last})  # fmt: skip
            if first and first != expected:
                raise _discontinuity(layout, i, expected, first)
            for event, record in reader.iterate():
                if event != expected:
                    raise PierProblem(f"event {expected} is missing (the next held is {event})", expected)
                check_record(event, record, decode)
                yield event, record
                expected += 1
        report.last_event = expected - 1


REFERENCE_SNAPSHOT = "snapshot.jam"  # the reference ship keeps its snapshot beside .urb (not a vere pier)


def _check_segment(segment: Segment, index: int, expected: int, meta: Meta) -> None:
    if segment.epoch_format is not None and segment.epoch_format not in SNAPSHOT_FILES:
        raise PierProblem(f"{segment.path}: epoch format {segment.epoch_format} (vere writes 1 or 2)")
    if index and segment.base != expected - 1:
        where = "overlaps the epoch before" if segment.base < expected - 1 else "leaves a gap after it"
        first_wrong = min(expected, segment.base + 1)  # the first event held twice, or the first missing
        raise PierProblem(f"epoch 0i{segment.base} {where} (which ends at {expected - 1})", first_wrong)
    if index == 0 and segment.base > 0:  # chopped: the snapshot at base stands for events 1..base
        missing = [f for f in SNAPSHOT_FILES[segment.epoch_format or 1] if not (segment.path / f).is_file()]
        reference_ship = (segment.path.parents[2] / REFERENCE_SNAPSHOT).is_file()  # pier/snapshot.jam
        if missing and not reference_ship:
            raise PierProblem(f"the log starts after event {segment.base} (chopped) but {segment.path} "
                              f"lacks its snapshot ({', '.join(missing)})")  # fmt: skip
    with SegmentReader(segment) as reader:
        mine = reader.meta()
    if (mine.who, mine.fake, mine.life) != (meta.who, meta.fake, meta.life):
        raise PierProblem(f"{segment.path}: META {mine} differs from the newest epoch's {meta}")


def _discontinuity(layout: list[Segment], index: int, expected: int, first: int) -> PierProblem:
    if first < expected:
        return PierProblem(f"epoch 0i{layout[index].base} holds event {first}, which an earlier epoch "
                           "holds too (overlapping epochs)", first)  # fmt: skip
    base = layout[index].base
    return PierProblem(f"event {expected} is missing (epoch 0i{base} starts at {first})", expected)


def verify(pier: Path, decode: bool = True, progress: Callable[[int], None] | None = None) -> PierReport:
    """Walk the whole log; the report names the first problem (none: a sound log)."""
    report = PierReport(str(pier))
    try:
        for event, _ in walk(pier, decode, report):
            if progress is not None and event % 10_000 == 0:
                progress(event)
    except PierProblem as e:
        report.problem, report.bad_event = str(e), e.event
    except PierError as e:
        report.problem = str(e)
    return report
