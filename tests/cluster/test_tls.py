"""TLS between members, on real loopback sockets: the listener accepts exactly the
trusted members' certificates (and callers without one), a removed member is refused
from its next connection, a joiner refuses a listener whose certificate does not match
its token before sending anything, and a member refuses a foreign cluster."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Generator
from pathlib import Path

import pytest

from nodehost.cluster import identity
from nodehost.cluster.client import Client, WrongCluster
from nodehost.cluster.errors import Forbidden
from nodehost.cluster.statedir import StateDir
from nodehost.cluster.tls import ServerTLS, member_client_context, peer_fingerprint


class Listener:
    def __init__(self, directory: Path, cluster: identity.KeyPair) -> None:
        certificate, key = directory / "cluster.crt", directory / "cluster.key"
        certificate.write_text(cluster.certificate)
        key.write_text(cluster.key)
        self.tls = ServerTLS(certificate, key)
        self.requests: list[str | None] = []
        listener = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                caller = peer_fingerprint(self.connection)  # type: ignore[arg-type]
                listener.requests.append(caller)
                body = json.dumps({"type": "sync", "metadata": caller}).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        class Server(http.server.ThreadingHTTPServer):
            def get_request(self):  # type: ignore[no-untyped-def]
                sock, address = super().get_request()
                return listener.tls.context.wrap_socket(sock, server_side=True), address

            def handle_error(self, request, client_address) -> None:  # type: ignore[no-untyped-def]
                pass  # refused handshakes are the point of these tests

        self.server = Server(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def member_state(
    directory: Path, name: str, cluster: identity.KeyPair
) -> tuple[StateDir, identity.KeyPair]:
    layout = StateDir(directory / name)
    layout.create()
    pair = identity.generate_member(name, "127.0.0.1")
    layout.save_pair(pair, layout.server_certificate, layout.server_key)
    layout.write(layout.cluster_certificate, cluster.certificate)
    return layout, pair


@pytest.fixture
def cluster() -> identity.KeyPair:
    return identity.generate_cluster("nodehost-cluster-test")


@pytest.fixture
def listener(tmp_path: Path, cluster: identity.KeyPair) -> Generator[Listener, None, None]:
    server = Listener(tmp_path, cluster)
    try:
        yield server
    finally:
        server.close()


def test_a_trusted_member_is_known_by_its_certificate(
    tmp_path: Path, cluster: identity.KeyPair, listener: Listener
) -> None:
    layout, pair = member_state(tmp_path, "mc2", cluster)
    listener.tls.trust([pair.certificate])
    assert Client.remote(layout.root, listener.address).request("GET", "/") == pair.fingerprint


def test_an_untrusted_member_is_refused_at_the_handshake(
    tmp_path: Path, cluster: identity.KeyPair, listener: Listener
) -> None:
    layout, _ = member_state(tmp_path, "mc2", cluster)
    _, other = member_state(tmp_path, "mc3", cluster)
    listener.tls.trust([other.certificate])
    with pytest.raises(Forbidden, match="does not trust this member's certificate"):
        Client.remote(layout.root, listener.address).request("GET", "/")
    assert listener.requests == []


def test_a_member_removed_from_the_trust_set_is_refused_from_the_next_connection(
    tmp_path: Path, cluster: identity.KeyPair, listener: Listener
) -> None:
    layout, pair = member_state(tmp_path, "mc2", cluster)
    listener.tls.trust([pair.certificate])
    client = Client.remote(layout.root, listener.address)
    assert client.request("GET", "/") == pair.fingerprint
    listener.tls.trust([])
    with pytest.raises(Forbidden):
        client.request("GET", "/")
    assert len(listener.requests) == 1


def test_a_joiner_without_certificate_gets_in_anonymously(
    cluster: identity.KeyPair, listener: Listener
) -> None:
    assert Client.pinned(listener.address, cluster.fingerprint).request("GET", "/") is None
    assert listener.requests == [None]


def test_a_joiner_refuses_a_listener_that_does_not_match_its_token(listener: Listener) -> None:
    other = identity.generate_cluster("elsewhere")
    with pytest.raises(WrongCluster, match="not the cluster's"):
        Client.pinned(listener.address, other.fingerprint).request("GET", "/")
    assert listener.requests == []  # nothing was sent


def test_a_member_refuses_another_clusters_listener(tmp_path: Path, listener: Listener) -> None:
    elsewhere = identity.generate_cluster("elsewhere")
    layout, pair = member_state(tmp_path, "mc2", elsewhere)
    listener.tls.trust([pair.certificate])
    with pytest.raises(Forbidden, match="did not present this cluster's certificate"):
        Client.remote(layout.root, listener.address).request("GET", "/")
    assert listener.requests == []


def test_the_client_context_presents_the_member_certificate(
    tmp_path: Path, cluster: identity.KeyPair
) -> None:
    layout, _ = member_state(tmp_path, "mc2", cluster)
    context = member_client_context(
        layout.cluster_certificate, layout.server_certificate, layout.server_key
    )
    assert context.check_hostname is False
