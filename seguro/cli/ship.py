"""`seguro ship`: the reference ship runtime (placeholder until the runtime lands)."""

import click


@click.command("ship")
def command() -> None:
    """Run the reference ship runtime (serf side of vere's king <-> serf protocol)."""
    raise click.ClickException("the reference ship runtime is not built yet")
