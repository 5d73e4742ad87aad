"""--cacert/--cert/--key (or SEGURO_CACERT, SEGURO_CERT, SEGURO_KEY) and --etcd-user/--etcd-password-file
(SEGURO_ETCD_USER, SEGURO_ETCD_PASSWORD_FILE) on every command that reaches etcd or a node: set once,
before the command connects, for every channel it opens (node/tls.py)."""

from __future__ import annotations

import functools
import os
from typing import Any

import click

from seguro.node import tls
from seguro.node.tls import Login, TlsError, TlsFiles

OPTIONS = (
    ("--cacert", "SEGURO_CACERT", "CA bundle (PEM) that etcd's and the nodes' certificates chain to."),
    ("--cert", "SEGURO_CERT", "Client certificate (PEM): its CN is the etcd user, its URI SAN the role."),
    ("--key", "SEGURO_KEY", "The certificate's private key (PEM, mode 600)."),
    ("--etcd-user", "SEGURO_ETCD_USER", "An etcd user to log in as (with --etcd-password-file)."),
    ("--etcd-password-file", "SEGURO_ETCD_PASSWORD_FILE", "A file holding its password (mode 600)."),
)


def configure(cacert: str | None, cert: str | None, key: str | None, user: str | None = None,
              password_file: str | None = None) -> None:  # fmt: skip
    try:
        tls.configure(TlsFiles.of(cacert, cert, key))
        tls.configure_login(Login.of(user, password_file))
    except TlsError as e:
        raise click.UsageError(str(e)) from None
    for (_, env, _), value in zip(OPTIONS, (cacert, cert, key, user, password_file), strict=True):
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
    def callback(*args: Any, cacert: str | None, cert: str | None, key: str | None, etcd_user: str | None,
                 etcd_password_file: str | None, **kwargs: Any) -> Any:  # fmt: skip
        configure(cacert, cert, key, etcd_user, etcd_password_file)
        return original(*args, **kwargs)

    command.callback = callback
