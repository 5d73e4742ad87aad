"""A throwaway certificate authority for local clusters (`seguro cluster up --tls`) and tests: a CA, and
certificates it signs for etcd members, replicas and operators (node/tls.py says what their names mean).

Keys are EC P-256, written mode 600. Certificates last 30 days unless asked otherwise (`seguro tls`, which
the Ansible roles use, gives a year and renews what expires within 30 days)."""

from __future__ import annotations

import datetime
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from seguro.node.tls import TlsError, TlsFiles

VALID_DAYS = 30
SIGNING_ONLY = x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                             data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                             encipher_only=False, decipher_only=False)  # fmt: skip
BOTH_ENDS = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH])


class Authority:
    """A CA kept in a directory: ca.pem and ca.key; `issue` writes NAME.pem and NAME.key beside them."""

    def __init__(
        self, root: Path, name: str = "Seguro local CA", days: int = VALID_DAYS, create: bool = True
    ) -> None:
        self.root = root
        self.cert_path, self.key_path = root / "ca.pem", root / "ca.key"
        if not create and not self.cert_path.exists():
            raise FileNotFoundError(f"no CA in {root} (make one first: seguro tls ca {root})")
        if self.cert_path.exists() != self.key_path.exists():  # never a new CA over half of an old one
            raise ValueError(f"{root} holds one of ca.pem and ca.key without the other: restore it or "
                             "move it away (a new CA would orphan every certificate the old one signed)")
        root.mkdir(parents=True, exist_ok=True)
        if self.cert_path.exists():
            self._key, self._cert = _load_ca(self.cert_path, self.key_path)
            return
        self._key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self._cert = (
            _builder(subject, subject, self._key.public_key(), days)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(SIGNING_ONLY, critical=True)
            .sign(self._key, hashes.SHA256())
        )
        _write_key(self.key_path, self._key)
        self.cert_path.write_bytes(self._cert.public_bytes(serialization.Encoding.PEM))

    def fresh(self, name: str, for_days: int, common_name: str, uris: tuple[str, ...] = (),
              hosts: tuple[str, ...] = ()) -> bool:  # fmt: skip
        """Whether NAME.pem exists, was signed by this very CA, names what would be issued now (CN, URIs,
        hosts: an older certificate with another CN, say, is issued again) and stays valid `for_days`."""
        path, key_path = self.root / f"{name}.pem", self.root / f"{name}.key"
        if not path.exists() or not key_path.exists():
            return False
        try:  # anything unreadable, foreign or half-written (a key that is not the certificate's): issue
            TlsFiles(self.cert_path, path, key_path).check()
            cert = x509.load_pem_x509_certificate(path.read_bytes())
            cert.verify_directly_issued_by(self._cert)
        except (TlsError, ValueError, TypeError, InvalidSignature):
            return False
        try:
            names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            held = {str(n.value) for n in names}
        except x509.ExtensionNotFound:  # issued with no names at all
            held = set()
        cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        until = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=for_days)
        same = [a.value for a in cn] == [common_name] and held == {*uris, *hosts}
        return same and cert.not_valid_after_utc > until

    def issue(
        self, name: str, common_name: str, uris: tuple[str, ...] = (), hosts: tuple[str, ...] = (),
        days: int = VALID_DAYS,
    ) -> TlsFiles:  # fmt: skip
        """A certificate for both ends of a connection (server and client auth), valid for `hosts` (IP
        addresses or DNS names) and speaking for `uris` (seguro://SHIP/ROLE/NAME)."""
        key = ec.generate_private_key(ec.SECP256R1())
        names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(u) for u in uris]
        for host in hosts:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        builder = _builder(subject, self._cert.subject, key.public_key(), days)
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        cert = (
            builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(BOTH_ENDS, critical=False)
            .sign(self._key, hashes.SHA256())
        )
        cert_path, key_path = self.root / f"{name}.pem", self.root / f"{name}.key"
        _write_key(key_path, key)
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return TlsFiles(self.cert_path, cert_path, key_path)


def _builder(subject: x509.Name, issuer: x509.Name, public_key: object, days: int) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
    )


def _load_ca(cert_path: Path, key_path: Path) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """The CA's key and certificate, checked as a node checks its own files (mode 600, PEM, matching)."""
    try:
        TlsFiles(cert_path, cert_path, key_path).check()
    except TlsError as e:
        raise ValueError(f"the CA in {cert_path.parent}: {e}") from None
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    return key, x509.load_pem_x509_certificate(cert_path.read_bytes())  # type: ignore[return-value]


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())  # fmt: skip
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # a key file reissued in place keeps its mode through O_TRUNC
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
