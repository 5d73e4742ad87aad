"""`seguro pier`: verify, import and export vere's own event log (a pier's .urb/log)."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import click

from seguro.cli.keys import event_keys_option
from seguro.cli.node import LOG_LEVELS
from seguro.node.etcd.coordinator import CoordinationError
from seguro.node.etcd.sealing import Keyring, SealError
from seguro.node.eventlog import EventLog, EventLogError
from seguro.ops.pier import export_from_data, export_from_etcd, import_to_data, import_to_etcd
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
@click.option(
    "--data",
    "data_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="An empty data directory: DIR/log becomes the pier's log.",
)
@click.option("--etcd", help="Seed a cluster instead: etcd client URLs (nodes pick the ship up from etcd).")
@click.option("--ship", help="With --etcd: the ship's name (refused if it exists).")
@event_keys_option
@click.option("--json", "as_json", is_flag=True)
def import_command(
    pier: Path, data_dir: Path | None, etcd: str | None, ship: str | None, keyring: Keyring | None,
    as_json: bool,
) -> None:  # fmt: skip
    """Import a pier's log, byte for byte with its META: into a node's local log (--data), or into a
    cluster (--etcd, --ship: the ship's genesis and its whole log, for nodes with empty data dirs)."""
    if (data_dir is None) == (etcd is None) or (etcd is not None and not ship):
        raise click.UsageError("give either --data DIR, or --etcd URLS and --ship NAME")
    try:
        first, last = pier_bounds(pier)
        with progress("importing", first, last, as_json) as tick:
            started = time.monotonic()
            if etcd is not None:
                genesis, report = import_to_etcd(pier, etcd, ship or "", progress=tick,  # type: ignore[arg-type]
                                                 keyring=keyring)  # fmt: skip
            else:
                report = import_to_data(pier, data_dir or Path(), progress=tick)  # type: ignore[arg-type]
    except (ValueError, EventLogError, CoordinationError, OSError, SealError) as e:  # PierError: ValueError
        raise click.ClickException(str(e)) from None
    if etcd is not None:
        seconds = time.monotonic() - started
        first, last = report.first_event, report.last_event
        summary = {"pier": str(pier), "ship": ship, "genesis": genesis.id, "first_event": first,
                   "last_event": last, "seconds": round(seconds, 2)}  # fmt: skip
        click.echo(json.dumps(summary) if as_json else f"imported events {first}..{last} as ship {ship} "
                   f"(genesis {genesis.id}) in {seconds:.1f} s")  # fmt: skip
        return
    seconds = time.monotonic() - started
    count = report.last_event - report.first_event + 1
    summary = {"pier": str(pier), "data": str(data_dir), "first_event": report.first_event,
               "last_event": report.last_event, "seconds": round(seconds, 2),
               "events_per_s": round(count / max(seconds, 1e-6))}  # fmt: skip
    click.echo(json.dumps(summary) if as_json else
               f"imported events {report.first_event}..{report.last_event} into {data_dir / 'log'} in "
               f"{seconds:.1f} s ({summary['events_per_s']:,} events/s)")  # fmt: skip


@group.command("export")
@click.option(
    "--data",
    "data_dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="A node's data directory (read as of now; a running node keeps running).",
)
@click.option("--etcd", help="Export what etcd holds instead (all of it, untrimmed): etcd client URLs.")
@click.option("--ship", help="With --etcd: the ship's name.")
@click.option("--to", "pier", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--vere", "vere_major", type=click.Choice(["3", "4"]), help="Epoch format for vere 3.x or 4.x.")
@click.option("--force", is_flag=True, help="Replace the event log of an existing pier.")
@event_keys_option
@click.option("--json", "as_json", is_flag=True)
def export_command(
    data_dir: Path | None, etcd: str | None, ship: str | None, pier: Path, vere_major: str | None,
    force: bool, keyring: Keyring | None, as_json: bool,
) -> None:  # fmt: skip
    """Write a replicated log as a pier vere can replay (.urb/log, epoc.txt, vere.txt, put/ and get/)."""
    if (data_dir is None) == (etcd is None) or (etcd is not None and not ship):
        raise click.UsageError("give either --data DIR, or --etcd URLS and --ship NAME")
    major = int(vere_major) if vere_major else None
    try:
        if etcd is not None:
            last = export_from_etcd(etcd, ship or "", pier, major or 4, force, keyring)
        else:
            with EventLog(data_dir or Path(), create=False, read_only=True) as log:
                first, last_held = log.first_event(), log.last_event()
            with progress("exporting", first, last_held, as_json) as tick:
                last = export_from_data(data_dir or Path(), pier, major, force, progress=tick)  # type: ignore[arg-type]
    except (ValueError, EventLogError, CoordinationError, OSError, SealError) as e:  # PierError: ValueError
        raise click.ClickException(str(e)) from None
    click.echo(json.dumps({"pier": str(pier), "last_event": last}) if as_json else
               f"exported events ..{last} to {pier}")  # fmt: skip


@group.command("follow")
@click.argument("pier", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--etcd", required=True, envvar="SEGURO_ETCD", help="Comma-separated etcd client URLs.")
@click.option("--ship", required=True, envvar="SEGURO_SHIP",
              help="The ship's name (import its pier first: `seguro pier import`).")
@click.option("--id", "node_id", default="follow", show_default=True, help="This follower's replica id.")
@click.option(
    "--data",
    "data_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Its data directory (default: PIER/.urb/seguro-follow).",
)
@click.option("--grpc", default="127.0.0.1:0", show_default=True, help="HOST:PORT of its gRPC server.")
@click.option("--advertise-grpc", help="HOST:PORT replicas dial, when --grpc binds every interface.")
@click.option("--ready-file", type=click.Path(path_type=Path), help="Write bound addresses here once up.")
@click.option("--event-keys", envvar="SEGURO_EVENT_KEYS", help="The ship's keyring, when events are sealed.")
@click.option("--log-level", default="INFO", show_default=True, type=LOG_LEVELS)
def follow_command(
    pier: Path, etcd: str, ship: str, node_id: str, data_dir: Path | None, grpc: str,
    advertise_grpc: str | None, ready_file: Path | None, event_keys: str | None, log_level: str,
) -> None:  # fmt: skip
    """Protect a ship that still runs on an unmodified vere: commit every new event of its log into the
    cluster as it appears, fenced like any master's commits. The ship's replicas run log-only
    (`node run --runtime none`): they store, acknowledge and serve the log; vere emits the effects."""
    from seguro.cli.node import serve_node

    flags: dict[str, object] = {
        "node_id": node_id, "ship": ship, "etcd": etcd, "grpc": grpc, "advertise_grpc": advertise_grpc,
        "data_dir": data_dir or pier / ".urb" / "seguro-follow", "follow_pier": str(pier.resolve()),
        "event_keys": event_keys, "tls_ca": os.environ.get("SEGURO_CACERT"),
        "tls_cert": os.environ.get("SEGURO_CERT"), "tls_key": os.environ.get("SEGURO_KEY"),
        "etcd_user": os.environ.get("SEGURO_ETCD_USER"),
        "etcd_password_file": os.environ.get("SEGURO_ETCD_PASSWORD_FILE"),
    }  # fmt: skip
    serve_node(None, flags, ready_file, log_level)
