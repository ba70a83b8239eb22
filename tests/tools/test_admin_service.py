"""The admin service serves only those who already control the host: its own user (and
root) on a unix socket, holders of a certificate from the cluster's CA over TCP. And it
answers hostile bytes with an error, never with a crash or an unbounded buffer."""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import stat
import struct
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from nodehost import Config, InvalidConfig, NodeHost, NodeHostConfig
from nodehost.admin import protocol
from nodehost.tools import AdminClient, ConnectionFailed
from tests.host.cluster import KV, free_ports
from tests.tools.certs import make_ca
from tests.tools.hosts import REPO, run_nodehost, wait_for

pytestmark = pytest.mark.integration


def start_host(directory: Path, **config: object) -> NodeHost:
    (port,) = free_ports(1)
    address = f"127.0.0.1:{port}"
    nh = NodeHost(
        NodeHostConfig(
            node_host_dir=str(directory),
            raft_address=address,
            rtt_millisecond=20,
            **config,  # type: ignore[arg-type]
        )
    )
    nh.start_replica({1: address}, False, KV, Config(shard_id=1, replica_id=1))
    return nh


@pytest.fixture
def certificates(tmp_path: Path) -> dict[str, dict[str, str]]:
    cluster = make_ca(tmp_path, "cluster", ["host", "operator"])
    foreign = make_ca(tmp_path, "foreign", ["intruder"])
    return {**cluster, **foreign}


@pytest.fixture
def tls_host(
    tmp_path: Path, certificates: dict[str, dict[str, str]]
) -> Iterator[tuple[NodeHost, int]]:
    (admin_port,) = free_ports(1)
    nh = start_host(
        tmp_path / "nh",
        mutual_tls=True,
        admin_address=f"127.0.0.1:{admin_port}",
        **certificates["host"],
    )
    try:
        yield nh, admin_port
    finally:
        nh.close()


