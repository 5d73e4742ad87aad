"""The small CA behind `seguro tls` and `cluster up --tls`: what it refuses, and when it issues again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from seguro.cli import main
from seguro.node.authz import needs
from seguro.node.tls import ADMIN, REPLICA
from seguro.ops import cluster_tls
from seguro.ops.pki import Authority


def tls(*args: str) -> tuple[int, str]:
    done = CliRunner().invoke(main, ["tls", *args])
    assert done.exception is None or isinstance(done.exception, SystemExit), done.exception  # no traceback
    return done.exit_code, done.output


def test_half_a_ca_is_never_replaced_and_a_loose_or_junk_ca_is_refused(tmp_path: Path) -> None:
    pki = tmp_path / "pki"
    assert tls("ca", str(pki))[0] == 0
    key = (pki / "ca.key").read_bytes()
    (pki / "ca.pem").rename(tmp_path / "ca.pem.away")
    code, out = tls("ca", str(pki))
    assert code == 1 and "without the other" in out and (pki / "ca.key").read_bytes() == key
    (tmp_path / "ca.pem.away").rename(pki / "ca.pem")
    (pki / "ca.key").chmod(0o644)
    code, out = tls("replica", str(pki), "--ship", "zod", "--id", "n0")
    assert code == 1 and "chmod 600" in out and not (pki / "zod@n0.pem").exists()
    (pki / "ca.key").chmod(0o600)
    (pki / "ca.pem").write_text("junk")
    code, out = tls("ca", str(pki))
    assert code == 1 and "not PEM" in out


def test_bad_names_and_lifetimes_are_usage_errors(tmp_path: Path) -> None:
    pki = str(tmp_path / "pki")
    assert tls("ca", pki)[0] == 0
    bad = [
        ["replica", pki, "--ship", "zod/x", "--id", "n0"], ["replica", pki, "--ship", "", "--id", "n0"],
        ["etcd", pki, "--name", "a/b"], ["admin", pki, "--name", "ops", "--days", "10"],
    ]  # fmt: skip
    for args in bad:
        code, out = tls(*args)
        assert code == 2, (args, out)
    assert sorted(p.name for p in (tmp_path / "pki").iterdir()) == ["ca.key", "ca.pem"]


def test_a_certificate_with_no_names_or_a_key_not_its_own_is_handled(tmp_path: Path) -> None:
    pki = str(tmp_path / "pki")
    assert tls("ca", pki)[0] == 0
    first = json.loads(tls("etcd", pki, "--name", "m1")[1])  # no --host: no names at all
    again = json.loads(tls("etcd", pki, "--name", "m1")[1])
    assert first["issued"] and not again["issued"], "kept on a second run"
    other = Authority(tmp_path / "pki").issue("spare", "x")
    Path(again["key"]).write_bytes(other.key.read_bytes())  # a crash between writing key and certificate
    assert json.loads(tls("etcd", pki, "--name", "m1")[1])["issued"], "a mismatched pair is issued again"


def test_a_workdir_used_for_another_ship_gets_new_node_certificates(tmp_path: Path) -> None:
    cluster_tls.node_flags(tmp_path, "zod", "n0")
    cert = (tmp_path / "pki" / "node-n0.pem").read_bytes()
    cluster_tls.node_flags(tmp_path, "zod", "n0")
    assert (tmp_path / "pki" / "node-n0.pem").read_bytes() == cert, "kept for the same ship"
    cluster_tls.node_flags(tmp_path, "bus", "n0")
    ca = cluster_tls.authority(tmp_path)
    assert ca.fresh("node-n0", 1, "seguro-bus", ("seguro://bus/replica/n0",), cluster_tls.LOOPBACK)


@pytest.mark.parametrize(("method", "role"), [
    ("/seguro.v1.Admin/Status", None), ("/seguro.v1.Admin/Poke", ADMIN),
    ("/seguro.v1.Admin/SomethingNew", ADMIN), ("/seguro.v1.Replication/Push", REPLICA),
    ("/grpc.health.v1.Health/Check", None),
])  # fmt: skip
def test_admin_methods_take_an_admin_by_default(method: str, role: str | None) -> None:
    assert needs(method) == role
