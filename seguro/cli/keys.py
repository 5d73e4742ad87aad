"""`seguro keys`: make and rotate the ship's event keyring; `--event-keys` for commands that read or write
events in etcd. Key bytes are never printed: only ids."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from seguro.node.etcd import sealing
from seguro.node.etcd.sealing import Keyring, KeyringError
from seguro.ops import keys


def _load(ctx: click.Context, param: click.Parameter, value: str | None) -> Keyring | None:
    try:
        return sealing.load(Path(value)) if value else None
    except KeyringError as e:
        raise click.BadParameter(str(e)) from None


def event_keys_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    """--event-keys FILE (or SEGURO_EVENT_KEYS), passed on as `keyring`: a loaded Keyring or None."""
    return click.option("--event-keys", "keyring", envvar="SEGURO_EVENT_KEYS", callback=_load,
                        help="The ship's keyring, when its events are sealed in etcd.")(fn)  # fmt: skip


@click.group("keys")
def group() -> None:
    """The ship's event keyring: events in etcd are sealed (AES-GCM) under its current key."""


def _say(action: Callable[[], Keyring], path: Path, as_json: bool) -> None:
    try:
        ring = action()
    except KeyringError as e:
        raise click.ClickException(str(e)) from None
    shown = {"file": str(path), "current": ring.current, "ids": ring.ids}
    click.echo(json.dumps(shown) if as_json else f"{path}: keys {ring.ids}, current {ring.current}")


FILE = click.argument("path", type=click.Path(path_type=Path))
JSON = click.option("--json", "as_json", is_flag=True)
KEY_ID = click.option("--id", "key_id", required=True, type=click.IntRange(1, (1 << 32) - 1))


@group.command("new")
@FILE
@JSON
def new_command(path: Path, as_json: bool) -> None:
    """Make a keyring with one key (mode 600); refused if the file exists."""
    _say(lambda: keys.create(path), path, as_json)


@group.command("show")
@FILE
@JSON
def show_command(path: Path, as_json: bool) -> None:
    """Its key ids and the current one (never the keys)."""
    _say(lambda: sealing.load(path), path, as_json)


@group.command("add")
@FILE
@JSON
def add_command(path: Path, as_json: bool) -> None:
    """Rotation, step 1: a new key every node can read once it has this file (then `seguro reload`)."""
    _say(lambda: keys.add(path), path, as_json)


@group.command("use")
@FILE
@KEY_ID
@JSON
def use_command(path: Path, key_id: int, as_json: bool) -> None:
    """Rotation, step 2: new batches are sealed under key ID (copy the file out, then `seguro reload`)."""
    _say(lambda: keys.use(path, key_id), path, as_json)


@group.command("drop")
@FILE
@KEY_ID
@JSON
def drop_command(path: Path, key_id: int, as_json: bool) -> None:
    """Forget an old key, once no batch in etcd is sealed under it."""
    _say(lambda: keys.drop(path, key_id), path, as_json)