def test_a_client_with_the_clusters_certificate_is_served(
    tls_host: tuple[NodeHost, int], certificates: dict[str, dict[str, str]]
) -> None:
    nh, port = tls_host
    with AdminClient(f"127.0.0.1:{port}", **certificates["operator"]) as admin:
        assert admin.info().node_host_id == nh.id
        assert wait_for("a leader", lambda: admin.leader(1).known)
    files = certificates["operator"]
    result = run_nodehost(
        "info", "--admin", f"127.0.0.1:{port}", "--ca-file", files["ca_file"],
        "--cert-file", files["cert_file"], "--key-file", files["key_file"],
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"node host id  {nh.id}" in result.stdout


def test_a_client_without_the_clusters_certificate_is_refused(
    tls_host: tuple[NodeHost, int], certificates: dict[str, dict[str, str]], tmp_path: Path
) -> None:
    nh, port = tls_host
    # A certificate from another CA: the handshake fails, no operation is reached.
    intruder = {**certificates["intruder"], "ca_file": certificates["operator"]["ca_file"]}
    with pytest.raises(ConnectionFailed), AdminClient(f"127.0.0.1:{port}", **intruder) as admin:
        admin.info()
    result = run_nodehost(
        "info", "--admin", f"127.0.0.1:{port}", "--ca-file", intruder["ca_file"],
        "--cert-file", intruder["cert_file"], "--key-file", intruder["key_file"],
    )  # fmt: skip
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1
    assert result.stdout == ""

    # TLS without any client certificate.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cafile=certificates["operator"]["ca_file"])
    assert no_answer(lambda raw: context.wrap_socket(raw, server_hostname="127.0.0.1"), port)
    # No TLS at all.
    assert no_answer(lambda raw: raw, port)
    # The host itself never noticed.
    with AdminClient(f"127.0.0.1:{port}", **certificates["operator"]) as admin:
        assert admin.info().node_host_id == nh.id


def no_answer(wrap: object, port: int) -> bool:
    """True when a request over this kind of connection gets no answer."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        sock = wrap(raw)  # type: ignore[operator]
        sock.sendall(protocol.encode(protocol.request("info", {})))
        data = sock.recv(4096)
        return data == b""
    except (ssl.SSLError, ConnectionError):
        return True
    finally:
        raw.close()


def test_only_a_unix_socket_or_mutual_tls(
    tmp_path: Path, certificates: dict[str, dict[str, str]]
) -> None:
    with pytest.raises(InvalidConfig, match="admin_address: a TCP admin service needs mutual_tls"):
        NodeHostConfig(
            node_host_dir=str(tmp_path), raft_address="127.0.0.1:1", admin_address="127.0.0.1:2"
        )
    with pytest.raises(InvalidConfig, match="the Raft transport's address"):
        NodeHostConfig(
            node_host_dir=str(tmp_path),
            raft_address="127.0.0.1:1",
            admin_address="127.0.0.1:1",
            mutual_tls=True,
            **certificates["host"],
        )
    with pytest.raises(InvalidConfig, match="not host:port"):
        NodeHostConfig(
            node_host_dir=str(tmp_path), raft_address="127.0.0.1:1", admin_address="nowhere"
        )


def test_the_unix_socket_is_owner_only_and_checked(tmp_path: Path) -> None:
    path = tmp_path / "admin.sock"
    regular = tmp_path / "file.sock"
    regular.write_text("not a socket")
    with pytest.raises(InvalidConfig, match="exists and is not a socket"):
        start_host(tmp_path / "bad", admin_address=f"unix:{regular}")
    assert regular.read_text() == "not a socket"
    nh = start_host(tmp_path / "nh", admin_address=f"unix:{path}")
    try:
        mode = path.lstat().st_mode
        assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600
        assert path.lstat().st_uid == os.geteuid()
        assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".nodehost-admin")] == []
        with pytest.raises(InvalidConfig, match="in use by another process"):
            start_host(tmp_path / "other", admin_address=f"unix:{path}")
        with AdminClient(f"unix:{path}") as admin:
            assert admin.info().node_host_id == nh.id
        if os.geteuid() != 0:
            pytest.skip("acting as another user needs root")
        # Another user cannot open the socket, and, were its mode loosened, is refused
        # by its credentials all the same. (A second link, in a directory anyone may
        # enter, so that only the socket's own mode and the service stand in the way.)
        public = Path(tempfile.mkdtemp(prefix="nodehost-admin-test-"))
        try:
            public.chmod(0o755)
            link = public / "admin.sock"
            os.link(path, link)
            assert as_nobody(link) == "PermissionError"
            os.chmod(path, 0o666)
            assert as_nobody(link) == protocol.PERMISSION_DENIED
        finally:
            shutil.rmtree(public)
    finally:
        nh.close()
    assert not path.exists()


def as_nobody(path: Path) -> str:
    """What user 65534 gets when it connects to the socket."""
    code = f"""
import os, socket, struct, json
os.setgid(65534); os.setuid(65534)
s = socket.socket(socket.AF_UNIX)
try:
    s.connect({str(path)!r})
except PermissionError:
    print("PermissionError"); raise SystemExit
s.settimeout(10)
head = s.recv(4)  # a refused peer is told at once, before it asks anything
body = s.recv(struct.unpack(">I", head)[0]) if len(head) == 4 else b""
print(json.loads(body)["error"]["kind"] if body else "closed")
"""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, cwd=REPO
    )
    return result.stdout.strip() or result.stderr.strip()


def exchange(sock: socket.socket, data: bytes) -> dict[str, object] | None:
    sock.sendall(data)
    head = sock.recv(4)
    if len(head) < 4:
        return None
    (length,) = struct.unpack(">I", head)
    body = b""
    while len(body) < length:
        chunk = sock.recv(length - len(body))
        if not chunk:
            return None
        body += chunk
    answer: dict[str, object] = json.loads(body)
    return answer


def test_hostile_requests_get_errors_and_bounds(tmp_path: Path) -> None:
    path = tmp_path / "admin.sock"
    nh = start_host(tmp_path / "nh", admin_address=f"unix:{path}")
    try:
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(10)
        s.connect(str(path))

        def request(op: object, args: object, version: object = protocol.VERSION) -> bytes:
            body = json.dumps({"version": version, "op": op, "args": args}).encode()
            return struct.pack(">I", len(body)) + body

        def kind(answer: dict[str, object] | None) -> str:
            assert answer is not None and isinstance(answer.get("error"), dict), answer
            return str(answer["error"]["kind"])  # type: ignore[index]

        # Refused requests leave the connection usable.
        assert kind(exchange(s, request("format-disk", {}))) == protocol.BAD_REQUEST
        assert kind(exchange(s, request("info", {}, version=2))) == protocol.BAD_REQUEST
        assert kind(exchange(s, request("members", {"shard_id": "x"}))) == protocol.BAD_REQUEST
        assert (
            kind(exchange(s, request("members", {"shard_id": 1, "timeout": -1})))
            == protocol.BAD_REQUEST
        )
        assert (
            kind(exchange(s, request("add", {"shard_id": 1, "replica_id": 2})))
            == protocol.BAD_REQUEST
        )
        assert kind(
            exchange(s, request("snapshot", {"shard_id": 1, "export_path": "relative"}))
        ) == (protocol.BAD_REQUEST)
        assert kind(exchange(s, request("members", {"shard_id": 7}))) == "ShardNotFound"
        answer = exchange(s, request("info", {}))
        assert answer is not None and answer["ok"]["node_host_id"] == nh.id  # type: ignore[index]
        # Malformed frames end the connection after saying why.
        assert kind(exchange(s, struct.pack(">I", 3) + b"{x}")) == protocol.BAD_REQUEST
        assert s.recv(1) == b""
        s.close()
        s = socket.socket(socket.AF_UNIX)
        s.connect(str(path))
        assert kind(exchange(s, struct.pack(">I", protocol.MAX_FRAME + 1))) == protocol.BAD_REQUEST
        assert s.recv(1) == b""
        s.close()

        # Connections are bounded; the service recovers once they close.
        held = []
        for _ in range(32):
            c = socket.socket(socket.AF_UNIX)
            c.connect(str(path))
            held.append(c)
        assert exchange(held[0], request("info", {})) is not None  # all 32 are being served
        extra = socket.socket(socket.AF_UNIX)
        extra.settimeout(10)
        extra.connect(str(path))
        assert extra.recv(1) == b""
        extra.close()
        for c in held:
            c.close()
        wait_for(
            "a connection to be served again",
            lambda: AdminClient(f"unix:{path}").info().node_host_id == nh.id,
        )
    finally:
        nh.close()
