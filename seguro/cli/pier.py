"""`seguro pier`: verify, import and export vere's own event log (a pier's .urb/log)."""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import click

from seguro.node.eventlog import EventLogError
from seguro.ops.pier import export_from_data, import_to_data
from seguro.urbit.pier.layout import PierError
from seguro.urbit.pier.verify import verify

EXIT_UNSOUND = 1


@click.group("pier")
def group() -> None:
    """Move a ship's log between vere's pier and Seguro."""


@contextlib.contextmanager
def progress(label: str, first: int, last: int, quiet: bool) -> Iterator[object]:
    """A bar with events/s and an ETA on a terminal; nothing under --json or without a terminal."""
    if quiet or not sys.stderr.isatty() or last <= first:
        yield lambda event: None
        return
    started = time.monotonic()

    def rate(event: int | None) -> str:
        done = (event or first) - first
        return f"{done / max(time.monotonic() - started, 1e-3):,.0f} events/s"

    with click.progressbar(length=last - first + 1, label=label, file=sys.stderr, show_eta=True,
                           item_show_func=rate) as bar:  # fmt: skip
        seen = [first]

        def tick(event: int) -> None:
            bar.update(event - seen[0], event)
            seen[0] = event

        yield tick


def pier_bounds(pier: Path) -> tuple[int, int]:
    """Cheap bounds for the progress bar (the walk checks everything)."""
    from seguro.urbit.pier.reader import SegmentReader, segments

    layout = segments(pier)
    with SegmentReader(layout[-1]) as newest:
        _, last = newest.bounds()
    return layout[0].base + 1, max(last, layout[-1].base)


@group.command("verify")
@click.argument("pier", type=click.Path(file_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True)
def verify_command(pier: Path, as_json: bool) -> None:
    """Check META, that events are contiguous across epochs, and that every record decodes (mug + jam).
    Exit 0 on a sound log, 1 naming the first bad event and what is wrong."""
    try:
        first, last = pier_bounds(pier)
    except PierError:
        first, last = 0, 0  # verify says why
    with progress("verifying", first, last, as_json) as tick:
        report = verify(pier, progress=tick)  # type: ignore[arg-type]
    if as_json:
        click.echo(json.dumps(report.to_dict()))
    elif report.ok:
        click.echo(f"{pier}: sound, events {report.first_event}..{report.last_event} in "
                   f"{len(report.epochs)} epoch(s)")  # fmt: skip
    else:
        where = f" at event {report.bad_event}" if report.bad_event else ""
        click.echo(f"{pier}: NOT sound{where}: {report.problem}", err=True)
    if not report.ok:
        sys.exit(EXIT_UNSOUND)


@group.command("import")
@click.argument("pier", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--data", "data_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="An empty data directory: DIR/log becomes the pier's log.")
@click.option("--json", "as_json", is_flag=True)
def import_command(pier: Path, data_dir: Path, as_json: bool) -> None:
    """Build a node's local log from a pier, byte for byte, with its META (and snapshot, if chopped)."""
    try:
        first, last = pier_bounds(pier)
        with progress("importing", first, last, as_json) as tick:
            started = time.monotonic()
            report = import_to_data(pier, data_dir, progress=tick)  # type: ignore[arg-type]
    except (PierError, EventLogError) as e:
        raise click.ClickException(str(e)) from None
    seconds = time.monotonic() - started
    count = report.last_event - report.first_event + 1
    summary = {"pier": str(pier), "data": str(data_dir), "first_event": report.first_event,
               "last_event": report.last_event, "seconds": round(seconds, 2),
               "events_per_s": round(count / max(seconds, 1e-6))}  # fmt: skip
    click.echo(json.dumps(summary) if as_json else
               f"imported events {report.first_event}..{report.last_event} into {data_dir / 'log'} in "
               f"{seconds:.1f} s ({summary['events_per_s']:,} events/s)")  # fmt: skip


@group.command("export")
@click.option("--data", "data_dir", required=True,
              type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="A node's data directory (read as of now; a running node keeps running).")
@click.option("--to", "pier", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--vere", "vere_major", type=click.Choice(["3", "4"]), help="Epoch format for vere 3.x or 4.x.")
@click.option("--force", is_flag=True, help="Replace the event log of an existing pier.")
@click.option("--json", "as_json", is_flag=True)
def export_command(data_dir: Path, pier: Path, vere_major: str | None, force: bool, as_json: bool) -> None:
    """Write a node's log as a pier vere can replay (.urb/log, epoc.txt, vere.txt, put/ and get/)."""
    try:
        last = export_from_data(data_dir, pier, int(vere_major) if vere_major else None, force)
    except (PierError, EventLogError) as e:
        raise click.ClickException(str(e)) from None
    click.echo(json.dumps({"pier": str(pier), "last_event": last}) if as_json else
               f"exported events ..{last} to {pier}")  # fmt: skip
