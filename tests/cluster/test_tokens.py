"""Join tokens: what decodes, and what is refused with which message; token records\n(issue, redeem, revoke) on a stdlib sqlite3 cursor."""

from __future__ import annotations

import base64
import datetime
import json
import sqlite3

import pytest

from nodehost.cluster.errors import BadRequest, Conflict, Forbidden, NotFound
from nodehost.cluster.members import now_text
from nodehost.cluster.schema import Schema, Versions
from nodehost.cluster.tokenrecords import issue, read_records, redeem, revoke
from nodehost.cluster.tokens import (
    BadToken,
    JoinToken,
    new_secret,
    parse_duration,
    same_digest,
    secret_digest,
)

FINGERPRINT = "ab" * 32
T0 = datetime.datetime(2030, 1, 1, 12, 0, tzinfo=datetime.UTC)


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


def records_cursor() -> sqlite3.Cursor:
    cursor = sqlite3.connect(":memory:", isolation_level=None).cursor()
    Schema().apply(cursor, Versions(0, 0), now_text(T0))
    return cursor


def test_a_record_admits_its_member_once() -> None:
    cursor = records_cursor()
    secret = issue(cursor, "mc2", 3600.0, T0)
    with pytest.raises(Forbidden, match="issued for member 'mc2', not 'mc3'"):
        redeem(cursor, secret, "mc3", T0)
    with pytest.raises(Forbidden, match="invalid join token"):
        redeem(cursor, new_secret(), "mc2", T0)
    record = redeem(cursor, secret, "mc2", T0)
    assert record is not None and record.name == "mc2"
    with pytest.raises(Forbidden, match="already used"):
        redeem(cursor, secret, "mc2", T0)


def test_an_expired_record_says_so_once_and_can_be_issued_again() -> None:
    cursor = records_cursor()
    secret = issue(cursor, "mc2", 60.0, T0)
    later = T0 + datetime.timedelta(minutes=5)
    with pytest.raises(Conflict, match="exists already"):
        issue(cursor, "mc2", 60.0, T0)
    assert redeem(cursor, secret, "mc2", later) is None  # expired: deleted, the caller refuses
    assert read_records(cursor) == []
    stale = issue(cursor, "mc2", 60.0, T0)
    fresh = issue(cursor, "mc2", 60.0, later)  # the expired record is replaced
    assert stale != fresh and [r.name for r in read_records(cursor)] == ["mc2"]
    assert redeem(cursor, fresh, "mc2", later) is not None


def test_a_member_gets_no_token_and_revoking_needs_a_token() -> None:
    cursor = records_cursor()
    cursor.execute(
        "INSERT INTO core_cluster_members (name, address, certificate, fingerprint, "
        "schema_internal, schema_external, heartbeat, role) "
        "VALUES ('mc1', '127.0.0.1:9001', 'c', 'f', 1, 0, ?, 'voter')",
        (now_text(T0),),
    )
    with pytest.raises(Conflict, match="'mc1' is already a member"):
        issue(cursor, "mc1", 0.0, T0)
    issue(cursor, "mc2", 0.0, T0)
    assert read_records(cursor)[0].expires is None
    revoke(cursor, "mc2")
    with pytest.raises(NotFound, match="no join token for 'mc2'"):
        revoke(cursor, "mc2")
