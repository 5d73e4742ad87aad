"""A node's configuration: from a TOML file and/or flags, checked before anything starts."""

from __future__ import annotations

import ipaddress
import math
import re
import shlex
import tomllib
from collections.abc import Callable
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path

from seguro.core.config import Config
from seguro.node.etcd import sealing
from seguro.node.etcd.coordinator import parse_endpoints
from seguro.node.etcd.sealing import Keyring
from seguro.node.tls import Login, TlsError, TlsFiles
from seguro.urbit.launch import launch

DEFAULT_MAX_EVENT_BYTES = 64 * 1024 * 1024
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
WILDCARD_HOSTS = ("0.0.0.0", "::", "[::]", "*")
_LABEL = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
_DOMAIN = re.compile(rf"(?=.{{1,240}}$)({_LABEL}\.)*{_LABEL}", re.I)


class ConfigError(ValueError):
    """The configuration is wrong; the message says which setting and why."""


def parse_hostport(what: str, value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ConfigError(f"{what} must look like HOST:PORT, got {value!r}")
    return host, int(port)


def _doc(flag: str, doc: str) -> dict[str, str]:
    """A setting's flag of `seguro node run` and its one-line description (docs/configuration.md)."""
    return {"flag": flag, "doc": doc}


@dataclass(frozen=True)
class NodeConfig:
    """Every setting of a node: a key of its TOML file and a flag of `seguro node run` (flags win).
    docs/configuration.md is generated from here: `python -m seguro.node.config_doc`."""

    node_id: str = field(metadata=_doc("--id", "This replica's id, unique per ship (a-z 0-9 . _ -)."))
    ship: str = field(metadata=_doc("--ship", "The ship's name in etcd (a-z 0-9 . _ -)."))
    data_dir: Path = field(metadata=_doc("--data", "Data directory: DIR/log is the log, DIR/pier the ship."))
    etcd: tuple[str, ...] = field(metadata=_doc(
        "--etcd", "etcd client URLs: http://, https:// (with tls_* set) or bare HOST:PORT (a list, or one "
        "comma-separated string)."
    ))  # fmt: skip
    grpc: str = field(default="127.0.0.1:0", metadata=_doc(
        "--grpc", "HOST:PORT of the replication/admin gRPC server (port 0: any free port)."
    ))  # fmt: skip
    udp: str = field(default="127.0.0.1:0", metadata=_doc(
        "--udp", "HOST:PORT of the ship's Ames UDP socket."
    ))  # fmt: skip
    advertise_grpc: str = field(default="", metadata=_doc(
        "--advertise-grpc", "HOST:PORT other replicas dial (port 0: the bound port); required when grpc "
        "binds every interface. Empty: the grpc address."
    ))  # fmt: skip
    lease_ttl_s: int = field(default=3, metadata=_doc(
        "--ttl", "The master's etcd lease TTL in seconds (>= 2, etcd's minimum)."
    ))  # fmt: skip
    lease_margin_s: float = field(default=0.75, metadata=_doc(
        "--lease-margin", "A master counts its lease as over this many seconds before the TTL ends (clock "
        "safety), in (0, TTL/2)."
    ))  # fmt: skip
    ack_replicas: int = field(default=0, metadata=_doc(
        "--ack-replicas", "Followers that must hold an event before its effects leave (>= 0). Not checked "
        "against the replica count (one node cannot know it): with fewer followers, the master waits."
    ))  # fmt: skip
    max_event_bytes: int = field(default=DEFAULT_MAX_EVENT_BYTES, metadata=_doc(
        "--max-event-bytes", "Largest event accepted, in bytes (1 KiB to 1 GiB)."
    ))  # fmt: skip
    runtime: tuple[str, ...] = field(default=(), metadata=_doc(
        "--runtime", "ship (the reference ship; empty means it), ship2, vere3:PATH, vere4:PATH, none (a "
        "log-only replica), or a protocol-1 command line (one shell-split string, or a list of words)."
    ))  # fmt: skip
    galaxy_domain: str = field(default="urbit.org", metadata=_doc(
        "--galaxy-domain", "Galaxies are GALAXY.DOMAIN in DNS (vere's -H, --dns-root, or %turf)."
    ))  # fmt: skip
    galaxy_local: bool = field(default=False, metadata=_doc(
        "--galaxy-local/--galaxy-dns", "Galaxies at 127.0.0.1:31337+g, no DNS (vere's -L)."
    ))  # fmt: skip
    ames_filter: bool | None = field(default=None, metadata=_doc(
        "--ames-filter/--no-ames-filter", "Drop (and count) datagrams vere never makes events of. "
        "Unset: on under vere, off for the reference ship."
    ))  # fmt: skip
    follow_pier: str = field(default="", metadata=_doc(
        "--follow-pier", "A running vere's pier whose log this node commits (as master); it runs no ship. "
        "Excludes runtime and nofailover."
    ))  # fmt: skip
    snapshot_every: int = field(default=5000, metadata=_doc(
        "--snapshot-every", "Committed events between runtime snapshots (> 0)."
    ))  # fmt: skip
    etcd_retain_events: int = field(default=100_000, metadata=_doc(
        "--etcd-retain-events", "Committed events kept in etcd (0: never trim)."
    ))  # fmt: skip
    etcd_retain_bytes: int = field(default=256 << 20, metadata=_doc(
        "--etcd-retain-bytes", "At most these bytes of them (0: no bound)."
    ))  # fmt: skip
    nofailover: bool = field(default=False, metadata=_doc(
        "--nofailover/--failover", "Never campaign for master (a witness)."
    ))  # fmt: skip
    failover_priority: int = field(default=1, metadata=_doc(
        "--failover-priority", "Among replicas as far along, higher goes first (>= 0)."
    ))  # fmt: skip
    failover_grace_s: float = field(default=0.0, metadata=_doc(
        "--failover-grace", "Seconds to defer to better replicas while there is no master (0: twice the TTL)."
    ))  # fmt: skip
    promotion_timeout_s: float = field(default=300.0, metadata=_doc(
        "--promotion-timeout", "A new master not serving after this many seconds resigns (> 0)."
    ))  # fmt: skip
    runtime_timeout_s: float = field(default=30.0, metadata=_doc(
        "--runtime-timeout", "Seconds the runtime has to answer a control request: start, save, peek (> 0)."
    ))  # fmt: skip
    runtime_liveness_s: float = field(default=3600.0, metadata=_doc(
        "--runtime-liveness", "Seconds one event may run before the runtime counts as hung (> 0)."
    ))  # fmt: skip
    http: str = field(default="", metadata=_doc(
        "--http", "HOST:PORT of GET /health, /primary, /replica and /metrics (empty: no HTTP endpoint)."
    ))  # fmt: skip
    replica_max_lag: int = field(default=1000, metadata=_doc(
        "--replica-max-lag", "/replica answers 200 only within this many events of the commit (>= 0)."
    ))  # fmt: skip
    tls_ca: str = field(default="", metadata=_doc(
        "--tls-ca", "CA bundle (PEM) that peers', operators' and etcd's certificates must chain to; with "
        "tls_cert and tls_key: mutual TLS on the gRPC port and to etcd (https:// URLs). Empty: plaintext."
    ))  # fmt: skip
    tls_cert: str = field(default="", metadata=_doc(
        "--tls-cert", "This replica's certificate (PEM): URI SAN seguro://SHIP/replica/ID; CN: its etcd user."
    ))  # fmt: skip
    tls_key: str = field(default="", metadata=_doc(
        "--tls-key", "The certificate's private key (PEM, mode 600: a looser mode is refused)."
    ))  # fmt: skip
    etcd_user: str = field(default="", metadata=_doc(
        "--etcd-user", "An etcd user to log in as (with etcd_password_file), instead of or beside the TLS "
        "certificate's CN; its token is renewed whenever etcd stops taking it."
    ))  # fmt: skip
    etcd_password_file: str = field(default="", metadata=_doc(
        "--etcd-password-file", "A file holding etcd_user's password (mode 600: a looser mode is refused)."
    ))  # fmt: skip
    insecure: bool = field(default=False, metadata=_doc(
        "--insecure/--no-insecure", "Serve gRPC in plaintext on a non-loopback address (no tls_* files): "
        "anyone who reaches it can push, fetch, poke and depose the master. A trusted private network only."
    ))  # fmt: skip
    event_keys: str = field(default="", metadata=_doc(
        "--event-keys", "The ship's keyring file (mode 600): events are sealed in etcd with AES-GCM under "
        "its current key, and read under any of its keys (`seguro keys`). Empty: plaintext in etcd."
    ))  # fmt: skip

    def __post_init__(self) -> None:
        for what, name in (("node_id", self.node_id), ("ship", self.ship)):
            if not _NAME.match(name):
                raise ConfigError(f"{what} must be 1-63 of a-z 0-9 . _ - (alphanumeric first), got {name!r}")
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"{f.name} must be a finite number, got {value}")
        if self.data_dir.exists() and not self.data_dir.is_dir():
            raise ConfigError(f"data_dir {str(self.data_dir)!r} exists and is not a directory")
        if not self.etcd:
            raise ConfigError("etcd endpoints are required (e.g. http://127.0.0.1:2379)")
        files = self.tls()
        try:
            parse_endpoints(list(self.etcd), secure=files is not None)
        except ValueError as e:
            raise ConfigError(f"etcd endpoints: {e}") from None
        host, port = parse_hostport("grpc", self.grpc)
        parse_hostport("udp", self.udp)
        if self.advertise_grpc:
            advertised, _ = parse_hostport("advertise_grpc", self.advertise_grpc)
            if advertised in WILDCARD_HOSTS:
                raise ConfigError(f"advertise_grpc must be an address replicas can dial, got {advertised}")
        elif host in WILDCARD_HOSTS:
            raise ConfigError(
                f"grpc binds {self.grpc} (every interface), which other replicas cannot dial: set "
                "advertise_grpc (--advertise-grpc HOST:PORT) to this node's address on the replicas' network"
            )
        if self.lease_ttl_s < 2:
            raise ConfigError(f"lease_ttl_s must be >= 2 (etcd's minimum), got {self.lease_ttl_s}")
        if not 0 < self.lease_margin_s < self.lease_ttl_s / 2:
            raise ConfigError(f"lease_margin_s must be in (0, lease_ttl_s/2), got {self.lease_margin_s}")
        if self.ack_replicas < 0:
            raise ConfigError(f"ack_replicas must be >= 0, got {self.ack_replicas}")
        if self.etcd_retain_events < 0:
            raise ConfigError(
                f"etcd_retain_events must be >= 0 (0 = never trim), got {self.etcd_retain_events}"
            )
        if self.etcd_retain_bytes < 0:
            raise ConfigError(f"etcd_retain_bytes must be >= 0 (0: no bound), got {self.etcd_retain_bytes}")
        if self.http:
            http_host, http_port = parse_hostport("http", self.http)
            overlap = http_host == host or http_host in WILDCARD_HOSTS or host in WILDCARD_HOSTS
            if http_port and http_port == port and overlap:
                raise ConfigError(f"http and grpc need different TCP ports, got {self.http} and {self.grpc}")
        if self.replica_max_lag < 0:
            raise ConfigError(f"replica_max_lag must be >= 0, got {self.replica_max_lag}")
        if self.snapshot_every <= 0:
            raise ConfigError(f"snapshot_every must be > 0, got {self.snapshot_every}")
        if self.failover_priority < 0:
            raise ConfigError(f"failover_priority must be >= 0, got {self.failover_priority}")
        if self.follow_pier and not Path(self.follow_pier).is_dir():
            raise ConfigError(f"follow_pier {self.follow_pier!r} is not a directory (a pier to follow)")
        if self.follow_pier and self.runtime:
            raise ConfigError("follow_pier and runtime exclude each other: a pier's follower runs no ship")
        if self.follow_pier and self.nofailover:
            raise ConfigError("follow_pier and nofailover exclude each other: a pier's follower is master")
        if not _DOMAIN.fullmatch(self.galaxy_domain):
            raise ConfigError(f"galaxy_domain must be a DNS domain (urbit.org), got {self.galaxy_domain!r}")
        if self.runtime and not self.log_only:
            try:
                launch(self.runtime, self.data_dir / "pier")
            except ValueError as e:
                raise ConfigError(f"runtime: {e}") from None
        if self.runtime_timeout_s <= 0 or self.runtime_liveness_s <= 0:
            raise ConfigError("runtime_timeout_s and runtime_liveness_s must be > 0, got "
                              f"{self.runtime_timeout_s} and {self.runtime_liveness_s}")  # fmt: skip
        if self.failover_grace_s < 0 or self.promotion_timeout_s <= 0:
            raise ConfigError("failover_grace_s must be >= 0 and promotion_timeout_s > 0, got "
                              f"{self.failover_grace_s} and {self.promotion_timeout_s}")  # fmt: skip
        if not 1024 <= self.max_event_bytes <= 1 << 30:
            raise ConfigError(f"max_event_bytes must be in [1 KiB, 1 GiB], got {self.max_event_bytes}")
        self.keyring()  # readable, well-formed, owner-only
        self.login()
        if files is None and not self.insecure and not _loopback(host):
            raise ConfigError(f"grpc binds {self.grpc} in plaintext, beyond loopback: set tls_ca, tls_cert "
                              "and tls_key, or insecure = true (--insecure) on a trusted private network")

    def tls(self) -> TlsFiles | None:
        """The node's TLS files (all three, or none: plaintext, for loopback development)."""
        try:
            return TlsFiles.of(self.tls_ca, self.tls_cert, self.tls_key)
        except TlsError as e:
            raise ConfigError(f"tls_ca, tls_cert, tls_key: {e}") from None

    def login(self) -> Login | None:
        """The etcd user and its password, when set (both, or neither)."""
        try:
            return Login.of(self.etcd_user, self.etcd_password_file)
        except TlsError as e:
            raise ConfigError(f"etcd_user, etcd_password_file: {e}") from None

    def keyring(self) -> Keyring | None:
        """The ship's event keys, read from event_keys now (a rotation is picked up by `seguro reload`)."""
        try:
            return sealing.load(Path(self.event_keys)) if self.event_keys else None
        except sealing.KeyringError as e:
            raise ConfigError(f"event_keys: {e}") from None

    @property
    def log_only(self) -> bool:
        """Runs no ship: it stores, acknowledges and serves the log, and never campaigns."""
        return self.runtime == ("none",)

    @property
    def grpc_hostport(self) -> tuple[str, int]:
        return parse_hostport("grpc", self.grpc)

    @property
    def udp_hostport(self) -> tuple[str, int]:
        return parse_hostport("udp", self.udp)

    @property
    def http_hostport(self) -> tuple[str, int]:
        return parse_hostport("http", self.http)

    def advertised_grpc(self, bound_port: int) -> str:
        """The address published for other replicas: advertise_grpc (its port 0 meaning the bound port),
        else the bind address."""
        host, port = parse_hostport("advertise_grpc", self.advertise_grpc or self.grpc)
        return f"{host}:{port or bound_port}"

    @classmethod
    def load(cls, path: Path | None, overrides: dict[str, object]) -> NodeConfig:
        """Settings from the TOML file at `path` (if any), then `overrides` (flags) that are not None."""
        values: dict[str, object] = {}
        if path is not None:
            try:
                values.update(tomllib.loads(Path(path).read_text()))
            except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
                raise ConfigError(f"cannot read config {path}: {e}") from None
        values.update({k: v for k, v in overrides.items() if v is not None and v != ()})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown settings {unknown}; known: {sorted(known)}")
        missing = [n for n in ("node_id", "ship", "data_dir", "etcd") if n not in values]
        if missing:
            raise ConfigError(f"missing settings: {', '.join(missing)}")
        for name in ("node_id", "ship"):
            if not isinstance(values[name], str):
                raise ConfigError(f"{name} must be a string, got {values[name]!r}")
        if not isinstance(values["data_dir"], str | Path):
            raise ConfigError(f"data_dir must be a path, got {values['data_dir']!r}")
        values["data_dir"] = Path(values["data_dir"])  # type: ignore[arg-type]
        values["etcd"] = _words("etcd", values["etcd"], lambda line: line.split(","))
        # a command line, or a list of its words
        values["runtime"] = _words("runtime", values.get("runtime", ()), shlex.split)
        _check_types(cls, values)
        return cls(**values)  # type: ignore[arg-type]


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"


