"""Throwaway certificate authorities for the admin service's TLS tests."""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: str,
    signer: ec.EllipticCurvePrivateKey,
    ca: bool,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(signer, hashes.SHA256())


def make_ca(directory: Path, name: str, leaves: list[str]) -> dict[str, dict[str, str]]:
    """A CA and leaf certificates it signed: {leaf: {"ca_file", "cert_file", "key_file"}}."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_file = directory / f"{name}-ca.pem"
    ca_file.write_bytes(
        _certificate(name, ca_key, name, ca_key, ca=True).public_bytes(serialization.Encoding.PEM)
    )
    out = {}
    for leaf in leaves:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _certificate(leaf, key, name, ca_key, ca=False)
        (directory / f"{leaf}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (directory / f"{leaf}.key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        out[leaf] = {
            "ca_file": str(ca_file),
            "cert_file": str(directory / f"{leaf}.crt"),
            "key_file": str(directory / f"{leaf}.key"),
        }
    return out
