"""Operator commands: leader, status, step-down, forget-replica, cluster up/down, demo, bench."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TypeVar

import click

from seguro.cli.exits import NoMaster, coordination_error
from seguro.node.etcd.coordinator import CoordinationError
from seguro.node.etcd.schema import SPACE_HELP
from seguro.ops import cluster as local
from seguro.ops.admin import AdminError, NoMasterError, forget_replica, leader_info, status_rows, step_down
from seguro.ops.etcd_server import EtcdStartError

T = TypeVar("T")


def ask_etcd(view: Callable[[str, str], T], etcd: str, ship: str) -> T:
    """Run a read-only view; bad endpoints are a usage error, an unreachable etcd a clear failure."""
    try:
        return view(etcd, ship)
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    except CoordinationError as e:
        raise coordination_error(e) from None


def etcd_view_options(command: Callable[..., None]) -> Callable[..., None]:
    """--etcd, --ship and --json, which every read-only view takes."""
    command = click.option("--json", "as_json", is_flag=True)(command)
    command = click.option("--ship", required=True, envvar="SEGURO_SHIP")(command)
    etcd = click.option("--etcd", required=True, envvar="SEGURO_ETCD", help="etcd client URLs, with commas.")
    return etcd(command)


@click.command("leader")
@etcd_view_options
def leader(etcd: str, ship: str, as_json: bool) -> None:
    """Show the ship's master: id, epoch (fencing token), lease, TTL remaining."""
    info = ask_etcd(leader_info, etcd, ship)
    if info is None:
        if as_json:
            click.echo(json.dumps({"id": None, "epoch": None, "lease": None, "ttl_remaining": None}))
        raise NoMaster(f"ship {ship} has no master right now")
    if as_json:
        click.echo(json.dumps(info))
    else:
        click.echo(
            f"master {info['id']}  epoch {info['epoch']}  lease {info['lease']:x}  "
            f"ttl {info['ttl_remaining']} s  grpc {info.get('grpc')}  udp {info.get('udp')}"
        )


@click.command("step-down")
@etcd_view_options
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=1.0), default=15.0, show_default=True,
              help="Seconds to wait for another replica to serve.")  # fmt: skip
def step_down_command(etcd: str, ship: str, as_json: bool, timeout_s: float) -> None:
    """Planned switchover: the master steps down; returns once another replica serves."""
    try:
        result = ask_etcd(lambda e, s: step_down(e, s, timeout_s), etcd, ship)
    except NoMasterError as e:
        raise NoMaster(str(e)) from None
    except AdminError as e:
        raise click.ClickException(str(e)) from None
    if as_json:
        click.echo(json.dumps(result))
    else:
        click.echo(f"{result['old']} (epoch {result['old_epoch']}) stepped down; {result['new']} "
                   f"(epoch {result['new_epoch']}) serves after {result['seconds']} s")  # fmt: skip


@click.command("forget-replica")
@click.option("--etcd", required=True, envvar="SEGURO_ETCD", help="Comma-separated etcd client URLs.")
@click.option("--ship", required=True, envvar="SEGURO_SHIP")
@click.option("--id", "node_id", required=True, help="The stopped replica to forget.")
def forget_replica_command(etcd: str, ship: str, node_id: str) -> None:
    """Remove a decommissioned (stopped) replica from the ship's registry."""
    try:
        ask_etcd(lambda e, s: forget_replica(e, s, node_id), etcd, ship)
    except AdminError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"forgot replica {node_id} of ship {ship}")


@click.command("status")
@etcd_view_options
def status(etcd: str, ship: str, as_json: bool) -> None:
    """Every replica: role, durable event, applied event, lag behind etcd's head."""
    report = ask_etcd(status_rows, etcd, ship)
    if as_json:
        click.echo(json.dumps(report))
        return
    genesis = report["genesis"]
    if report["etcd_alarms"]:
        click.echo(f"etcd alarm: {', '.join(report['etcd_alarms'])}: {SPACE_HELP}")  # type: ignore[arg-type]
    if genesis is None:
        click.echo(f"ship {ship}: not created in this etcd (no genesis record): nodes wait; "
                   "create it with `seguro ship create`")  # fmt: skip
    else:
        click.echo(f"ship {ship} ({genesis['who']}), genesis {genesis['id']}: head {report['head']}, "
                   f"master {report['master'] or '(none)'}")  # fmt: skip
    for key, by_value in report["differ"].items():  # type: ignore[attr-defined]
        values = "; ".join(f"{value} on {', '.join(ids)}" for value, ids in by_value.items())
        click.echo(f"replicas differ in {key}: {values}")
    click.echo(f"{'id':<10} {'role':<12} {'durable':>9} {'applied':>9} {'lag':>6} {'prio':>5}  notes")
    for r in report["replicas"]:  # type: ignore[attr-defined]
        prio = "nofo" if r["nofailover"] else str(r["failover_priority"])
        unserved = ", ".join(f"{k} x{n}" for k, n in sorted(r["effects_unserved"].items()))
        unserved = f"unserved effects: {unserved}" if unserved else ""
        notes = "; ".join(n for n in (r["error"], r["campaign"], unserved) if n)
        click.echo(
            f"{r['id']:<10} {r['role']:<12} {r['durable_event']:>9} {r['applied_event']:>9} "
            f"{r['lag']:>6} {prio:>5}  {notes}"
        )


