"""Mutual TLS: peers with a certificate from the deployment's CA talk; nobody else does.

A throwaway CA (and a second, foreign one) is made per test run with `cryptography`.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from transport_kit import Recorder, eventually, heartbeat, make, raw_stream, raw_tcp, run, settle

from protos import raft_pb2 as pb
from transport import TransportConfigError
from transport.base import BaseTransport
from transport.frames import BATCH_METHOD, BIN_VERSION
from transport.tcp_wire import BATCHES, frame_bytes, preamble
from transport.tls import has_peer_certificate

Key = ec.EllipticCurvePrivateKey


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(subject: str, key: Key, issuer: str, issuer_key: Key, ca: bool) -> x509.Certificate:
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


def _pem(obj: x509.Certificate | Key) -> bytes:
    if isinstance(obj, x509.Certificate):
        return obj.public_bytes(serialization.Encoding.PEM)
    return obj.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def make_ca(directory: Path, name: str, leaves: list[str]) -> dict[str, dict[str, str]]:
    """A CA and leaf certificates it signed: {leaf: {"ca_file", "cert_file", "key_file"}}."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _cert(name, ca_key, name, ca_key, ca=True)
    ca_file = directory / f"{name}.pem"
    ca_file.write_bytes(_pem(ca_cert))
    out = {}
    for leaf in leaves:
        key = ec.generate_private_key(ec.SECP256R1())
        (directory / f"{leaf}.crt").write_bytes(_pem(_cert(leaf, key, name, ca_key, ca=False)))
        (directory / f"{leaf}.key").write_bytes(_pem(key))
        out[leaf] = {
            "ca_file": str(ca_file),
            "cert_file": str(directory / f"{leaf}.crt"),
            "key_file": str(directory / f"{leaf}.key"),
        }
    return out


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, str]]:
    d = tmp_path_factory.mktemp("pki")
    return {
        **make_ca(d, "deployment-ca", ["nh1", "nh2", "nh3"]),
        **make_ca(d, "foreign-ca", ["intruder"]),
    }


TRANSPORTS = ("grpc", "tcp")


class Cluster:
    def __init__(
        self, pki: dict[str, dict[str, str]], tmp: Path, kind: str = "grpc", **kw: object
    ) -> None:
        self.root = tmp / "snapshots"
        self.root.mkdir()
        self.ha = Recorder(hosted={(1, 1)})
        self.hb = Recorder(hosted={(1, 2)}, snapshot_root=str(self.root))
        self.a = make(kind, self.ha, mutual_tls=True, **pki["nh1"], **kw)
        self.b = make(kind, self.hb, mutual_tls=True, **pki["nh2"], **kw)
        self.a.registry.add(1, 2, self.b.config.raft_address)
        self.b.registry.add(1, 1, self.a.config.raft_address)

    async def start(self) -> Cluster:
        await self.a.start()
        await self.b.start()
        return self

    async def close(self) -> None:
        await self.a.close()
        await self.b.close()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_members_of_the_deployment_talk_over_mutual_tls(
    transport: str, pki: dict[str, dict[str, str]], tmp_path: Path
) -> None:
    snapshot_file = tmp_path / "snap.bin"
    snapshot_file.write_bytes(b"s" * 100_000)

    async def main() -> None:
        c = await Cluster(pki, tmp_path, transport).start()
        try:
            c.a.send([heartbeat(to=2, from_id=1)])
            c.b.send([heartbeat(to=1, from_id=2)])
            await eventually(lambda: len(c.ha.messages) == 1 and len(c.hb.messages) == 1)
            c.a.send_snapshot(
                pb.Message(
                    type=pb.INSTALL_SNAPSHOT,
                    shard_id=1,
                    to=2,
                    from_id=1,
                    term=2,
                    snapshot=pb.Snapshot(index=5, term=2, filepath=str(snapshot_file)),
                )
            )
            await eventually(lambda: bool(c.ha.statuses))
            assert c.ha.statuses == [(1, 2, False)] and len(c.hb.snapshots) == 1
        finally:
            await c.close()

    run("uvloop", main)