def _words(name: str, value: object, split: Callable[[str], list[str]]) -> tuple[str, ...]:
    """A setting given as one string (split here) or as a list of strings."""
    if isinstance(value, str):
        return tuple(split(value))
    if isinstance(value, list | tuple) and all(isinstance(word, str) for word in value):
        return tuple(value)
    raise ConfigError(f"{name} must be a string or a list of strings, got {value!r}")


_SIMPLE: dict[str, type] = {"bool": bool, "int": int, "float": float, "str": str}


def _check_types(cls: type, values: dict[str, object]) -> None:
    """A number where a number belongs, a name where a name belongs: say which setting is wrong."""
    for f in fields(cls):
        if f.name not in values or f.default is MISSING or isinstance(f.default, tuple):
            continue
        want: tuple[type, ...] = (int, float) if isinstance(f.default, float) else (type(f.default),)
        if f.default is None:  # optional (ames_filter): what its annotation, e.g. "bool | None", names
            want = tuple(_SIMPLE[name] for name in str(f.type).split(" | ") if name in _SIMPLE)
        value = values[f.name]
        if not isinstance(value, want) or (isinstance(value, bool) and bool not in want):
            raise ConfigError(f"{f.name} must be {' or '.join(t.__name__ for t in want)}, got {value!r}")


