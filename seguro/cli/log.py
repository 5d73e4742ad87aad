"""`seguro log ...`: inspect a node's local event log (placeholder until the event log lands)."""

import click


@click.group("log")
def group() -> None:
    """Inspect a node's local RocksDB event log."""
