"""`seguro tls`: a small certificate authority for a cluster (seguro/ops/pki.py), kept in a directory:
certificates for etcd members, replicas and operators, named as node/tls.py reads them. Run again, it
renews only what expires soon (for deployments that run again and again); an organisation's own CA does
as well, if its certificates carry the same names."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from seguro.node.etcd.schema import check_name
from seguro.node.tls import ADMIN, REPLICA, uri
from seguro.ops.etcd_auth import ship_user
from seguro.ops.etcd_server import MEMBER_CN
from seguro.ops.pki import Authority

DIR = click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
HOSTS = click.option("--host", "hosts", multiple=True, help="An IP address or DNS name it serves (repeat).")


def lifetime(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option("--renew-within", type=click.IntRange(min=0), default=30, show_default=True,
                      help="Days: an existing certificate valid for longer is kept.")(fn)  # fmt: skip
    return click.option("--days", type=click.IntRange(min=1), default=397, show_default=True,
                        help="How long a new certificate lasts.")(fn)  # fmt: skip


def _issue(directory: Path, name: str, cn: str, uris: tuple[str, ...], hosts: tuple[str, ...], days: int,
           renew_within: int) -> None:  # fmt: skip
    if days <= renew_within:
        raise click.UsageError(f"--days {days} is within --renew-within {renew_within}: every run would "
                               "issue it again")  # fmt: skip
    try:
        ca = Authority(directory, create=False)  # only `seguro tls ca` makes a CA: never one by accident
    except (OSError, ValueError) as e:
        raise click.ClickException(str(e)) from None
    issued = not ca.fresh(name, renew_within, cn, uris, hosts)
    files = ca.issue(name, cn, uris, hosts, days) if issued else None
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    click.echo(json.dumps({"ca": str(ca.cert_path), "cert": str(files.cert if files else cert),
                           "key": str(files.key if files else key), "issued": issued}))  # fmt: skip


def _names(**names: str) -> None:
    """Names go into file names and seguro:// URIs: the rule etcd keys follow (no '/', printable)."""
    for what, value in names.items():
        try:
            check_name(f"--{what}", value)
        except ValueError as e:
            raise click.UsageError(str(e)) from None


@click.group("tls")
def group() -> None:
    """Certificates for etcd members, replicas and operators, from a CA kept in DIRECTORY."""


@group.command("ca")
@DIR
@click.option("--days", type=click.IntRange(min=1), default=3650, show_default=True, help="A new CA's life.")
def ca_command(directory: Path, days: int) -> None:
    """Make the CA (DIRECTORY/ca.pem, ca.key mode 600), or show the one there."""
    try:
        ca = Authority(directory, days=days)
    except (OSError, ValueError) as e:
        raise click.ClickException(str(e)) from None
    click.echo(json.dumps({"ca": str(ca.cert_path), "key": str(ca.key_path)}))


@group.command("etcd")
@DIR
@click.option("--name", required=True, help="The member's name (etcd --name).")
@HOSTS
@lifetime
def etcd_command(directory: Path, name: str, hosts: tuple[str, ...], days: int, renew_within: int) -> None:
    """An etcd member's certificate (server and peer; CN etcd-member): DIRECTORY/etcd-NAME.pem."""
    _names(name=name)
    _issue(directory, f"etcd-{name}", MEMBER_CN, (), hosts, days, renew_within)


@group.command("replica")
@DIR
@click.option("--ship", required=True)
@click.option("--id", "node_id", required=True)
@HOSTS
@lifetime
def replica_command(directory: Path, ship: str, node_id: str, hosts: tuple[str, ...], days: int,
                    renew_within: int) -> None:  # fmt: skip
    """A replica's certificate, DIRECTORY/SHIP@ID.pem: seguro://SHIP/replica/ID, CN seguro-SHIP."""
    _names(ship=ship, id=node_id)
    if "*" in ship or "@" in ship + node_id:
        raise click.UsageError("a replica belongs to one ship: --ship and --id take no '*' or '@'")
    names = (uri(ship, REPLICA, node_id),)
    _issue(directory, f"{ship}@{node_id}", ship_user(ship), names, hosts, days, renew_within)


@group.command("admin")
@DIR
@click.option("--name", required=True, help="Who it is for (in the certificate and the nodes' logs).")
@click.option("--ship", default="*", show_default=True, help="One ship, or * for every ship (etcd's root).")
@lifetime
def admin_command(directory: Path, name: str, ship: str, days: int, renew_within: int) -> None:
    """An operator's certificate: admin of SHIP on the nodes; in etcd, the ship's user (or root for *)."""
    _names(name=name, ship=ship)
    user = "root" if ship == "*" else ship_user(ship)
    label = "all" if ship == "*" else ship
    _issue(directory, f"admin-{label}-{name}", user, (uri(ship, ADMIN, name),), (), days, renew_within)
