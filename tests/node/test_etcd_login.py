"""Logging in to etcd as a user with a password, against a real TLS etcd with auth on: the user's role
reaches its ship's keys and no other's; a wrong password or a loose password file is refused; and when
etcd forgets every token (its members restarted), the adapter and the master watch log in again. The peer
port takes members' certificates only."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from seguro.cli.node import refused_login
from seguro.node import tls
from seguro.node.config import NodeConfig
from seguro.node.etcd.coordinator import CoordinationError, Coordinator
from seguro.node.tls import Login, TlsError, TlsFiles
from seguro.ops import etcd_auth
from seguro.ops.etcd_server import EtcdCluster, ssl_context
from seguro.ops.pki import Authority
from seguro.ops.ship import create_ship


def password_file(path: Path, password: str, mode: int = 0o600) -> Path:
    path.write_text(password + "\n")
    path.chmod(mode)
    return path


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[tuple[EtcdCluster, Authority]]:
    yield from _secured(tmp_path, ())


@pytest.fixture
def secured_short_tokens(tmp_path: Path) -> Iterator[tuple[EtcdCluster, Authority]]:
    """etcd forgets a simple token unused for 1 s (its default: 300 s)."""
    yield from _secured(tmp_path, ("--auth-token-ttl", "1"))


def _secured(tmp_path: Path, extra_args: tuple[str, ...]) -> Iterator[tuple[EtcdCluster, Authority]]:
    ca = Authority(tmp_path / "pki")
    cluster = EtcdCluster(tmp_path / "etcd", members=1, authority=ca, extra_args=extra_args).start()
    try:
        root = cluster.root_tls
        assert root is not None
        etcd_auth.enable(cluster.endpoints, root)
        for ship in ("zod", "nec"):
            etcd_auth.grant_ship(cluster.endpoints, root, ship)
        tls.configure(root)
        create_ship(cluster.endpoints, "zod")
        create_ship(cluster.endpoints, "nec", "~nec")
        etcd_auth.add_login(cluster.endpoints, root, "zod", Login("zod-ops", "correct horse"))
        tls.configure(ca.issue("nobody", "nobody"))  # a certificate of the CA whose CN is no etcd user
        yield cluster, ca
    finally:
        tls.configure(None)
        tls.configure_login(None)
        cluster.stop()


def test_a_password_user_reaches_its_ship_only_and_logs_in_again(tmp_path: Path, secured) -> None:
    cluster, _ = secured
    with Coordinator(cluster.endpoints, "zod", retry_budget_s=1.0) as coord, pytest.raises(CoordinationError):
        coord.genesis()  # the certificate alone is nobody
    tls.configure_login(Login.of("zod-ops", password_file(tmp_path / "pw", "correct horse")))
    with Coordinator(cluster.endpoints, "zod", retry_budget_s=10.0) as coord:
        assert coord.genesis() is not None
        seen = []
        watch = coord.watch_master(lambda info, revision: seen.append(revision), poll_interval_s=0.2)
        deadline = time.monotonic() + 10
        while not seen and time.monotonic() < deadline:
            time.sleep(0.05)
        assert seen, "the watch logged in and read the master key"
        cluster.restart(0)  # every token etcd issued is gone
        assert coord.genesis() is not None, "logged in again"
        lease = coord.grant_lease(5)
        coord.keepalive(lease)
        watch.cancel()
    with (
        Coordinator(cluster.endpoints, "nec", retry_budget_s=1.0) as other,
        pytest.raises(CoordinationError, match="permission denied"),
    ):
        other.genesis()


def test_a_keepalive_logs_in_again_when_its_check_finds_the_token_gone(
    tmp_path: Path, secured_short_tokens
) -> None:
    """etcd checks no token on a keepalive, but does on the read that confirms it. A lease connection never
    retries (retry_budget_s 0): a token etcd has dropped must still cost no renewal."""
    cluster, _ = secured_short_tokens
    tls.configure_login(Login.of("zod-ops", password_file(tmp_path / "pw", "correct horse")))
    with Coordinator(cluster.endpoints, "zod", timeout_s=2.0, retry_budget_s=0.0) as coord:
        lease = coord.grant_lease(10)
        assert coord.keepalive(lease) > 0
        time.sleep(2.5)  # the token lapses
        assert coord.keepalive(lease) > 0, "logged in again within the keepalive"


def test_a_wrong_password_or_a_loose_file_is_refused(tmp_path: Path, secured) -> None:
    cluster, _ = secured
    tls.configure_login(Login.of("zod-ops", password_file(tmp_path / "bad", "wrong")))
    with (
        Coordinator(cluster.endpoints, "zod", retry_budget_s=1.0) as coord,
        pytest.raises(CoordinationError, match="authentication failed") as e,
    ):
        coord.genesis()
    assert "wrong" not in str(e.value), "no password in errors"
    with pytest.raises(TlsError, match="readable by its owner only"):
        Login.of("zod-ops", password_file(tmp_path / "loose", "correct horse", 0o644))
    with pytest.raises(TlsError, match="both the user and the password file"):
        Login.of("zod-ops", None)
    assert "correct" not in repr(Login("u", "correct horse"))


def test_the_peer_port_takes_only_members(secured) -> None:
    """A replica's or operator's certificate of the same CA cannot talk raft to a member."""
    cluster, ca = secured
    peer = cluster._members[0].peer_url
    member = files_of(ca, "etcd-n1")
    replica = ca.issue("zod@n0", "seguro-zod", uris=("seguro://zod/replica/n0",))
    assert peer_answers(peer, member)
    assert not peer_answers(peer, replica)


def files_of(ca: Authority, name: str) -> TlsFiles:
    return TlsFiles(ca.cert_path, ca.root / f"{name}.pem", ca.root / f"{name}.key")


def peer_answers(url: str, files: TlsFiles) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/version", timeout=3, context=ssl_context(files)) as reply:
            return reply.status == 200
    except (OSError, urllib.error.URLError):
        return False


def test_a_node_with_a_wrong_password_stops_at_start(tmp_path: Path, secured) -> None:
    cluster, ca = secured
    files = files_of(ca, "nobody")
    settings = {"node_id": "n9", "ship": "zod", "data_dir": tmp_path / "d", "etcd": cluster.endpoints,
                "tls_ca": str(files.ca), "tls_cert": str(files.cert), "tls_key": str(files.key),
                "etcd_user": "zod-ops"}  # fmt: skip
    wrong = NodeConfig.load(
        None, {**settings, "etcd_password_file": str(password_file(tmp_path / "w", "no"))}
    )
    tls.configure_login(wrong.login())
    with pytest.raises(click.UsageError, match="etcd_user 'zod-ops': .*authentication failed"):
        refused_login(wrong)
    right = NodeConfig.load(
        None, {**settings, "etcd_password_file": str(password_file(tmp_path / "r", "correct horse"))}
    )
    tls.configure_login(right.login())
    refused_login(right)  # logs in: no error


def test_a_certificate_is_issued_again_when_its_names_or_ca_change(tmp_path: Path) -> None:
    ca = Authority(tmp_path / "pki")
    ca.issue("etcd-n1", "etcd-member", hosts=("127.0.0.1",), days=100)
    assert ca.fresh("etcd-n1", 30, "etcd-member", hosts=("127.0.0.1",))
    assert not ca.fresh("etcd-n1", 200, "etcd-member", hosts=("127.0.0.1",)), "expires within 200 days"
    assert not ca.fresh("etcd-n1", 30, "n1", hosts=("127.0.0.1",)), "another CN"
    assert not ca.fresh("etcd-n1", 30, "etcd-member", hosts=("127.0.0.2",)), "another host"
    other = Authority(tmp_path / "other")  # same CA name, another key
    (other.root / "etcd-n1.pem").write_bytes((ca.root / "etcd-n1.pem").read_bytes())
    assert not other.fresh("etcd-n1", 30, "etcd-member", hosts=("127.0.0.1",)), "signed by another CA"
