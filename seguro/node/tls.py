"""Transport security: one set of TLS files for every connection a process makes or accepts.

Each process has one set (`configure`, at start). A node uses its configured files (`tls_ca`, `tls_cert`,
`tls_key`) for its gRPC server (mutual TLS: a client must present a certificate from the same CA), for
the push streams and fetches it opens to its peers, and for etcd. Commands take `--cacert/--cert/--key`,
or SEGURO_CACERT, SEGURO_CERT, SEGURO_KEY, like etcdctl. Without files, connections are plaintext: for
development on loopback addresses, and a node says so in its log at start.

Who a certificate speaks for is in its URI subject alternative names, `seguro://SHIP/ROLE/NAME`:
`replica` (may push to and fetch from the ship's replicas), `admin` (may step the master down, reload,
reinit, poke), and the ship `*` for an operator of every ship. Its common name is the etcd user it acts
as (etcd maps a client certificate's CN to a user when client-certificate auth is on).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

import grpc

ENV = ("SEGURO_CACERT", "SEGURO_CERT", "SEGURO_KEY")
URI_PREFIX = "seguro://"
REPLICA, ADMIN = "replica", "admin"


class TlsError(ValueError):
    """TLS files that cannot be used: missing, incomplete, or a key others may read."""


@dataclass(frozen=True)
class TlsFiles:
    """A CA bundle to trust, and this party's certificate chain and private key (PEM)."""

    ca: Path
    cert: Path
    key: Path

    @classmethod
    def of(cls, ca: str | Path | None, cert: str | Path | None, key: str | Path | None) -> TlsFiles | None:
        """All three or none: a partial set is refused rather than silently dropped to plaintext."""
        given = [v for v in (ca, cert, key) if v]
        if not given:
            return None
        if len(given) != 3:
            raise TlsError("TLS needs all of the CA bundle, the certificate and its key (or none of them)")
        files = cls(Path(ca), Path(cert), Path(key))  # type: ignore[arg-type]
        files.check()
        return files

    @classmethod
    def from_env(cls) -> TlsFiles | None:
        return cls.of(*(os.environ.get(name) for name in ENV))

    def check(self) -> None:
        for what, path in (("CA", self.ca), ("certificate", self.cert), ("key", self.key)):
            if not path.is_file():
                raise TlsError(f"TLS {what} {path} is not a readable file")
        mode = self.key.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise TlsError(f"TLS key {self.key} is mode {stat.S_IMODE(mode):o}: it must be readable by its "
                           f"owner only (chmod 600 {self.key})")  # fmt: skip

    def read(self) -> tuple[bytes, bytes, bytes]:
        return self.ca.read_bytes(), self.cert.read_bytes(), self.key.read_bytes()

    def channel_credentials(self) -> grpc.ChannelCredentials:
        ca, cert, key = self.read()
        return grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert)

    def server_credentials(self) -> grpc.ServerCredentials:
        ca, cert, key = self.read()
        return grpc.ssl_server_credentials([(key, cert)], root_certificates=ca, require_client_auth=True)


_process_tls: TlsFiles | None = None


def configure(files: TlsFiles | None) -> None:
    """Set the process's TLS files, once at start: a node from its settings, a command from its flags or
    the environment. Every channel and server the process opens from then on uses them."""
    global _process_tls
    _process_tls = files


def current() -> TlsFiles | None:
    return _process_tls


def channel(address: str, options: list | None = None) -> grpc.Channel:
    """A client channel (to a node, or to etcd): mutual TLS with the process's files, plaintext without."""
    files = current()
    if files is None:
        return grpc.insecure_channel(address, options=options)
    return grpc.secure_channel(address, files.channel_credentials(), options=options)


@dataclass(frozen=True)
class Principal:
    """Who a peer's certificate speaks for: the ship ('*': every ship), the role and the name."""

    ship: str
    role: str
    name: str

    def may(self, ship: str, role: str) -> bool:
        return self.role == role and self.ship in (ship, "*")


def uri(ship: str, role: str, name: str) -> str:
    return f"{URI_PREFIX}{ship}/{role}/{name}"


def principals(context: grpc.ServicerContext) -> list[Principal]:
    """The identities in the peer's verified certificate (none over plaintext)."""
    found = []
    for raw in context.auth_context().get("x509_subject_alternative_name", []):
        text = raw.decode(errors="replace")
        if text.startswith(URI_PREFIX):
            parts = text[len(URI_PREFIX):].split("/")
            if len(parts) == 3 and all(parts):
                found.append(Principal(*parts))
    return found