def _outsider(kind: str, transport: str, pki: dict[str, dict[str, str]]) -> BaseTransport:
    if kind == "foreign-ca":  # a proper certificate, from the wrong CA
        return make(transport, Recorder(), mutual_tls=True, **pki["intruder"])
    return make(transport, Recorder())  # no TLS at all


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("kind", ["foreign-ca", "plaintext"])
def test_outsiders_never_reach_the_engine(
    kind: str, transport: str, pki: dict[str, dict[str, str]], tmp_path: Path
) -> None:
    async def main() -> None:
        c = await Cluster(pki, tmp_path, transport).start()
        outsider = _outsider(kind, transport, pki)
        await outsider.start()
        outsider.registry.add(1, 2, c.b.config.raft_address)
        try:
            outsider.send([heartbeat(to=2, from_id=1)])
            await eventually(
                lambda: outsider.stats.connect_failures >= 1, what="the handshake to fail"
            )
            assert outsider.handler.unreachable == [(1, 2)]  # type: ignore[attr-defined]
            await settle()
            assert c.hb.messages == []
            c.a.send([heartbeat(to=2, from_id=1)])  # members still talk
            await eventually(lambda: len(c.hb.messages) == 1)
        finally:
            await outsider.close()
            await c.close()

    run("asyncio", main)


def test_a_client_without_a_certificate_is_refused(
    pki: dict[str, dict[str, str]], tmp_path: Path
) -> None:
    ca = Path(pki["nh1"]["ca_file"]).read_bytes()

    async def main() -> None:
        c = await Cluster(pki, tmp_path).start()
        try:
            frame = pb.MessageBatch(
                deployment_id=7, bin_ver=BIN_VERSION, requests=[heartbeat(to=2, from_id=1)]
            ).SerializeToString()
            with pytest.raises(grpc.aio.AioRpcError) as e:
                # Trusts the server, but has no certificate of its own to show.
                await raw_stream(
                    c.b.config.raft_address, BATCH_METHOD, [frame], grpc.ssl_channel_credentials(ca)
                )
            assert e.value.code() == grpc.StatusCode.UNAVAILABLE
            assert c.hb.messages == []
            c.a.send([heartbeat(to=2, from_id=1)])
            await eventually(lambda: len(c.hb.messages) == 1)
        finally:
            await c.close()

    run("uvloop", main)


def test_unreadable_credentials_are_a_config_error(
    pki: dict[str, dict[str, str]], tmp_path: Path
) -> None:
    not_pem = tmp_path / "key.txt"
    not_pem.write_text("hello")
    with pytest.raises(TransportConfigError, match="not PEM"):
        make("grpc", Recorder(), mutual_tls=True, **{**pki["nh1"], "key_file": str(not_pem)})


class _Context:
    def __init__(self, auth: dict[str, list[bytes]]) -> None:
        self._auth = auth

    def auth_context(self) -> dict[str, list[bytes]]:
        return self._auth


def test_the_server_also_checks_for_a_verified_peer_certificate() -> None:
    """Belt and braces behind require_client_auth: a stream without one is refused."""
    assert has_peer_certificate(_Context({"x509_pem_cert": [b"-----BEGIN CERTIFICATE-----"]}))
    assert not has_peer_certificate(_Context({"transport_security_type": [b"ssl"]}))
    assert not has_peer_certificate(_Context({}))


def test_tcp_a_client_without_a_certificate_or_a_handshake_is_refused(
    pki: dict[str, dict[str, str]], tmp_path: Path
) -> None:
    """The TCP transport's TLS port: a client that trusts the server but shows no
    certificate, one that never starts the handshake and one that sends plain bytes
    all get nothing through, and the members keep talking."""
    trusting = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    trusting.check_hostname = False
    trusting.load_verify_locations(pki["nh1"]["ca_file"])

    async def main() -> None:
        c = await Cluster(pki, tmp_path, "tcp", connect_timeout=0.5).start()  # bounds handshakes
        try:
            target = c.b.config.raft_address
            frame = pb.MessageBatch(
                deployment_id=7, bin_ver=BIN_VERSION, requests=[heartbeat(to=2, from_id=1)]
            ).SerializeToString()
            try:  # TLS 1.3: the refusal may come after the client's handshake ends
                await raw_tcp(target, BATCHES, [frame], tls=trusting)
            except (ssl.SSLError, ConnectionError):
                pass
            host, port = target.rsplit(":", 1)
            began = asyncio.get_running_loop().time()
            for opening in (b"", preamble(BATCHES) + frame_bytes(frame)):
                reader, writer = await asyncio.open_connection(host, int(port))
                writer.write(opening)
                async with asyncio.timeout(10):  # the server hangs up on both
                    while await reader.read(65536):
                        pass
                writer.close()
            assert asyncio.get_running_loop().time() - began < 8
            await settle()
            assert c.hb.messages == []
            c.a.send([heartbeat(to=2, from_id=1)])
            await eventually(lambda: len(c.hb.messages) == 1)
        finally:
            await c.close()

    run("uvloop", main)
