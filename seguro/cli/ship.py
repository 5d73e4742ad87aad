"""`seguro ship`: create a ship (its genesis in etcd), and run the reference ship's runtime."""

from __future__ import annotations

import json
from dataclasses import asdict

import click

from seguro.cli.exits import coordination_error
from seguro.cli.keys import event_keys_option
from seguro.node.etcd.coordinator import CoordinationError
from seguro.node.etcd.sealing import Keyring
from seguro.ops.ship import create_ship, ensure_ship
from seguro.urbit.ship.command import command as serve_command


@click.group("ship")
def group() -> None:
    """A ship's life in Seguro: create it; the reference runtime nodes run for it."""


@group.command("create")
@click.option("--etcd", required=True, envvar="SEGURO_ETCD", help="Comma-separated etcd client URLs.")
@click.option("--ship", required=True, envvar="SEGURO_SHIP", help="The ship's name in etcd.")
@click.option("--who", default="~zod", show_default=True, help="The reference ship's @p.")
@click.option("--exist-ok", is_flag=True, help="Succeed (and say so) when the ship exists as this @p.")
@event_keys_option
@click.option("--json", "as_json", is_flag=True)
def create(etcd: str, ship: str, who: str, exist_ok: bool, keyring: Keyring | None, as_json: bool) -> None:
    """Bring a reference ship into being: its genesis record and boot events, once. Fails if it exists
    (with --exist-ok, only if it exists as another @p: for deployments that run again)."""
    try:
        if exist_ok:
            genesis, created = ensure_ship(etcd, ship, who, keyring)
        else:
            genesis, created = create_ship(etcd, ship, who, keyring=keyring), True
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    except CoordinationError as e:  # unreachable (5), or the ship exists (1)
        raise coordination_error(e) from None
    if as_json:
        click.echo(json.dumps({"ship": ship, "created": created, **asdict(genesis)}))
    else:
        click.echo(f"{'created' if created else 'exists:'} ship {ship} ({who}), genesis {genesis.id}")


group.add_command(serve_command, "serve")