@click.group("cluster")
def cluster() -> None:
    """A local cluster on 127.0.0.1: 3-member etcd and N nodes."""


@cluster.command("up")
@click.option("--workdir", required=True, type=click.Path(path_type=Path))
@click.option("--replicas", default=3, show_default=True, type=click.IntRange(1, 9))
@click.option("--ttl", default=3, show_default=True, type=click.IntRange(2, 60), help="Lease TTL, seconds.")
@click.option("--ship", default="zod", show_default=True)
@click.option("--ack-replicas", type=click.IntRange(min=0), help="Passed to every node.")
@click.option("--max-event-bytes", type=click.IntRange(1024, 1 << 30), help="Passed to every node.")
@click.option("--etcd-retain-events", type=click.IntRange(min=0), help="Passed to every node.")
@click.option("--etcd-retain-bytes", type=click.IntRange(min=0), help="Passed to every node.")
@click.option("--seal", is_flag=True, help="Seal the ship's events in etcd under a new keyring in WORKDIR.")
@click.option("--tls", "secure", is_flag=True,
              help="TLS and auth everywhere (a CA in WORKDIR/pki); the JSON names the operator's files.")
@click.option("--json", "as_json", is_flag=True)
def cluster_up(
    workdir: Path, replicas: int, ttl: int, ship: str, seal: bool, secure: bool, as_json: bool,
    **passed: int | None,
) -> None:  # fmt: skip
    """Create the ship and start the cluster in the background; return once a master is elected."""
    extra = []
    for name, value in passed.items():
        if value is not None:
            extra += ["--" + name.replace("_", "-"), str(value)]
    try:
        state = local.up(workdir.resolve(), replicas=replicas, ttl_s=ttl, ship=ship, extra=extra, seal=seal,
                         secure=secure)  # fmt: skip
    except (local.ClusterError, EtcdStartError) as e:
        raise click.ClickException(str(e)) from None
    nodes = [{k: n.get(k, "") for k in ("id", "pid", "grpc", "udp", "http", "data")} for n in state["nodes"]]
    if not as_json:
        click.echo(f"etcd {state['etcd']}; ship {ship}; {len(nodes)} nodes; logs in {workdir}")
    summary = {"etcd": state["etcd"], "ship": ship, "genesis": state.get("genesis"), "nodes": nodes,
               "event_keys": state["event_keys"], "tls": state.get("tls")}  # fmt: skip
    click.echo(json.dumps(summary))


@cluster.command("down")
@click.option("--workdir", required=True, type=click.Path(path_type=Path))
def cluster_down(workdir: Path) -> None:
    """Stop everything `cluster up` started in WORKDIR."""
    try:
        stopped = local.down(workdir.resolve())
    except local.ClusterError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"stopped {len(stopped)} processes")


@click.command("demo")
@click.option("--workdir", type=click.Path(path_type=Path), help="Where to run (default: a temporary dir).")
@click.option("--keep", is_flag=True, help="Leave the cluster running for inspection (needs --workdir).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on the last line.")
@click.option("--seconds", default=6.0, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="Traffic before and after the failover.")  # fmt: skip
@click.option("--tls", "secure", is_flag=True, help="As `cluster up --tls`: TLS and auth everywhere.")
@click.option("--seal", is_flag=True, help="As `cluster up --seal`: the ship's events sealed in etcd.")
def demo(workdir: Path | None, keep: bool, as_json: bool, seconds: float, secure: bool, seal: bool) -> None:
    """Bring up a local replicated cluster, kill the master mid-stream, check every log agrees."""
    from seguro.ops.demo import run_demo

    if keep and workdir is None:
        raise click.UsageError("--keep needs --workdir")
    try:
        summary = run_demo(workdir, keep=keep, seconds=seconds, echo=click.echo, secure=secure, seal=seal)
    except (local.ClusterError, EtcdStartError, CoordinationError) as e:
        raise click.ClickException(f"the demo could not run: {e}") from None
    if as_json:
        click.echo(json.dumps(summary))
    if not summary["ok"]:
        raise SystemExit(1)


