"""etcd's own access control, for a cluster serving TLS with client certificates (`cluster up --tls`):
a root user for operators, and per ship a user and a role that may read and write only under the ship's
prefix (`/seguro/SHIP/`). etcd takes a client certificate's CN as its user, so a replica's certificate
(CN `seguro-SHIP`) reaches its own ship's keys and nothing else; users have no passwords.

Set up with etcdctl (etcd-client), as an operator would by hand; password users (`add_login`), for
clients that log in instead, through etcd's API."""

from __future__ import annotations

import os
import subprocess

import grpc
from pyetcd import etcdrpc

from seguro.node.tls import Login, TlsFiles

ETCDCTL = "etcdctl"


class EtcdAuthError(RuntimeError):
    """etcdctl refused a step of the setup; the message has its output."""


def ship_user(ship: str) -> str:
    return f"seguro-{ship}"


def _ctl_env() -> dict[str, str]:
    """The caller's environment (etcdctl is found as etcd is), without ETCDCTL_* settings that would
    override the flags."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL_")}, "ETCDCTL_API": "3"}


def _ctl(endpoints: str, root: TlsFiles, *args: str) -> bool:
    """Run one etcdctl step; True when it changed something (False: it was there already)."""
    command = [ETCDCTL, "--endpoints", endpoints, "--cacert", str(root.ca), "--cert", str(root.cert),
               "--key", str(root.key), *args]  # fmt: skip
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=30,
                              env=_ctl_env())  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as e:
        raise EtcdAuthError(f"etcdctl {' '.join(args)}: {e}") from None
    if "already exists" in done.stderr or "already granted" in done.stderr:
        return False
    if done.returncode != 0:
        raise EtcdAuthError(f"etcdctl {' '.join(args)}: {done.stderr.strip() or done.stdout.strip()}")
    return True


def enable(endpoints: str, root: TlsFiles) -> bool:
    """A root user (the CN of `root`'s certificate must be `root`), then authentication on (etcd 3.4 has
    no way to ask whether it is: enabling again is harmless). True when the root user was new."""
    made = _ctl(endpoints, root, "user", "add", "root", "--no-password")
    _ctl(endpoints, root, "user", "grant-role", "root", "root")
    _ctl(endpoints, root, "auth", "enable")
    return made


def grant_ship(endpoints: str, root: TlsFiles, ship: str) -> bool:
    """The ship's user (ship_user: the CN its replicas' certificates carry) and its role, read-write on
    the ship's prefix only. True when the role was new."""
    user = ship_user(ship)
    made = _ctl(endpoints, root, "role", "add", user)
    _ctl(endpoints, root, "role", "grant-permission", user, "readwrite", f"/seguro/{ship}/", "--prefix=true")
    _ctl(endpoints, root, "user", "add", user, "--no-password")
    _ctl(endpoints, root, "user", "grant-role", user, user)
    return made


def add_login(endpoints: str, root: TlsFiles, ship: str, login: Login) -> bool:
    """A password user with the ship's role (for clients that log in rather than present the ship's CN).
    Through etcd's API as root, not etcdctl, whose non-interactive prompt would cut a password at its
    first space and whose flag would show it in the process list. True when the user was new."""
    url = endpoints.split(",")[0].strip()
    with grpc.secure_channel(url.split("://")[-1], root.channel_credentials()) as channel:
        auth = etcdrpc.AuthStub(channel)
        try:
            auth.UserAdd(etcdrpc.AuthUserAddRequest(name=login.user, password=login.password), timeout=10)
            made = True
        except grpc.RpcError as e:
            if "already exists" not in (e.details() or ""):
                raise EtcdAuthError(f"adding etcd user {login.user}: {e.details()}") from None
            made = False
        try:
            grant = etcdrpc.AuthUserGrantRoleRequest(user=login.user, role=ship_user(ship))
            auth.UserGrantRole(grant, timeout=10)
        except grpc.RpcError as e:
            raise EtcdAuthError(f"granting {ship_user(ship)} to {login.user}: {e.details()}") from None
    return made
