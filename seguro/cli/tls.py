"""`seguro tls`: a small certificate authority for a cluster (seguro/ops/pki.py), kept in a directory:
certificates for etcd members, replicas and operators, named as node/tls.py reads them. For production,
an organisation's own CA does as well, if its certificates carry the same names."""

from __future__ import annotations

import json
from pathlib import Path

import click

from seguro.node.tls import ADMIN, REPLICA, TlsFiles, uri
from seguro.ops.etcd_auth import ship_user
from seguro.ops.pki import Authority

DIR = click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
HOSTS = click.option("--host", "hosts", multiple=True, help="An IP address or DNS name it serves (repeat).")


def _say(files: TlsFiles) -> None:
    click.echo(json.dumps({"ca": str(files.ca), "cert": str(files.cert), "key": str(files.key)}))


@click.group("tls")
def group() -> None:
    """Certificates for etcd members, replicas and operators, from a CA kept in DIRECTORY."""


@group.command("ca")
@DIR
def ca_command(directory: Path) -> None:
    """Make the CA (DIRECTORY/ca.pem, ca.key mode 600), or show the one there."""
    ca = Authority(directory)
    click.echo(json.dumps({"ca": str(ca.cert_path), "key": str(ca.key_path)}))


@group.command("etcd")
@DIR
@click.option("--name", required=True, help="The member's name (etcd --name).")
@HOSTS
def etcd_command(directory: Path, name: str, hosts: tuple[str, ...]) -> None:
    """An etcd member's certificate (server and peer): DIRECTORY/etcd-NAME.pem."""
    _say(Authority(directory).issue(f"etcd-{name}", name, hosts=hosts))


@group.command("replica")
@DIR
@click.option("--ship", required=True)
@click.option("--id", "node_id", required=True)
@HOSTS
def replica_command(directory: Path, ship: str, node_id: str, hosts: tuple[str, ...]) -> None:
    """A replica's certificate: seguro://SHIP/replica/ID, CN the ship's etcd user (seguro-SHIP)."""
    names = (uri(ship, REPLICA, node_id),)
    _say(Authority(directory).issue(f"{ship}-{node_id}", ship_user(ship), names, hosts))


@group.command("admin")
@DIR
@click.option("--name", required=True, help="Who it is for (in the certificate and the nodes' logs).")
@click.option("--ship", default="*", show_default=True, help="One ship, or * for every ship (etcd's root).")
def admin_command(directory: Path, name: str, ship: str) -> None:
    """An operator's certificate: admin of SHIP on the nodes; in etcd, the ship's user (or root for *)."""
    user = "root" if ship == "*" else ship_user(ship)
    label = "all" if ship == "*" else ship
    _say(Authority(directory).issue(f"admin-{label}-{name}", user, (uri(ship, ADMIN, name),)))
