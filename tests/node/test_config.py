"""Node configuration: wrong settings get a clear error naming the setting, before anything starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from seguro.node.config import ConfigError, NodeConfig
from seguro.ops.pki import Authority

BASE = {"node_id": "n0", "ship": "zod", "data_dir": "/tmp/x", "etcd": "http://127.0.0.1:2379"}


def test_flags_override_the_file(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    path.write_text('node_id = "n0"\nship = "zod"\ndata_dir = "/d"\netcd = ["127.0.0.1:1", "127.0.0.1:2"]\n'
                    "lease_ttl_s = 5\n")  # fmt: skip
    cfg = NodeConfig.load(path, {"lease_ttl_s": 4, "udp": None})
    assert cfg.lease_ttl_s == 4 and cfg.etcd == ("127.0.0.1:1", "127.0.0.1:2") and cfg.data_dir == Path("/d")


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"lease_ttl_s": 1}, "lease_ttl_s must be >= 2"),
        ({"ship": "Zod/1"}, "ship must be"),
        ({"etcd": ""}, "etcd endpoints"),
        ({"udp": "nowhere"}, "udp must look like HOST:PORT"),
        ({"ack_replicas": -1}, "ack_replicas must be >= 0"),
        ({"lease_margin_s": 2.0}, "lease_margin_s must be in (0, lease_ttl_s/2)"),
        ({"etcd_retain_events": -5}, "etcd_retain_events must be >= 0"),
        ({"max_event_bytes": 10}, "max_event_bytes must be in"),
        ({"colour": "blue"}, "unknown settings ['colour']"),
        ({"grpc": "0.0.0.0:7000"}, "set advertise_grpc (--advertise-grpc HOST:PORT)"),
        ({"grpc": "[::]:7000"}, "set advertise_grpc"),
        ({"grpc": "0.0.0.0:7000", "advertise_grpc": "0.0.0.0:7000"}, "advertise_grpc must be an address"),
        ({"advertise_grpc": "nowhere"}, "advertise_grpc must look like HOST:PORT"),
        ({"who": "~zod"}, "unknown settings ['who']"),
        ({"nofailover": "yes"}, "nofailover must be bool, got 'yes'"),
        ({"galaxy_domain": "urbit.org/x"}, "galaxy_domain must be a DNS domain"),
        ({"galaxy_domain": ""}, "galaxy_domain must be a DNS domain"),
        ({"follow_pier": "/nonexistent/pier"}, "is not a directory"),
        ({"follow_pier": "/tmp", "runtime": "none"}, "exclude each other"),
        ({"lease_ttl_s": "three"}, "lease_ttl_s must be int, got 'three'"),
        ({"lease_margin_s": True}, "lease_margin_s must be int or float"),
        ({"grpc": 7000}, "grpc must be str"),
        ({"node_id": 5}, "node_id must be a string, got 5"),
        ({"data_dir": 5}, "data_dir must be a path, got 5"),
        ({"etcd": 5}, "etcd must be a string or a list of strings, got 5"),
        ({"runtime": 5}, "runtime must be a string or a list of strings, got 5"),
        ({"runtime": ["serf", 1]}, "runtime must be a string or a list of strings"),
        ({"etcd": "https://10.0.0.1:2379"}, "https:// needs TLS files"),
        ({"etcd": ["http://a:1", "HTTPS://b:2"]}, "'HTTPS://b:2': https:// needs TLS files"),
        ({"etcd": "unix://a:1"}, "the scheme must be http:// or https://"),
        ({"etcd": "http://user:secret@a:1"}, "credentials in the URL are refused"),
        ({"tls_ca": "/etc/ca.pem"}, "TLS needs all of the CA bundle, the certificate and its key"),
        ({"runtime_timeout_s": float("nan")}, "runtime_timeout_s must be a finite number, got nan"),
        ({"promotion_timeout_s": float("inf")}, "promotion_timeout_s must be a finite number"),
        ({"failover_grace_s": float("nan")}, "failover_grace_s must be a finite number"),
        ({"follow_pier": "/tmp", "nofailover": True}, "follow_pier and nofailover exclude each other"),
        ({"grpc": "127.0.0.1:7000", "http": "127.0.0.1:7000"}, "http and grpc need different TCP ports"),
        ({"grpc": "0.0.0.0:7000", "advertise_grpc": "h:0", "http": "127.0.0.1:7000"}, "different TCP ports"),
        ({"snapshot_every": 0}, "snapshot_every must be > 0"),
        ({"runtime_liveness_s": 0}, "runtime_liveness_s must be > 0"),
        ({"failover_priority": -1}, "failover_priority must be >= 0"),
        ({"replica_max_lag": -1}, "replica_max_lag must be >= 0"),
        ({"etcd_retain_bytes": -1}, "etcd_retain_bytes must be >= 0"),
        ({"http": "nowhere"}, "http must look like HOST:PORT"),
    ],
)
def test_wrong_settings_are_named(override: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        NodeConfig.load(None, {**BASE, **override})
    assert message in str(caught.value)


def test_a_runtime_command_is_split_like_a_shell_line(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    path.write_text('runtime = "/opt/my vere/urbit-worker serf --flag"\n')
    cfg = NodeConfig.load(path, {**BASE})
    assert cfg.runtime == ("/opt/my", "vere/urbit-worker", "serf", "--flag")
    cfg = NodeConfig.load(path, {**BASE, "runtime": "'/opt/my vere/urbit-worker' serf"})
    assert cfg.runtime == ("/opt/my vere/urbit-worker", "serf")
    assert NodeConfig.load(None, {**BASE, "runtime": ["a b", "c"]}).runtime == ("a b", "c")


def test_missing_settings_are_listed() -> None:
    with pytest.raises(ConfigError, match="missing settings: ship, data_dir, etcd"):
        NodeConfig.load(None, {"node_id": "n0"})


def test_a_broken_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    path.write_text("node_id = ")
    with pytest.raises(ConfigError, match="cannot read config"):
        NodeConfig.load(path, {})
    path.write_bytes(b"\xff\xfe not utf-8")
    with pytest.raises(ConfigError, match="cannot read config"):
        NodeConfig.load(path, {})


def test_the_advertised_grpc_address_is_what_replicas_dial() -> None:
    """Found in review: a node bound to 0.0.0.0 published 0.0.0.0:PORT, so the master dialled itself."""
    wild = NodeConfig.load(
        None, {**BASE, "grpc": "0.0.0.0:0", "advertise_grpc": "10.0.0.7:0", "insecure": True}
    )
    assert wild.advertised_grpc(bound_port=7001) == "10.0.0.7:7001"
    fixed = NodeConfig.load(
        None, {**BASE, "grpc": "0.0.0.0:7000", "advertise_grpc": "node1.example:7000", "insecure": True}
    )
    assert fixed.advertised_grpc(bound_port=7000) == "node1.example:7000"
    assert NodeConfig.load(None, {**BASE, "grpc": "127.0.0.1:0"}).advertised_grpc(bound_port=7002) == (
        "127.0.0.1:7002"
    )


def test_switches_take_booleans() -> None:
    """Found in e2e: every bool setting (nofailover, galaxy_local) was refused as 'must be bool'."""
    cfg = NodeConfig.load(None, {**BASE, "nofailover": True, "galaxy_local": False})
    assert cfg.nofailover is True and cfg.galaxy_local is False
    # and the optional one (default None: decided by the runtime), refused as "must be NoneType" before
    assert NodeConfig.load(None, {**BASE, "ames_filter": True}).ames_filter is True
    with pytest.raises(ConfigError, match="ames_filter must be bool, got 'on'"):
        NodeConfig.load(None, {**BASE, "ames_filter": "on"})


def test_a_data_dir_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match="data_dir .* exists and is not a directory"):
        NodeConfig.load(None, {**BASE, "data_dir": tmp_path / "file"})


def test_an_https_etcd_url_is_refused_from_the_file_too(tmp_path: Path) -> None:
    """Without TLS files an https:// URL would have been dialled in plain text."""
    path = tmp_path / "node.toml"
    path.write_text('etcd = ["https://10.0.0.1:2379"]\n')
    base = {k: v for k, v in BASE.items() if k != "etcd"}
    with pytest.raises(ConfigError, match="https:// needs TLS files"):
        NodeConfig.load(path, base)


