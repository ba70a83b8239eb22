"""TLS for the network listener and for calls between members.

Rules:
- The listener presents the cluster certificate and asks callers for a certificate; it
  accepts a caller's certificate only when it is exactly one of the trusted members'
  (each member certificate is its own trust anchor; there is no CA for members). A caller
  without a certificate gets in unauthenticated (a joiner, holding only a token) and
  reaches only endpoints that allow it.
- The set of trusted certificates changes while the listener runs: each handshake picks
  the context built for the current set (an SNI callback, which OpenSSL calls for every
  handshake, with or without a server name), so a removed member is refused from the
  next connection on.
- The listener speaks TLS 1.2 (forward-secret AEAD ciphers only): in TLS 1.3 the server
  checks a client certificate after the client has finished its handshake and sent its
  request, so a refusal races the request and the caller sees a reset; in 1.2 the
  refusal is part of the handshake, and a member that is no longer trusted is told so.
- A member calling another presents its own certificate and accepts only the cluster
  certificate (or one the cluster key signed) from the other side: the one it checked
  by fingerprint when it joined. A joiner, which knows only the fingerprint, connects
  without checking and compares the fingerprint itself before sending a byte.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from nodehost.cluster.pem import fingerprint_der


class ServerTLS:
    """The listener's context; `trust` swaps the set of accepted member certificates."""

    def __init__(self, certificate_file: Path, key_file: Path) -> None:
        self._certificate_file = certificate_file
        self._key_file = key_file
        self._current = self._build([])
        self.context = self._base()
        self.context.sni_callback = self._pick

    def trust(self, certificates: list[str]) -> None:
        self._current = self._build(certificates)

    def _pick(self, connection: ssl.SSLObject, server_name: str | None, _: ssl.SSLContext) -> None:
        connection.context = self._current

    def _base(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.maximum_version = ssl.TLSVersion.TLSv1_2
        context.set_ciphers("ECDHE+AESGCM:ECDHE+CHACHA20")
        context.load_cert_chain(self._certificate_file, self._key_file)
        context.verify_mode = ssl.CERT_OPTIONAL
        return context

    def _build(self, certificates: list[str]) -> ssl.SSLContext:
        context = self._base()
        if certificates:
            context.load_verify_locations(cadata="\n".join(certificates))
        return context


def member_client_context(
    cluster_certificate_file: Path, certificate_file: Path, key_file: Path
) -> ssl.SSLContext:
    """For calls to other members: present our certificate, accept only the cluster's."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = False  # members are known by the certificate, not a host name
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(cafile=cluster_certificate_file)
    context.load_cert_chain(certificate_file, key_file)
    return context


def unverified_client_context() -> ssl.SSLContext:
    """For a joiner: no certificate of ours, none checked; the caller pins the fingerprint."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def peer_fingerprint(connection: ssl.SSLObject | ssl.SSLSocket | None) -> str | None:
    """The fingerprint of the certificate the peer proved it holds, if it sent one."""
    if connection is None:
        return None
    der = connection.getpeercert(binary_form=True)
    return fingerprint_der(der) if der else None
