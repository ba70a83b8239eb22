"""Keys and certificates: a member's own identity, the cluster's authority, fingerprints.

Rules:
- Each member generates its own key and a self-signed certificate naming it (CN and a DNS
  name equal to the member name, plus the host of its address). Members know each other
  by the SHA-256 fingerprint of that certificate, stored in the member table; nothing
  signs it, so no authority can vouch for a member the cluster did not admit.
- The cluster has its own key and self-signed certificate, made by the member that
  bootstraps it and handed to each member that joins (over a connection the joiner has
  checked against the fingerprint in its token). It is what the network listener
  presents, and the authority of the database's transport: each member's database
  certificate (its own key, the host of its address) is signed by the cluster key, so
  the Raft transport and the database port admit exactly the cluster's members.
- Keys are EC P-256. A certificate from a peer is parsed here and refused with a clear
  error when it is not PEM, not one certificate, or expired.
"""

from __future__ import annotations

import datetime
import ipaddress

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from nodehost.cluster.errors import BadRequest
from nodehost.cluster.pem import KeyPair, fingerprint_der

VALIDITY = datetime.timedelta(days=3650)
# A clock a little behind the issuer's must not see a fresh certificate as not yet valid.
BACKDATE = datetime.timedelta(hours=1)
MAX_CERTIFICATE_LENGTH = 16_384


def fingerprint(certificate_pem: str) -> str:
    """The fingerprint of a certificate checked to be one valid certificate."""
    return fingerprint_der(
        load_certificate(certificate_pem).public_bytes(serialization.Encoding.DER)
    )


def load_certificate(certificate_pem: str) -> x509.Certificate:
    """One PEM certificate, or BadRequest saying what is wrong with it."""
    if not isinstance(certificate_pem, str) or not certificate_pem.strip():
        raise BadRequest("the certificate is missing")
    if len(certificate_pem) > MAX_CERTIFICATE_LENGTH:
        raise BadRequest("the certificate is too long")
    if certificate_pem.count("-----BEGIN CERTIFICATE-----") != 1:
        raise BadRequest("expected exactly one PEM certificate")
    try:
        certificate = x509.load_pem_x509_certificate(certificate_pem.encode())
    except ValueError as exc:
        raise BadRequest(f"the certificate is not valid PEM: {exc}") from None
    now = datetime.datetime.now(datetime.UTC)
    if certificate.not_valid_after_utc < now:
        raise BadRequest("the certificate has expired")
    return certificate


def common_name(certificate_pem: str) -> str:
    names = load_certificate(certificate_pem).subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else ""


def generate_member(name: str, host: str) -> KeyPair:
    """A member's own key and self-signed certificate (client and server use)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    builder = _builder(subject, subject, key.public_key(), _alternative_names(name, host))
    builder = builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
    builder = builder.add_extension(_usage(certificate_sign=False), True)
    return _pair(builder.sign(key, hashes.SHA256()), key)


def generate_cluster(name: str) -> KeyPair:
    """The cluster's key and self-signed certificate: the authority of database
    certificates, and the network listener's certificate."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "nodehost cluster"),
            x509.NameAttribute(NameOID.COMMON_NAME, name),
        ]
    )
    builder = _builder(subject, subject, key.public_key(), [x509.DNSName(name)])
    builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=0), True)
    builder = builder.add_extension(_usage(certificate_sign=True), True)
    return _pair(builder.sign(key, hashes.SHA256()), key)


def issue_database_certificate(cluster: KeyPair, member: KeyPair, name: str, host: str) -> str:
    """A certificate for `member`'s key, signed by the cluster key, for the Raft transport
    and the database port at `host` (gRPC checks the host against it)."""
    cluster_certificate = load_certificate(cluster.certificate)
    cluster_key = _load_key(cluster.key)
    member_key = _load_key(member.key)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    builder = _builder(
        subject,
        cluster_certificate.subject,
        member_key.public_key(),
        _alternative_names(name, host),
    )
    builder = builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
    builder = builder.add_extension(_usage(certificate_sign=False), True)
    certificate = builder.sign(cluster_key, hashes.SHA256())
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def check_pair(pair: KeyPair) -> None:
    """Raise BadRequest unless the key belongs to the certificate."""
    certificate = load_certificate(pair.certificate)
    try:
        key = _load_key(pair.key)
    except ValueError as exc:
        raise BadRequest(f"the key is not valid PEM: {exc}") from None
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    if certificate.public_key().public_bytes(
        serialization.Encoding.DER, public
    ) != key.public_key().public_bytes(serialization.Encoding.DER, public):
        raise BadRequest("the key does not belong to the certificate")


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    names: list[x509.GeneralName],
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.SubjectAlternativeName(names), False)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            False,
        )
    )


def _usage(*, certificate_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=True,
        key_cert_sign=certificate_sign,
        crl_sign=certificate_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _alternative_names(name: str, host: str) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = [x509.DNSName(name)]
    try:
        names.append(x509.IPAddress(ipaddress.ip_address(host.strip("[]"))))
    except ValueError:
        if host != name:
            names.append(x509.DNSName(host))
    return names


def _pair(certificate: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> KeyPair:
    return KeyPair(
        certificate.public_bytes(serialization.Encoding.PEM).decode(),
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode(),
    )


def _load_key(key_pem: str) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("not an EC key")
    return key
