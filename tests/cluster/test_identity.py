"""Keys and certificates: each member's own, the cluster's, and the database's under it."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from nodehost.cluster import identity
from nodehost.cluster.errors import BadRequest
from nodehost.cluster.pem import KeyPair


def test_a_member_certificate_names_the_member_and_its_host() -> None:
    pair = identity.generate_member("mc1", "127.0.0.1")
    certificate = x509.load_pem_x509_certificate(pair.certificate.encode())
    assert identity.common_name(pair.certificate) == "mc1"
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["mc1"]
    assert [str(a) for a in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert not certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert len(pair.fingerprint) == 64
    assert pair.fingerprint == identity.fingerprint(pair.certificate)
    identity.check_pair(pair)


def test_each_member_has_its_own_key() -> None:
    one, two = identity.generate_member("a", "h"), identity.generate_member("a", "h")
    assert one.fingerprint != two.fingerprint


def test_the_database_certificate_is_signed_by_the_cluster_key() -> None:
    cluster = identity.generate_cluster("nodehost-cluster-mc1")
    member = identity.generate_member("mc2", "10.0.0.2")
    pem = identity.issue_database_certificate(cluster, member, "mc2", "10.0.0.2")
    issued = x509.load_pem_x509_certificate(pem.encode())
    authority = x509.load_pem_x509_certificate(cluster.certificate.encode())
    assert authority.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    public = authority.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    issued.verify_directly_issued_by(authority)
    # the member's own key, so one key file serves both certificates
    key_bytes = issued.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    own = x509.load_pem_x509_certificate(member.certificate.encode()).public_key()
    assert key_bytes == own.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_a_key_of_another_certificate_is_refused() -> None:
    one, two = identity.generate_member("a", "h"), identity.generate_member("b", "h")
    with pytest.raises(BadRequest, match="does not belong"):
        identity.check_pair(KeyPair(one.certificate, two.key))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "missing"),
        ("hello", "exactly one PEM certificate"),
        ("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "not valid PEM"),
    ],
)
def test_bad_certificates_are_refused(text: str, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        identity.load_certificate(text)


def test_two_certificates_in_one_are_refused() -> None:
    one = identity.generate_member("a", "h").certificate
    with pytest.raises(BadRequest, match="exactly one"):
        identity.load_certificate(one + one)
