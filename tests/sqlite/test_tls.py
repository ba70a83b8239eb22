"""A cluster with mutual TLS: the Raft transport and the client port both require a
certificate signed by the cluster's CA; the remote client with one works, a client
without one is refused."""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from nodehost.sqlite import App, TLSOptions, client_tls, connect
from nodehost.sqlite.wire import codec
from tests.sqlite.support import free_addresses


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: str,
    signer: ec.EllipticCurvePrivateKey,
    ca: bool,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    name = lambda cn: x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])  # noqa: E731
    builder = (
        x509.CertificateBuilder()
        .subject_name(name(subject))
        .issuer_name(name(issuer))
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
    return builder.sign(signer, hashes.SHA256())


def _pki(directory: Path, leaves: list[str]) -> dict[str, TLSOptions]:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_file = directory / "ca.pem"
    ca_file.write_bytes(
        _certificate("ca", ca_key, "ca", ca_key, True).public_bytes(serialization.Encoding.PEM)
    )
    out = {}
    for leaf in leaves:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _certificate(leaf, key, "ca", ca_key, False)
        (directory / f"{leaf}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (directory / f"{leaf}.key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        out[leaf] = TLSOptions(
            str(ca_file), str(directory / f"{leaf}.crt"), str(directory / f"{leaf}.key")
        )
    return out


def test_a_mutual_tls_cluster(tmp_path: Path) -> None:
    addresses = free_addresses(3)
    pki = _pki(tmp_path, ["m0", "m1", "m2", "client"])
    apps = [
        App(tmp_path / f"m{n}", address=a, cluster=addresses, rtt_millisecond=20, tls=pki[f"m{n}"])
        for n, a in enumerate(addresses)
    ]
    try:
        for app in apps:
            app.ready(30)
        local = apps[0].open("secure", isolation_level=None)
        local.execute("CREATE TABLE s (v)")
        local.execute("INSERT INTO s VALUES ('over tls')")
        options = pki["client"]
        remote = connect(
            addresses,
            database="secure",
            tls=client_tls(options.ca_file, options.cert_file, options.key_file),
        )
        assert remote.execute("SELECT v FROM s").fetchall() == [("over tls",)]
        remote.close()
        # Without a client certificate the handshake fails: nothing reaches the server.
        context = ssl.create_default_context(cafile=options.ca_file)
        context.check_hostname = False
        host, port = addresses[0].rsplit(":", 1)
        with (
            pytest.raises((ssl.SSLError, ConnectionError, OSError)),
            socket.create_connection((host, int(port)), timeout=10) as raw,
            context.wrap_socket(raw) as wrapped,
        ):
            wrapped.sendall(codec.encode_handshake() + codec.encode_request(codec.LeaderRequest()))
            if not wrapped.recv(64):
                raise ConnectionError("closed without an answer")
    finally:
        for app in apps:
            app.close()
