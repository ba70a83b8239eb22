"""Certificates as text: the key-pair value and fingerprints, without parsing X.509.

Kept apart from identity.py (which parses and makes certificates with `cryptography`)
so the command-line client, which only compares fingerprints, stays light.
"""

from __future__ import annotations

import hashlib
import ssl
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class KeyPair:
    """A PEM certificate and its PEM private key (PKCS#8, unencrypted: files are 0600)."""

    certificate: str
    key: str

    @property
    def fingerprint(self) -> str:
        return fingerprint_der(ssl.PEM_cert_to_DER_cert(self.certificate))


def fingerprint_der(der: bytes) -> str:
    """SHA-256 of a certificate's DER encoding, lowercase hex (as LXD and Microcluster)."""
    return hashlib.sha256(der).hexdigest()