@click.command("bench")
@click.option(
    "--quick", is_flag=True, help="Fewer rounds, shorter traffic: about 2/3 of the full run's time."
)
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON on the last line.")
@click.option(
    "--workdir", type=click.Path(path_type=Path), help="Keep the run's data here (default: a temp dir)."
)
def bench(quick: bool, as_json: bool, workdir: Path | None) -> None:
    """Measure Seguro against raw etcd and raw RocksDB in the same run, and print the ratios."""
    from seguro.ops.bench import BenchError, print_result, run_bench

    try:
        result = run_bench(workdir, quick=quick, echo=click.echo)
    except (BenchError, CoordinationError, EtcdStartError, local.ClusterError) as e:
        raise click.ClickException(str(e)) from None
    print_result(result, click.echo, as_json)


@click.group("etcd")
def etcd_group() -> None:
    """etcd maintenance for a ship."""


@etcd_group.command("reclaim")
@click.option("--etcd", required=True, envvar="SEGURO_ETCD", help="Comma-separated etcd client URLs.")
@click.option("--ship", required=True, envvar="SEGURO_SHIP")
@click.option(
    "--keep-events",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="Newest committed events to keep in etcd; older ones stay in every replica's log.",
)
@click.option("--json", "as_json", is_flag=True)
def reclaim_command(etcd: str, ship: str, keep_events: int, as_json: bool) -> None:
    """Free a full etcd (alarm NOSPACE): drop the ship's old batches, compact, defragment, disarm."""
    from seguro.node.etcd.maintenance import reclaim

    report = ask_etcd(lambda e, s: reclaim(e, s, keep_events), etcd, ship)
    if as_json:
        click.echo(json.dumps(asdict(report)))
        return
    click.echo(f"ship {ship}: kept events {report.trimmed_below}..{report.head} ({report.batches_deleted} "
               f"batches deleted), compacted at revision {report.revision}")  # fmt: skip
    for member, size in report.db_bytes_after.items():
        click.echo(f"  {member}: {report.db_bytes_before.get(member, 0)} -> {size} bytes")
    before, after = ", ".join(report.alarms_before) or "none", ", ".join(report.alarms_after) or "none"
    click.echo(f"alarms: {before} -> {after}")
    if report.alarms_after:
        raise click.ClickException("alarms remain: etcd is still full; keep fewer events")


@etcd_group.command("auth")
@click.option("--etcd", required=True, envvar="SEGURO_ETCD", help="Comma-separated etcd client URLs.")
@click.option("--ship", "ships", required=True, multiple=True, help="A ship to make a user and role for.")
@click.option("--add-user", help="Also a password user with the (first) ship's role...")
@click.option("--password-file", type=click.Path(dir_okay=False), help="...whose password is in this file.")
def auth_command(etcd: str, ships: tuple[str, ...], add_user: str | None, password_file: str | None) -> None:
    """Turn etcd's auth on (run with etcd root's --cacert/--cert/--key, CN root): a user per ship, CN
    seguro-SHIP, whose role reads and writes only the ship's keys. Prints `changed` or `unchanged`."""
    from seguro.node import tls
    from seguro.ops import etcd_auth

    root = tls.current()
    if root is None:
        raise click.UsageError("etcd auth needs etcd root's certificate: --cacert, --cert and --key")
    try:
        login = tls.Login.of(add_user, password_file)
        changed = etcd_auth.enable(etcd, root)
        for ship in ships:
            changed = etcd_auth.grant_ship(etcd, root, ship) or changed
        if login is not None:
            changed = etcd_auth.add_login(etcd, root, ships[0], login) or changed
    except tls.TlsError as e:
        raise click.UsageError(str(e)) from None
    except etcd_auth.EtcdAuthError as e:
        raise click.ClickException(str(e)) from None
    click.echo("changed" if changed else "unchanged")


commands = [leader, status, step_down_command, forget_replica_command, cluster, etcd_group, demo, bench]
