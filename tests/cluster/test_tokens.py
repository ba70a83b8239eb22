"""Join tokens: what decodes, and what is refused with which message."""

from __future__ import annotations

import base64
import json

import pytest

from nodehost.cluster.errors import BadRequest
from nodehost.cluster.tokens import (
    BadToken,
    JoinToken,
    new_secret,
    parse_duration,
    same_digest,
    secret_digest,
)

FINGERPRINT = "ab" * 32


def token(**changes: object) -> str:
    document = {
        "name": "mc2",
        "secret": "0f" * 32,
        "fingerprint": FINGERPRINT,
        "join_addresses": ["127.0.0.1:9001", "[::1]:9002"],
    }
    document.update(changes)
    return base64.urlsafe_b64encode(json.dumps(document).encode()).decode().rstrip("=")


def test_a_token_round_trips() -> None:
    original = JoinToken("mc2", new_secret(), FINGERPRINT, ("127.0.0.1:9001", "10.0.0.2:9001"))
    text = original.encode()
    assert "=" not in text and "\n" not in text
    assert JoinToken.decode(text) == original
    assert JoinToken.decode(f"  {text}\n") == original  # pasted with blanks


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("not a token!", "not a join token"),
        (base64.urlsafe_b64encode(b"[1, 2]").decode(), "not a JSON object"),
        (token(secret="short"), "no valid secret"),
        (token(secret="ZZ" * 32), "no valid secret"),
        (token(fingerprint="ab"), "no valid cluster fingerprint"),
        (token(join_addresses=[]), "lists no member addresses"),
        (token(join_addresses=["nowhere"]), "bad address"),
        (token(join_addresses="127.0.0.1:9001"), "lists no member addresses"),
        (token(name="bad_name"), "names no valid member"),
        (token(name=None), "names no valid member"),
        ("x" * 20_000, "too long"),
    ],
)
def test_malformed_tokens_are_refused_with_a_reason(text: str, message: str) -> None:
    with pytest.raises(BadToken) as raised:
        JoinToken.decode(text)
    assert message in str(raised.value)


def test_a_truncated_token_is_refused() -> None:
    text = JoinToken("mc2", new_secret(), FINGERPRINT, ("127.0.0.1:9001",)).encode()
    with pytest.raises(BadToken):
        JoinToken.decode(text[: len(text) // 2])


def test_secrets_are_stored_as_digests_and_compared_whole() -> None:
    secret = new_secret()
    assert len(secret) == 64 and secret != new_secret()
    digest = secret_digest(secret)
    assert secret not in digest
    assert same_digest(digest, secret)
    assert not same_digest(digest, secret[:-1] + ("0" if secret[-1] != "0" else "1"))


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("3h", 10800),
        ("90m", 5400),
        ("1h30m", 5400),
        ("45s", 45),
        ("500ms", 0.5),
        ("2d", 172800),
        ("1.5h", 5400),
        ("0", 0),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "3", "h", "3x", "-1h", "1h 2m", "0s", "m30"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(BadRequest, match="duration"):
        parse_duration(text)
