"""`seguro node ...`: run one replica (placeholder until the node lands)."""

import click


@click.group("node")
def group() -> None:
    """Run one replica of a ship."""
