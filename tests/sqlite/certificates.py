"""A throwaway CA and the leaf certificates it signs, for the mutual TLS tests."""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

Key = ec.EllipticCurvePrivateKey


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(
    subject: str, key: Key, issuer: str, issuer_key: Key, ca: bool
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(item: x509.Certificate | Key) -> bytes:
    if isinstance(item, x509.Certificate):
        return item.public_bytes(serialization.Encoding.PEM)
    return item.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def make_ca(directory: Path, name: str, leaves: list[str]) -> dict[str, dict[str, str]]:
    """{leaf: {"ca_file", "cert_file", "key_file"}} for leaves signed by a new CA `name`."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_file = directory / f"{name}.pem"
    ca_file.write_bytes(_pem(_certificate(name, ca_key, name, ca_key, ca=True)))
    issued = {}
    for leaf in leaves:
        key = ec.generate_private_key(ec.SECP256R1())
        (directory / f"{leaf}.crt").write_bytes(
            _pem(_certificate(leaf, key, name, ca_key, ca=False))
        )
        (directory / f"{leaf}.key").write_bytes(_pem(key))
        issued[leaf] = {
            "ca_file": str(ca_file),
            "cert_file": str(directory / f"{leaf}.crt"),
            "key_file": str(directory / f"{leaf}.key"),
        }
    return issued
