"""Test PKI in QEMU's tls-creds-x509 layout, made with `cryptography`."""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

ALICE_DN = "CN=alice,O=Example Org,C=GB"
BOB_DN = "CN=bob,O=Example Org,C=GB"


def _name(rfc4514: str) -> x509.Name:
    oids = {"CN": NameOID.COMMON_NAME, "O": NameOID.ORGANIZATION_NAME,
            "C": NameOID.COUNTRY_NAME}
    # RFC 4514 lists the last RDN first
    parts = [p.split("=", 1) for p in rfc4514.split(",")][::-1]
    return x509.Name([x509.NameAttribute(oids[k], v) for k, v in parts])


class PKI:
    """A CA, a server certificate for 127.0.0.1 and client certificates (by DN)."""

    def __init__(self) -> None:
        self.now = datetime.datetime.now(datetime.UTC)
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        self.ca = self._sign(_name("CN=pemu test CA"), self.ca_key.public_key(), 1,
                             ca=True)
        self.serial = 1

    def _sign(self, subject, public_key, serial: int, ca=False, usage=None, san=None):
        b = (x509.CertificateBuilder().subject_name(subject)
             .issuer_name(_name("CN=pemu test CA")).public_key(public_key)
             .serial_number(serial)
             .not_valid_before(self.now - datetime.timedelta(days=1))
             .not_valid_after(self.now + datetime.timedelta(days=1)))
        if ca:
            b = b.add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        if usage:
            b = b.add_extension(x509.ExtendedKeyUsage([usage]), False)
        if san:
            b = b.add_extension(x509.SubjectAlternativeName(san), False)
        return b.sign(self.ca_key, hashes.SHA256())

    def _leaf(self, dn: str, usage, san=None):
        self.serial += 1
        key = ec.generate_private_key(ec.SECP256R1())
        return key, self._sign(_name(dn), key.public_key(), self.serial, usage=usage, san=san)

    @staticmethod
    def _write(d: Path, stem: str, key, cert, password: bytes | None = None) -> None:
        enc = serialization.BestAvailableEncryption(password) if password \
            else serialization.NoEncryption()
        (d / f"{stem}-cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (d / f"{stem}-key.pem").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc))

    def server_dir(self, d: Path, password: bytes | None = None) -> Path:
        d.mkdir(parents=True, exist_ok=True)
        (d / "ca-cert.pem").write_bytes(self.ca.public_bytes(serialization.Encoding.PEM))
        key, cert = self._leaf("CN=127.0.0.1", ExtendedKeyUsageOID.SERVER_AUTH,
                               [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
        self._write(d, "server", key, cert, password)
        return d

    def client_dir(self, d: Path, dn: str = ALICE_DN) -> Path:
        d.mkdir(parents=True, exist_ok=True)
        (d / "ca-cert.pem").write_bytes(self.ca.public_bytes(serialization.Encoding.PEM))
        key, cert = self._leaf(dn, ExtendedKeyUsageOID.CLIENT_AUTH)
        self._write(d, "client", key, cert)
        return d
