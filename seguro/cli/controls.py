"""`seguro pause`, `resume`, `switchover --candidate`, `failover --candidate`: who serves the ship."""

from __future__ import annotations

import getpass
import json
import socket
from collections.abc import Callable

import click

from seguro.cli.exits import NoMaster, coordination_error
from seguro.cli.ops import etcd_view_options
from seguro.node.etcd.coordinator import CoordinationError
from seguro.ops.admin import AdminError, NoMasterError
from seguro.ops.controls import failover, pause, reinit_replica, reload_settings, resume, switchover


def _run(action: Callable[[], dict[str, object]], as_json: bool, say: Callable[[dict], str]) -> None:
    result = _mapped(action)
    click.echo(json.dumps(result) if as_json else say(result))


def _mapped(action: Callable[[], dict[str, object]]) -> dict[str, object]:
    """The action's result, or its failure as the CLI's error and exit code (seguro.cli.exits)."""
    try:
        return action()
    except ValueError as e:  # a malformed --etcd
        raise click.UsageError(str(e)) from None
    except CoordinationError as e:
        raise coordination_error(e) from None
    except NoMasterError as e:
        raise NoMaster(str(e)) from None
    except AdminError as e:
        raise click.ClickException(str(e)) from None


@click.command("pause")
@etcd_view_options
def pause_command(etcd: str, ship: str, as_json: bool) -> None:
    """Maintenance mode: no automatic failover until `seguro resume` (the master keeps serving)."""
    by = f"{getpass.getuser()}@{socket.gethostname()}"
    _run(lambda: pause(etcd, ship, by), as_json, lambda r: f"ship {ship} paused by {r['by']}: no failover")


@click.command("resume")
@etcd_view_options
def resume_command(etcd: str, ship: str, as_json: bool) -> None:
    """Leave maintenance mode: failover is automatic again."""
    _run(lambda: resume(etcd, ship), as_json,
         lambda r: f"ship {ship} resumed" if r["was_paused"] else f"ship {ship} was not paused")  # fmt: skip


@click.command("switchover")
@etcd_view_options
@click.option("--candidate", required=True, help="The replica that takes over.")
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=1.0), default=15.0, show_default=True)
def switchover_command(etcd: str, ship: str, as_json: bool, candidate: str, timeout_s: float) -> None:
    """Planned: the master hands the ship to CANDIDATE (`step-down` hands it to anyone)."""

    def say(r: dict) -> str:
        return f"{r['old']} handed ship {ship} to {r['new']} (epoch {r['new_epoch']}) in {r['seconds']} s"

    _run(lambda: switchover(etcd, ship, candidate, timeout_s), as_json, say)


@click.command("failover")
@etcd_view_options
@click.option("--candidate", required=True, help="The replica that takes over.")
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=1.0), default=15.0, show_default=True)
def failover_command(etcd: str, ship: str, as_json: bool, candidate: str, timeout_s: float) -> None:
    """With no healthy master (or while paused): CANDIDATE takes the ship over."""

    def say(r: dict) -> str:
        return f"{r['new']} serves ship {ship} (epoch {r['new_epoch']}) after {r['seconds']} s"

    _run(lambda: failover(etcd, ship, candidate, timeout_s), as_json, say)


@click.command("reload")
@etcd_view_options
@click.option("--id", "node_id", help="One replica (default: every running one).")
def reload_command(etcd: str, ship: str, as_json: bool, node_id: str | None) -> None:
    """Replicas read their settings again (as SIGHUP): live ones apply at once, others need a restart."""
    answers = _mapped(lambda: reload_settings(etcd, ship, node_id))
    if as_json:
        click.echo(json.dumps(answers))
        return
    for replica, answer in answers.items():
        click.echo(f"{replica}: {answer}")


@click.command("reinit")
@etcd_view_options
@click.option("--id", "node_id", required=True, help="The follower that rebuilds.")
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=1.0), default=600.0, show_default=True)
def reinit_command(etcd: str, ship: str, as_json: bool, node_id: str, timeout_s: float) -> None:
    """A follower rebuilds its log and runtime from its peers (its old data is kept aside, not deleted);
    returns once it is back at the ship's head. Refused on the master: switch over first."""
    by = f"{getpass.getuser()}@{socket.gethostname()}"

    def say(r: dict) -> str:
        return f"{node_id} rebuilt from its peers, at event {r['durable_event']}; old data in {r['aside']}"

    _run(lambda: reinit_replica(etcd, ship, node_id, by, timeout_s), as_json, say)


commands = [
    pause_command, resume_command, switchover_command, failover_command, reload_command, reinit_command
]
