"""Mutual TLS credentials from the files named in the config.

Both ends prove themselves with a certificate signed by the deployment's CA: the
server requires a client certificate (require_client_auth), the client checks the
server's against the same CA. A peer without one, or with one from another CA, fails
the handshake inside gRPC and never reaches our handlers.
"""

from __future__ import annotations

import ssl

import grpc

from transport.config import TransportConfig
from transport.errors import TransportConfigError


def _read(name: str, path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise TransportConfigError(f"{name} {path!r}: {e.strerror}") from None
    if b"-----BEGIN" not in data:
        raise TransportConfigError(f"{name} {path!r} is not PEM")
    return data


class Credentials:
    def __init__(self, config: TransportConfig) -> None:
        ca = _read("ca_file", config.ca_file)
        cert = _read("cert_file", config.cert_file)
        key = _read("key_file", config.key_file)
        self.server = grpc.ssl_server_credentials(
            [(key, cert)], root_certificates=ca, require_client_auth=True
        )
        self.channel = grpc.ssl_channel_credentials(
            root_certificates=ca, private_key=key, certificate_chain=cert
        )


def has_peer_certificate(context: grpc.aio.ServicerContext) -> bool:
    """Whether the stream's peer presented a certificate that gRPC verified."""
    auth = context.auth_context()
    return bool(auth.get("x509_pem_cert") or auth.get("x509_common_name"))


def ssl_contexts(config: TransportConfig) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server, client) contexts for the TCP transport, from the same three files.

    Both sides require a certificate signed by the deployment's CA, as with gRPC. Host
    names are not checked: a member is whoever holds a certificate of the deployment's
    CA (the same trust model as the gRPC transport's, where addresses are plain IPs).
    """
    for name, path in (
        ("ca_file", config.ca_file),
        ("cert_file", config.cert_file),
        ("key_file", config.key_file),
    ):
        _read(name, path)  # the same clear errors as for gRPC
    try:
        server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server.verify_mode = ssl.CERT_REQUIRED
        server.load_cert_chain(config.cert_file, config.key_file)
        server.load_verify_locations(config.ca_file)
        client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        client.check_hostname = False
        client.verify_mode = ssl.CERT_REQUIRED
        client.load_cert_chain(config.cert_file, config.key_file)
        client.load_verify_locations(config.ca_file)
    except (ssl.SSLError, OSError) as e:
        raise TransportConfigError(f"TLS files do not load: {e}") from None
    return server, client