# Settings every replica of a ship must share: a failover to a replica with another TTL or ack count
# changes the ship's guarantees, and another retention changes what a lagging replica can catch up from.
# Each node publishes its own in its status; `seguro status` names replicas that differ.
SHARED_SETTINGS = ("lease_ttl_s", "lease_margin_s", "ack_replicas", "max_event_bytes", "etcd_retain_events",
                   "etcd_retain_bytes")  # fmt: skip


def shared_settings(cfg: NodeConfig, keyring: Keyring | None = None) -> dict[str, object]:
    """The settings replicas must share, and the event keys the node holds now (ids, never bytes): a
    replica without the key about to be made current shows up in `seguro status` before `keys use`."""
    held = {"current": keyring.current, "ids": keyring.ids} if keyring is not None else None
    return {**{key: getattr(cfg, key) for key in SHARED_SETTINGS}, "event_keys": held}


def core_config(cfg: NodeConfig) -> Config:
    """The pure core's settings from the node's (a log-only replica never campaigns; the failover grace
    defaults to two lease TTLs)."""
    return Config(
        node_id=cfg.node_id, lease_ttl_s=float(cfg.lease_ttl_s), lease_margin_s=cfg.lease_margin_s,
        ack_replicas=cfg.ack_replicas, max_event_bytes=cfg.max_event_bytes,
        etcd_retain_events=cfg.etcd_retain_events, etcd_retain_bytes=cfg.etcd_retain_bytes,
        nofailover=cfg.nofailover or cfg.log_only, failover_priority=cfg.failover_priority,
        failover_grace_s=cfg.failover_grace_s or 2.0 * cfg.lease_ttl_s,
        promotion_timeout_s=cfg.promotion_timeout_s,
    )  # fmt: skip
