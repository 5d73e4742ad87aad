"""--cacert/--cert/--key (or SEGURO_CACERT, SEGURO_CERT, SEGURO_KEY) on every command that reaches etcd
or a node: set once, before the command connects, for every channel it opens (node/tls.py)."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

import click

from seguro.node import tls
from seguro.node.tls import TlsError, TlsFiles

OPTIONS = (
    ("--cacert", "SEGURO_CACERT", "CA bundle (PEM) that etcd's and the nodes' certificates chain to."),
    ("--cert", "SEGURO_CERT", "Client certificate (PEM): its CN is the etcd user, its URI SAN the role."),
    ("--key", "SEGURO_KEY", "The certificate's private key (PEM, mode 600)."),
)


def configure(cacert: str | None, cert: str | None, key: str | None) -> None:
    try:
        tls.configure(TlsFiles.of(cacert, cert, key))
    except TlsError as e:
        raise click.UsageError(str(e)) from None
    for (_, env, _), value in zip(OPTIONS, (cacert, cert, key), strict=True):
        if value:
            os.environ[env] = value  # what a node started by this command (`pier follow`) reads


def add_tls_options(command: click.Command) -> None:
    """Give every command under `command` that takes --etcd the TLS options (a node's own `node run`
    has its tls_* settings instead)."""
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            add_tls_options(sub)
        return
    names = {p.name for p in command.params}
    if "etcd" not in names or "tls_ca" in names or command.callback is None:
        return
    command.params += [click.Option([flag], envvar=env, help=text) for flag, env, text in OPTIONS]
    original = command.callback

    @functools.wraps(original)
    def callback(*args: Any, cacert: str | None, cert: str | None, key: str | None, **kwargs: Any) -> Any:
        configure(cacert, cert, key)
        return original(*args, **kwargs)

    command.callback = callback


def with_tls(fn: Callable[..., Any]) -> Callable[..., Any]:
    """For commands without --etcd that still reach nodes: the same options, by decorator."""
    for flag, env, text in reversed(OPTIONS):
        fn = click.option(flag, envvar=env, help=text)(fn)
    return fn
