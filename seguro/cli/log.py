"""`seguro log ...`: check and read a node's local event log.

Both commands open the log read-only (no RocksDB LOCK), so they work beside a running node and see the
log as of the moment they opened it. The rendering below is a pure function of the noun, bounded in
output size whatever the noun's shape, so a hostile or corrupt event cannot hang or flood a terminal.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from seguro.node.eventlog import EventLog, EventLogError, key_event
from seguro.urbit.noun import Noun, atom_bytes
from seguro.urbit.record import decode_record, unix_us_from_da

TEXT_BUDGET_CHARS = 160  # longest rendering of one noun
ATOM_HEX_BYTES = 16  # big atoms show this many leading bytes
WIRE_MAX_ITEMS = 16
_TERM = re.compile(r"[a-z][a-z0-9-]*\Z")

# ---------------------------------------------------------------------------- rendering (pure)


def da_iso(atom: int) -> str | None:
    """ISO-8601 UTC time of a @da, or None when the atom is not a plausible @da (before 1970, after 2106)."""
    try:
        seconds, micros = unix_us_from_da(atom)
    except ValueError:
        return None
    return datetime.fromtimestamp(seconds, UTC).replace(microsecond=micros).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def text_of(atom: int, min_bytes: int = 2) -> str | None:
    """The atom as printable ASCII (a cord or term) of at least `min_bytes` bytes, else None (so small
    numbers stay numbers)."""
    data = atom_bytes(atom)
    if len(data) < min_bytes or not all(0x20 <= byte < 0x7F for byte in data):
        return None
    return data.decode("ascii")


def atom_text(atom: int) -> str:
    """Short rendering of an atom: %term, 'cord', decimal, or truncated hex with its byte length."""
    text = text_of(atom)
    if text is not None:
        return f"%{text}" if _TERM.match(text) else json.dumps(text).replace('"', "'")
    if atom < 2**32:
        return str(atom)
    size = (atom.bit_length() + 7) // 8
    if size <= ATOM_HEX_BYTES:
        return hex(atom)
    return f"0x{atom_bytes(atom)[::-1][:ATOM_HEX_BYTES].hex()}…({size} bytes)"


def noun_text(noun: Noun, budget_chars: int = TEXT_BUDGET_CHARS) -> str:
    """Render any noun as `[a b c]` (tails flattened), cut at `budget_chars`. Iterative: a deep noun
    costs at most the budget, never the recursion limit."""
    out: list[str] = []
    used = 0
    stack: list[tuple[bool, Any]] = [(False, noun)]  # (is literal text, item)
    while stack and used <= budget_chars:
        literal, item = stack.pop()
        if literal:
            piece = item
        elif isinstance(item, int):
            piece = atom_text(item)
        else:
            piece = "["
            stack.append((True, "]"))
            stack.extend(reversed(_flatten(item, budget_chars - used)))
        out.append(piece)
        used += len(piece)
    text = "".join(out)
    return text if not stack and used <= budget_chars else text[:budget_chars] + "…"


def _flatten(cell: tuple, max_items: int) -> list[tuple[bool, Any]]:
    """Items of a right-nested cell `[a b c]`, separated by spaces, at most `max_items` of them."""
    items: list[tuple[bool, Any]] = []
    current: Any = cell
    while isinstance(current, tuple) and len(items) < max(max_items, 2):
        items += [(False, current[0]), (True, " ")]
        current = current[1]
    items.append((False, current))
    return items


def wire_text(wire: Noun) -> str | None:
    """A wire (list of cords) as /a/b/c, or None when the noun is not a short list of atoms."""
    parts: list[str] = []
    for _ in range(WIRE_MAX_ITEMS):
        if wire == 0:
            return "/" + "/".join(parts)
        if not isinstance(wire, tuple) or not isinstance(wire[0], int):
            return None
        parts.append(text_of(wire[0], min_bytes=1) or atom_text(wire[0]))
        wire = wire[1]
    return None


def lane_text(lane: Noun) -> str:
    """An ames lane: [%& ship] (a galaxy) or [%| address], address = port << 32 | IPv4 (vere's encoding)."""
    if isinstance(lane, tuple) and lane[0] == 0 and isinstance(lane[1], int):
        return f"galaxy {lane[1]}"
    address = lane[1] if isinstance(lane, tuple) and lane[0] == 1 else lane
    if isinstance(address, int) and address < 2**48:
        ip, port = address & 0xFFFFFFFF, address >> 32
        return f"{'.'.join(str(ip >> shift & 0xFF) for shift in (24, 16, 8, 0))}:{port}"
    return noun_text(lane, 60)


def describe(event: Noun) -> dict[str, Any]:
    """Readable fields of an event: time, wire, card tag and a detail, for `[@da [wire card]]`; otherwise
    (boot formulas, unknown shapes) just the noun."""
    if not isinstance(event, tuple) or not isinstance(event[0], int) or da_iso(event[0]) is None:
        return {"noun": noun_text(event)}
    found: dict[str, Any] = {"time": da_iso(event[0])}
    ovum = event[1]
    wire = wire_text(ovum[0]) if isinstance(ovum, tuple) else None
    if wire is None:
        return found | {"noun": noun_text(ovum)}
    found["wire"] = wire
    card = ovum[1]
    tag = text_of(card[0]) if isinstance(card, tuple) and isinstance(card[0], int) else None
    if tag is None:
        return found | {"noun": noun_text(card)}
    found["tag"] = tag
    data = card[1]
    if tag == "hear" and isinstance(data, tuple) and isinstance(data[1], int):
        return found | {"lane": lane_text(data[0]), "packet_bytes": len(atom_bytes(data[1]))}
    return found | {"detail": noun_text(data)}


def describe_line(fields: dict[str, Any]) -> str:
    """One dump line's rendering after the event number and mug."""
    parts = [fields.get("time"), fields.get("wire"), f"%{fields['tag']}" if "tag" in fields else None]
    if "lane" in fields:
        parts.append(f"lane={fields['lane']} packet={fields['packet_bytes']}B")
    parts += [fields.get("detail"), fields.get("noun")]
    return " ".join(part for part in parts if part)


# ---------------------------------------------------------------------------- commands (shell)


def _open(data_dir: Path) -> EventLog:
    try:
        return EventLog(data_dir, create=False, read_only=True)
    except EventLogError as exc:
        raise click.ClickException(str(exc)) from None


@click.group("log")
def group() -> None:
    """Inspect a node's local RocksDB event log."""


@group.command("verify")
@click.option("--data", "data_dir", required=True, type=click.Path(path_type=Path), help="Node data dir.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
@click.option(
    "--max-problems", default=10, show_default=True, type=click.IntRange(min=1), help="Problems to list."
)
@click.option(
    "--canonical", is_flag=True, help="Also require each jam to be exactly what jam writes (slower)."
)
def verify(data_dir: Path, as_json: bool, max_problems: int, canonical: bool) -> None:
    """Check the log: contiguous events, well-formed keys, every record decodes (mug + jam).

    Exit 0 when sound, 1 when a problem is found, and report where."""
    decode = functools.partial(decode_record, canonical=canonical)
    with _open(data_dir) as log:
        report = log.verify(decode=decode, max_problems=max_problems)
    if as_json:
        click.echo(json.dumps(report.to_dict()))
    else:
        click.echo(report.summary())
        for problem in report.problems[1:]:
            click.echo(f"  {problem}")
    if not report.ok:
        raise SystemExit(1)


@group.command("dump")
@click.option("--data", "data_dir", required=True, type=click.Path(path_type=Path), help="Node data dir.")
@click.option("--from", "from_event", type=click.IntRange(min=1), default=None, help="First event.")
@click.option("--to", "to_event", type=click.IntRange(min=1), default=None, help="Last event.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per event (JSON Lines).")
def dump(data_dir: Path, from_event: int | None, to_event: int | None, as_json: bool) -> None:
    """Print events: number, mug (hex) and a readable rendering. Exit 1 if a record does not decode."""
    if from_event is not None and to_event is not None and from_event > to_event:
        raise click.UsageError(f"--from {from_event} is after --to {to_event}")
    bad = 0
    with _open(data_dir) as log:
        try:
            for event, fields in _dump_rows(log, from_event, to_event):
                bad += "error" in fields
                if as_json:
                    click.echo(json.dumps({"event": event} | fields))
                elif "error" in fields:
                    click.echo(f"{event} CORRUPT {fields['error']}")
                else:
                    click.echo(f"{event} {fields['mug']} {describe_line(fields)}")
        except EventLogError as exc:  # damaged storage: what was printed stands, the rest cannot be read
            raise click.ClickException(f"{exc}; run `seguro log verify`") from None
    if bad:
        click.echo(f"{bad} records could not be decoded; run `seguro log verify`", err=True)
        raise SystemExit(1)


def _dump_rows(
    log: EventLog, from_event: int | None, to_event: int | None
) -> Iterator[tuple[int | str, dict[str, Any]]]:
    """(event, fields) per stored record; a malformed key shows as its hex, a bad record as an error."""
    for key, value in log.scan(from_event, to_event):
        event: int | str = key_event(key) or f"key:{key[:16].hex()}"
        try:
            record = decode_record(value)
        except (ValueError, RecursionError, MemoryError) as exc:
            yield event, {"error": f"{type(exc).__name__}: {exc}", "bytes": len(value)}
            continue
        yield event, {"mug": f"{record.mug:08x}", "bytes": len(value)} | describe(record.event)


@group.command("chop")
@click.option("--data", "data_dir", required=True, type=click.Path(path_type=Path), help="Node data dir.")
@click.option("--etcd", envvar="SEGURO_ETCD", help="Cut below the lowest snapshot any replica keeps.")
@click.option("--ship", envvar="SEGURO_SHIP", help="The ship, with --etcd.")
@click.option("--alone", is_flag=True, help="Cut at this replica's snapshot without asking the others.")
@click.option("--json", "as_json", is_flag=True)
def chop_command(data_dir: Path, etcd: str | None, ship: str | None, alone: bool, as_json: bool) -> None:
    """Drop the local events a kept runtime snapshot stands for (the node must be stopped).

    Safe only below a snapshot every replica holds: give --etcd and --ship to cut there, or --alone."""
    from seguro.cli.exits import coordination_error
    from seguro.node import tls
    from seguro.node.etcd.coordinator import CoordinationError, parse_endpoints
    from seguro.node.eventlog import EventLogLocked
    from seguro.ops.chop import ChopError, chop

    if bool(etcd) == alone:
        raise click.UsageError("give --etcd (and --ship) to cut below every replica's snapshot, or --alone")
    if etcd:  # checked before the log is opened for writing
        if not ship:
            raise click.UsageError("give --ship with --etcd")
        try:
            parse_endpoints([u.strip() for u in etcd.split(",")], secure=tls.current() is not None)
        except ValueError as e:
            raise click.UsageError(f"--etcd: {e}") from None
    try:
        done = chop(data_dir, etcd, ship)
    except EventLogLocked:
        raise click.ClickException(f"{data_dir}: its node is running; stop it first") from None
    except CoordinationError as e:
        raise coordination_error(e) from None
    except (ChopError, EventLogError) as e:
        raise click.ClickException(str(e)) from None
    if as_json:
        click.echo(json.dumps(done.to_dict()))
    else:
        click.echo(f"dropped {done.events_dropped} events: the log now begins after event {done.through} "
                   f"(snapshot kept at {done.snapshot_event})")  # fmt: skip
