"""`seguro node run`: host one replica of one ship until SIGTERM/SIGINT."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
from pathlib import Path

import click

from seguro.cli.exits import EXIT_HALTED
from seguro.node.config import ConfigError, NodeConfig
from seguro.node.eventlog import EventLogError
from seguro.node.logs import setup_logging

LOG_LEVELS = click.Choice(["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], case_sensitive=False)


@click.group("node")
def group() -> None:
    """Run one replica of a ship."""


@group.command("run")
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    help="TOML file with the settings below as keys (`python -m seguro.node.config_doc` lists them); "
    "flags override it.",
)
@click.option("--id", "node_id", help="This replica's id (unique per ship).")
@click.option("--ship", help="The ship's name in etcd (a-z 0-9 . _ -).")
@click.option(
    "--data", "data_dir", type=click.Path(path_type=Path), help="Data directory (DIR/log is the log)."
)
@click.option("--etcd", help="Comma-separated etcd client URLs.")
@click.option("--grpc", help="HOST:PORT for the replication/admin gRPC server.")
@click.option(
    "--advertise-grpc",
    help="HOST:PORT other replicas dial; needed when --grpc binds 0.0.0.0 (port 0: the bound port).",
)
@click.option("--udp", help="HOST:PORT of the ship's Ames UDP socket.")
@click.option("--follow-pier", help="Commit a running vere's log from this pier (as master); run no ship.")
@click.option("--galaxy-domain", help="Galaxies are <name>.<domain> (default urbit.org).")
@click.option("--galaxy-local/--galaxy-dns", default=None, help="Galaxies at 127.0.0.1:31337+g (vere's -L).")
@click.option(
    "--ames-filter/--no-ames-filter",
    default=None,
    help="Drop datagrams vere never makes events of (STUN, bad Ames header or mug, other ships' packets) "
    "and count them. Default: on under vere, off for the reference ship (its datagrams are plain text).",
)
@click.option("--ttl", "lease_ttl_s", type=int, help="Lease TTL in seconds (>= 2, default 3).")
@click.option(
    "--lease-margin",
    "lease_margin_s",
    type=float,
    help="Seconds before the TTL ends that a master counts its lease as over (default 0.75).",
)
@click.option("--ack-replicas", type=int, help="Followers that must hold an event before its effects leave.")
@click.option("--max-event-bytes", type=int, help="Largest event accepted (default 64 MiB).")
@click.option("--etcd-retain-events", type=int, help="Committed events kept in etcd (default 100000).")
@click.option("--etcd-retain-bytes", type=int, help="...and at most these bytes of them (default 256 MiB).")
@click.option("--nofailover/--failover", default=None, help="Never campaign for master (a witness).")
@click.option("--failover-priority", type=int, help="Among replicas as far along, higher goes first.")
@click.option("--snapshot-every", type=int, help="Committed events between runtime snapshots (default 5000).")
@click.option("--http", help="HOST:PORT for GET /health, /primary, /replica and /metrics (default: none).")
@click.option("--replica-max-lag", type=int, help="Events a follower may lag and still answer /replica 200.")
@click.option("--event-keys", help="Keyring file (mode 600): events sealed in etcd under its current key.")
@click.option("--tls-ca", help="CA bundle (PEM): with --tls-cert and --tls-key, mutual TLS (gRPC and etcd).")
@click.option("--tls-cert", help="This replica's certificate (PEM), URI SAN seguro://SHIP/replica/ID.")
@click.option("--tls-key", help="Its private key (PEM, mode 600).")
@click.option("--etcd-user", help="An etcd user to log in as (with --etcd-password-file).")
@click.option("--etcd-password-file", help="A file holding its password (mode 600).")
@click.option("--insecure/--no-insecure", default=None, help="Plaintext gRPC beyond loopback.")
@click.option(
    "--failover-grace",
    "failover_grace_s",
    type=float,
    help="Seconds to defer to better replicas while there is no master (default 2 TTLs).",
)
@click.option(
    "--runtime-liveness",
    "runtime_liveness_s",
    type=float,
    help="Seconds one event may run before the runtime counts as hung (default 3600).",
)
@click.option(
    "--runtime-timeout",
    "runtime_timeout_s",
    type=float,
    help="Seconds the runtime has to answer a control request: start, save, peek (default 30).",
)
@click.option(
    "--promotion-timeout",
    "promotion_timeout_s",
    type=float,
    help="A new master not serving after this many seconds resigns (default 300).",
)
@click.option(
    "--runtime",
    help="ship (the reference ship, protocol 1; default), ship2 (it as vere 4.x's worker), vere3:PATH "
    "(vere 3.x's `urbit serf`), vere4:PATH (vere 4.x's `urbit work`), none (log only), or a protocol-1 "
    "command line.",
)
@click.option(
    "--ready-file", type=click.Path(path_type=Path), help="Write bound addresses here as JSON once up."
)
@click.option("--log-level", default="INFO", show_default=True, type=LOG_LEVELS)
def run(
    config_path: Path | None,
    ready_file: Path | None,
    log_level: str,
    **flags: object,
) -> None:
    """Host one replica: local RocksDB log, ship runtime, etcd lease, gRPC and UDP endpoints.
    Every flag but --config, --ready-file and --log-level is also a key of the TOML file."""
    serve_node(config_path, flags, ready_file, log_level)


def serve_node(
    config_path: Path | None, flags: dict[str, object], ready_file: Path | None, log_level: str
) -> None:
    """Run a node until SIGTERM/SIGINT; exit 0, or 3 when it refuses to run (another genesis)."""
    setup_logging(log_level)
    try:
        cfg = NodeConfig.load(config_path, flags)
    except ConfigError as e:
        raise click.UsageError(str(e)) from None
    from seguro.node import tls

    tls.configure(cfg.tls())  # every channel, the gRPC server and etcd: before anything connects
    tls.configure_login(cfg.login())
    refused_login(cfg)
    if tls.current() is None:
        logging.getLogger("seguro").warning(
            "plaintext: the gRPC port accepts anyone and etcd is dialled without TLS; for development on "
            "loopback only (set tls_ca, tls_cert and tls_key)",
            extra={"grpc": cfg.grpc, "etcd": list(cfg.etcd)},
        )
    from seguro.node.driver import Node, NodeHalted
    from seguro.node.reinit import reinit_if_asked

    try:
        aside = reinit_if_asked(cfg.data_dir)  # `seguro reinit`: the old data goes aside before the log opens
        if aside is not None:
            logging.getLogger("seguro").warning("reinit: rebuilding from peers", extra={"aside": str(aside)})
        node = Node(cfg, settings=lambda: NodeConfig.load(config_path, flags))
    except (OSError, ValueError, EventLogError) as e:
        raise click.ClickException(str(e)) from None
    signal.signal(signal.SIGTERM, lambda *_: stop_for_good(node))
    signal.signal(signal.SIGINT, lambda *_: node.stop())
    signal.signal(signal.SIGHUP, lambda *_: node.reload())  # as `seguro reload`: live settings, at once
    if ready_file is not None:
        info = {
            "id": cfg.node_id,
            "grpc": node.grpc_address,
            "udp": node.udp_address,
            "http": node.http_address,
            "data": str(cfg.data_dir),
        }
        tmp = ready_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(info))
        tmp.rename(ready_file)
    try:
        node.run()
    except NodeHalted as e:
        logging.getLogger("seguro").critical("refusing to run", extra={"reason": str(e)})
        click.echo(f"seguro: {e}", err=True)
        sys.exit(EXIT_HALTED)
    if node.restart_requested:  # the same command again, under the same service manager and pid
        logging.getLogger("seguro").info("restarting")
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(sys.executable, sys.orig_argv)
    logging.getLogger("seguro").info("exit")
    sys.exit(0)


def stop_for_good(node: object) -> None:
    """SIGTERM: stop, even with a `seguro reinit` restart pending (its marker stays: the next start
    rebuilds)."""
    node.restart_requested = False  # type: ignore[attr-defined]
    node.stop()  # type: ignore[attr-defined]


def refused_login(cfg: NodeConfig) -> None:
    """A wrong etcd password stops the node at start (exit 2), rather than a node that retries its lease
    forever against etcd's password checks. etcd down at start is fine: the node waits for it."""
    if cfg.login() is None:
        return
    from seguro.node.etcd.coordinator import CoordinationError, Coordinator

    try:
        with Coordinator(list(cfg.etcd), cfg.ship, timeout_s=2.0, retry_budget_s=2.0) as coord:
            coord.head()
    except CoordinationError as e:
        if "authentication failed" in str(e):
            raise click.UsageError(f"etcd_user {cfg.etcd_user!r}: {e}") from None
