"""Operator commands: leader, status, cluster, demo, bench (placeholders until replication lands)."""

import click


@click.command("demo")
def demo() -> None:
    """Bring up a local replicated cluster, fail the master over, and check every log agrees."""
    raise click.ClickException("`seguro demo` is not built yet: it arrives with the replication work")


commands = [demo]
