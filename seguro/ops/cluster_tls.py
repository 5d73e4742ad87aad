"""`seguro cluster up --tls`: a throwaway CA in WORKDIR/pki; etcd serving TLS with client certificates
and auth on (a user per ship, limited to its prefix); every node with its replica certificate; and an
operator's certificate (etcd's root, admin of every ship) for the commands, which `cluster up` prints."""

from __future__ import annotations

from pathlib import Path

from seguro.node.tls import ADMIN, REPLICA, TlsFiles, uri
from seguro.ops import etcd_auth
from seguro.ops.etcd_server import EtcdCluster
from seguro.ops.pki import Authority

LOOPBACK = ("127.0.0.1", "localhost")


CA_DAYS = 3650  # the CA outlives its certificates, which are issued again when stale (`Authority.fresh`)


def authority(workdir: Path) -> Authority:
    return Authority(workdir / "pki", days=CA_DAYS)


def secure_etcd(etcd: EtcdCluster, ship: str) -> None:
    """Auth on, and the ship's user (its replicas' certificates' CN) limited to its prefix."""
    if etcd.root_tls is None:
        raise ValueError("secure_etcd needs an etcd cluster started with a certificate authority")
    etcd_auth.enable(etcd.endpoints, etcd.root_tls)
    etcd_auth.grant_ship(etcd.endpoints, etcd.root_tls, ship)


def operator(workdir: Path) -> TlsFiles:
    """The operator's certificate: etcd's root user, and admin of every ship on the nodes."""
    ca, names = authority(workdir), (uri("*", ADMIN, "operator"),)
    if ca.fresh("operator", 1, "root", names):
        return TlsFiles(ca.cert_path, ca.root / "operator.pem", ca.root / "operator.key")
    return ca.issue("operator", "root", uris=names)


def node_flags(workdir: Path, ship: str, node_id: str) -> list[str]:
    """A node's --tls-* flags, its certificate issued when missing or stale (seguro://SHIP/replica/ID, CN
    the ship's etcd user, valid for 127.0.0.1): a workdir used before for another ship gets new ones."""
    ca, name, user = authority(workdir), f"node-{node_id}", etcd_auth.ship_user(ship)
    cert, key = ca.root / f"{name}.pem", ca.root / f"{name}.key"
    names = (uri(ship, REPLICA, node_id),)
    if not ca.fresh(name, 1, user, names, LOOPBACK):
        ca.issue(name, user, uris=names, hosts=LOOPBACK)
    return ["--tls-ca", str(ca.cert_path), "--tls-cert", str(cert), "--tls-key", str(key)]
