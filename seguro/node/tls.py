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

import stat
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

URI_PREFIX = "seguro://"
REPLICA, ADMIN = "replica", "admin"


class TlsError(ValueError):
    """TLS files that cannot be used: missing, incomplete, or a key others may read."""


def loose_mode(path: Path, what: str) -> str:
    """Why a secret's file may not be used ('' when it may): anyone but its owner can read or write it.
    One rule for TLS keys, etcd password files and event keyrings. Raises OSError when it is missing."""
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        return (f"{what} {path} is mode {stat.S_IMODE(mode):o}: it must be readable by its owner only "
                f"(chmod 600 {path})")
    return ""


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

    def check(self) -> None:
        for what, path in (("CA", self.ca), ("certificate", self.cert), ("key", self.key)):
            if not path.is_file():
                raise TlsError(f"TLS {what} {path} is not a readable file")
        if why := loose_mode(self.key, "TLS key"):
            raise TlsError(why)
        try:  # PEM that parses, and a key that is the certificate's: not a bind error at start-up later
            x509.load_pem_x509_certificates(self.ca.read_bytes())
            cert = x509.load_pem_x509_certificate(self.cert.read_bytes())
            key = serialization.load_pem_private_key(self.key.read_bytes(), password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm) as e:
            raise TlsError(f"TLS files {self.ca}, {self.cert}, {self.key}: not PEM certificates and an "
                           f"unencrypted PEM key ({type(e).__name__})") from None  # fmt: skip
        spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        if cert.public_key().public_bytes(*spki) != key.public_key().public_bytes(*spki):
            raise TlsError(f"TLS key {self.key} is not the key of certificate {self.cert}")

    def read(self) -> tuple[bytes, bytes, bytes]:
        return self.ca.read_bytes(), self.cert.read_bytes(), self.key.read_bytes()

    def channel_credentials(self) -> grpc.ChannelCredentials:
        ca, cert, key = self.read()
        return grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert)

    def server_credentials(self) -> grpc.ServerCredentials:
        ca, cert, key = self.read()
        return grpc.ssl_server_credentials([(key, cert)], root_certificates=ca, require_client_auth=True)


@dataclass(frozen=True)
class Login:
    """An etcd user and its password (read from a file readable by its owner only; never logged). etcd
    hands out a token for it, which the etcd adapter renews whenever etcd stops taking it."""

    user: str
    password: str = field(repr=False)

    @classmethod
    def of(cls, user: str | None, password_file: str | Path | None) -> Login | None:
        if not user and not password_file:
            return None
        if not user or not password_file:
            raise TlsError("etcd login needs both the user and the password file (or neither)")
        path = Path(password_file)
        try:
            if why := loose_mode(path, "etcd password file"):
                raise TlsError(why)
            password = path.read_text().strip()
        except OSError as e:
            raise TlsError(f"etcd password file {path} cannot be read: {e.strerror}") from None
        if not password:
            raise TlsError(f"etcd password file {path} is empty")
        return cls(user, password)


_process_tls: TlsFiles | None = None
_process_login: Login | None = None


def configure(files: TlsFiles | None) -> None:
    """Set the process's TLS files, once at start: a node from its settings, a command from its flags or
    the environment. Every channel and server the process opens from then on uses them."""
    global _process_tls
    _process_tls = files


def current() -> TlsFiles | None:
    return _process_tls


def configure_login(login: Login | None) -> None:
    """Set the process's etcd user and password (with or without TLS), once at start."""
    global _process_login
    _process_login = login


def current_login() -> Login | None:
    return _process_login


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
    for raw in context.auth_context().get("peer_uri", []):  # URI names only, never a DNS or IP name
        text = raw.decode(errors="replace")
        if text.startswith(URI_PREFIX):
            parts = text[len(URI_PREFIX):].split("/")
            if len(parts) == 3 and all(parts):
                found.append(Principal(*parts))
    return found


def speaks_for(context: grpc.ServicerContext, ship: str, name: str) -> bool:
    """Whether the caller's certificate names replica `name` of `ship` (always, over plaintext: there is
    no certificate to check, which is why plaintext is for loopback or a private network only)."""
    if current() is None:
        return True
    return any(p.ship == ship and p.role == REPLICA and p.name == name for p in principals(context))
