"""Join tokens: what a new member needs to find and trust the cluster, and to be admitted.

A token is base64url of a JSON object:

    {"name": "mc2", "secret": "<64 hex>", "fingerprint": "<sha256 of cluster.crt>",
     "join_addresses": ["127.0.0.1:9001", ...]}

Rules:
- The secret is 32 random bytes; the cluster stores only its SHA-256, so reading the
  database (or a backup of it) does not let anyone join. A token is for one named member,
  is deleted when it is used, and may expire.
- The joiner checks the certificate a member presents against `fingerprint` before it
  sends anything, so a token also tells it which cluster to trust.
- Decoding refuses anything else with a message saying what is wrong: a token is pasted
  by people, and a forged or truncated one must not pass as another.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass

from nodehost.cluster.errors import BadRequest
from nodehost.cluster.names import check_address, check_name

MAX_TOKEN_LENGTH = 16_384
_HEX64 = re.compile(r"[0-9a-f]{64}")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


class BadToken(BadRequest):
    """The text is not a join token."""


@dataclass(frozen=True, slots=True)
class JoinToken:
    name: str
    secret: str
    fingerprint: str
    join_addresses: tuple[str, ...]

    def encode(self) -> str:
        document = {
            "name": self.name,
            "secret": self.secret,
            "fingerprint": self.fingerprint,
            "join_addresses": list(self.join_addresses),
        }
        raw = json.dumps(document, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: object) -> JoinToken:
        if not isinstance(text, str) or not text.strip():
            raise BadToken("the join token is empty")
        text = text.strip()
        if len(text) > MAX_TOKEN_LENGTH:
            raise BadToken("the join token is too long")
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            document = json.loads(raw)
        except (binascii.Error, ValueError):
            raise BadToken("this is not a join token (it is not base64 of a JSON object)") from None
        if not isinstance(document, dict):
            raise BadToken("this is not a join token (it is not a JSON object)")
        name, secret = document.get("name"), document.get("secret")
        fingerprint, addresses = document.get("fingerprint"), document.get("join_addresses")
        if not isinstance(secret, str) or _HEX64.fullmatch(secret) is None:
            raise BadToken("the join token has no valid secret")
        if not isinstance(fingerprint, str) or _HEX64.fullmatch(fingerprint) is None:
            raise BadToken("the join token has no valid cluster fingerprint")
        if not isinstance(addresses, list) or not addresses:
            raise BadToken("the join token lists no member addresses")
        for address in addresses:
            try:
                check_address(address)
            except BadRequest as exc:
                raise BadToken(f"the join token lists a bad address: {exc}") from None
        try:
            check_name(name)
        except BadRequest as exc:
            raise BadToken(f"the join token names no valid member: {exc}") from None
        return cls(str(name), secret, fingerprint, tuple(addresses))


def new_secret() -> str:
    return secrets.token_hex(32)


def secret_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def same_digest(digest: str, secret: str) -> bool:
    """Whether `secret` hashes to `digest`, in constant time."""
    return hmac.compare_digest(digest, secret_digest(secret))


def parse_duration(text: object) -> float:
    """Seconds in a Go-style duration ("3h", "90m", "1h30m", "45s", "500ms", "2d");
    "0" means never."""
    if not isinstance(text, str) or not text:
        raise BadRequest("the duration is missing")
    if text == "0":
        return 0.0
    position, total = 0, 0.0
    for match in _DURATION.finditer(text):
        if match.start() != position:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        position = match.end()
    if position != len(text) or total <= 0:
        raise BadRequest(
            f"{text!r} is not a duration (examples: 3h, 90m, 1h30m, 45s, 500ms, 2d; 0 for never)"
        )
    return total
