"""The `seguro` command's exit codes, one meaning each, so that scripts and Ansible can act on them:

| code | meaning |
|---|---|
| 0 | done |
| 1 | refused or failed (the message says why) |
| 2 | usage: a bad flag, value or setting (click's own) |
| 3 | the node refuses to run: its data directory belongs to another genesis |
| 4 | the ship has no master right now |
| 5 | etcd is unreachable |
"""

from __future__ import annotations

import click

EXIT_HALTED = 3


class NoMaster(click.ClickException):
    exit_code = 4


class EtcdUnreachable(click.ClickException):
    exit_code = 5


def coordination_error(error: Exception) -> click.ClickException:
    """An etcd error as the CLI reports it: unreachable (5), or refused (1: a ship that exists, ...)."""
    from seguro.node.etcd.schema import CoordinationUnavailable

    kind = EtcdUnreachable if isinstance(error, CoordinationUnavailable) else click.ClickException
    return kind(str(error))
