"""The reference ship's one entry point: `seguro ship serve` and `python -m seguro.urbit.ship` are this
command.

A king (seguro.urbit.serf.Serf) starts it and talks newt frames over its stdin/stdout, so it is not meant
to be run by hand except to see that it starts.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from seguro.urbit import newt
from seguro.urbit.ship import mars, worker


@click.command("serve")
@click.option(
    "--pier",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="snapshots (protocol 2: the pier and its log)",
)
@click.option(
    "--max-frame-bytes", type=click.IntRange(min=1), default=newt.MAX_FRAME_BYTES_DEFAULT, show_default=True
)
@click.option(
    "--log-level",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    default="WARNING",
    show_default=True,
    help="logging level for stderr",
)
@click.option(
    "--fault-diverge-at",
    type=click.IntRange(min=0),
    default=0,
    help="Fault injection: state goes wrong at event N.",
)
@click.option(
    "--protocol",
    type=click.IntRange(1, 2),
    default=1,
    show_default=True,
    help="1: vere 3.x's serf (the king keeps the log); 2: vere 4.x's worker (owns the pier's event log).",
)
def command(pier: Path, max_frame_bytes: int, log_level: str, fault_diverge_at: int, protocol: int) -> None:
    """Run the reference ship runtime on stdin/stdout (newt frames), snapshots in --pier."""
    run = mars.run if protocol == 2 else worker.run
    sys.exit(run(pier, max_frame_bytes, log_level, fault_diverge_at))
