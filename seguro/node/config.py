"""A node's configuration: from a TOML file and/or flags, checked before anything starts."""

from __future__ import annotations

import re
import shlex
import tomllib
from collections.abc import Callable
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path

from seguro.node.etcd.coordinator import parse_endpoints
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


@dataclass(frozen=True)
class NodeConfig:
    node_id: str
    ship: str
    data_dir: Path
    etcd: tuple[str, ...]
    grpc: str = "127.0.0.1:0"
    udp: str = "127.0.0.1:0"
    advertise_grpc: str = ""  # what other replicas dial; required when grpc binds every interface
    lease_ttl_s: int = 3
    lease_margin_s: float = 0.75
    ack_replicas: int = 0
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES
    runtime: tuple[str, ...] = field(default=())  # empty: the reference ship; ("none",): a log-only replica
    galaxy_domain: str = "urbit.org"  # galaxies are <name>.<domain> (vere: -H, --dns-root, or %turf)
    galaxy_local: bool = False  # vere's -L: galaxies at 127.0.0.1:31337+g, no DNS
    ames_filter: bool | None = None  # drop datagrams vere never makes events of; None: only under real vere
    follow_pier: str = ""  # a running vere's pier whose log this node commits (as master); it runs no ship
    snapshot_every: int = 5000
    etcd_retain_events: int = 100_000
    etcd_retain_bytes: int = 256 << 20
    nofailover: bool = False
    failover_priority: int = 1
    failover_grace_s: float = 0.0  # 0: twice the lease TTL
    promotion_timeout_s: float = 300.0
    runtime_timeout_s: float = 30.0  # the runtime's answer to a control request (start, save, peek)
    runtime_liveness_s: float = 3600.0  # an event may run this long before the runtime counts as hung
    http: str = ""  # HOST:PORT of /health, /primary, /replica and /metrics; empty: no HTTP endpoint
    replica_max_lag: int = 1000  # /replica answers 200 only within this many events of the commit

    def __post_init__(self) -> None:
        for what, name in (("node_id", self.node_id), ("ship", self.ship)):
            if not _NAME.match(name):
                raise ConfigError(f"{what} must be 1-63 of a-z 0-9 . _ - (alphanumeric first), got {name!r}")
        if not self.etcd:
            raise ConfigError("etcd endpoints are required (e.g. http://127.0.0.1:2379)")
        try:
            parse_endpoints(list(self.etcd))
        except ValueError as e:
            raise ConfigError(f"etcd endpoints: {e}") from None
        host, _ = parse_hostport("grpc", self.grpc)
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
            parse_hostport("http", self.http)
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
