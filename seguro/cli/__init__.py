"""The `seguro` command line. Each concept's commands live in its own module under seguro/cli/."""

from __future__ import annotations

import click

from seguro.cli import controls, keys, log, node, ops, pier, ship, tls
from seguro.cli.security import add_tls_options


@click.group()
@click.version_option(package_name="seguro")
def main() -> None:
    """Seguro: a replicated, fenced event log for Urbit ships."""


main.add_command(log.group)
main.add_command(node.group)
main.add_command(ship.group)
main.add_command(pier.group)
main.add_command(keys.group)
main.add_command(tls.group)
for _command in ops.commands + controls.commands:
    main.add_command(_command)
add_tls_options(main)