def test_plaintext_grpc_beyond_loopback_must_be_asked_for() -> None:
    beyond = {**BASE, "grpc": "10.0.0.7:7000"}
    with pytest.raises(ConfigError, match="in plaintext, beyond loopback: set tls_ca"):
        NodeConfig.load(None, beyond)
    assert NodeConfig.load(None, {**beyond, "insecure": True}).insecure
    for loopback in ("127.0.0.2:7000", "[::1]:7000", "localhost:7000"):
        NodeConfig.load(None, {**BASE, "grpc": loopback})


def test_tls_files_make_etcd_https_and_a_loose_key_is_refused(tmp_path: Path) -> None:
    files = Authority(tmp_path / "pki").issue("n0", "seguro-zod", uris=("seguro://zod/replica/n0",))
    tls = {"tls_ca": str(files.ca), "tls_cert": str(files.cert), "tls_key": str(files.key)}
    cfg = NodeConfig.load(None, {**BASE, **tls, "etcd": "https://10.0.0.1:2379,10.0.0.2:2379"})
    assert cfg.tls() == files
    with pytest.raises(ConfigError, match="with TLS files, etcd URLs must be https://"):
        NodeConfig.load(None, {**BASE, **tls, "etcd": "http://10.0.0.1:2379"})
    other = Authority(tmp_path / "pki").issue("n1", "seguro-zod")
    with pytest.raises(ConfigError, match="is not the key of certificate"):
        NodeConfig.load(None, {**BASE, **tls, "tls_key": str(other.key), "etcd": "https://10.0.0.1:2379"})
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate")
    with pytest.raises(ConfigError, match="not PEM certificates and an unencrypted PEM key"):
        NodeConfig.load(None, {**BASE, **tls, "tls_ca": str(garbage), "etcd": "https://10.0.0.1:2379"})
    files.key.chmod(0o640)
    with pytest.raises(ConfigError, match="must be readable by its owner only"):
        NodeConfig.load(None, {**BASE, **tls, "etcd": "https://10.0.0.1:2379"})


def test_ports_of_different_protocols_or_hosts_may_be_equal() -> None:
    cfg = NodeConfig.load(None, {**BASE, "grpc": "127.0.0.1:7000", "udp": "127.0.0.1:7000"})
    assert cfg.udp_hostport == cfg.grpc_hostport
    NodeConfig.load(None, {**BASE, "grpc": "127.0.0.1:7000", "http": "127.0.0.2:7000"})
    NodeConfig.load(None, {**BASE, "grpc": "127.0.0.1:0", "http": "127.0.0.1:0"})
