"""Joining is for the holder of a valid token only, and only into the cluster it names.

One cluster (mc1, mc2) and fresh daemons that try to join it: a used token, a made-up
secret, a token pointing at another cluster's fingerprint, a revoked one, an expired one,
one issued for another name, a name or address already taken. Each is refused with a
clear error, the daemon stays uninitialized, and the cluster is unchanged. Callers on
the network without a trusted certificate reach only what allows them."""

from __future__ import annotations

import dataclasses
import stat
from concurrent.futures import ThreadPoolExecutor

import pytest

from nodehost.cluster import BadRequest, Client, Conflict, Forbidden, JoinToken, NotFound
from nodehost.cluster.identity import generate_member
from nodehost.cluster.tokens import new_secret
from tests.cluster.conftest import Daemons
from tests.cluster.forming import Node, form
from tests.cluster.processes import free_addresses, wait_for


def uninitialized(node: Node) -> None:
    status = node.client.status()
    assert status["database"] == "uninitialized" and status["name"] is None
    leftovers = {p.name for p in node.process.state_dir.iterdir()}
    assert leftovers <= {"control.socket", "daemon.lock"}, leftovers


def token_names(node: Node) -> list[str]:
    return [t["name"] for t in node.client.tokens()]


@pytest.mark.timeout(900)
def test_tokens_are_used_once_and_cannot_be_forged(daemons: Daemons) -> None:
    mc1, mc2 = form(2, daemons.program)
    fresh_address = free_addresses(1)[0]
    fresh = Node("mc3", fresh_address, daemons.program("mc3"))
    fresh.process.wait_answering()

    # a used token: mc2 joined with it; the record is gone, so it admits nobody else
    used = mc1.client.add_token("mc9")
    other = Node("mc9", free_addresses(1)[0], daemons.program("mc9"))
    other.process.wait_answering()
    other.client.join("mc9", other.address, used)
    assert "mc9" not in token_names(mc1)
    impostor = Node("mc9b", fresh_address, fresh.process)
    with pytest.raises(Forbidden, match="already used"):
        impostor.client.join("mc9", fresh_address, used)
    uninitialized(fresh)

    # a forged secret, with the right fingerprint and addresses
    real = JoinToken.decode(mc1.client.add_token("mc3"))
    forged = dataclasses.replace(real, secret=new_secret())
    with pytest.raises(Forbidden, match="invalid join token"):
        fresh.client.join("mc3", fresh_address, forged.encode())
    uninitialized(fresh)

    # a token whose fingerprint is another cluster's: the joiner sends nothing
    foreign = dataclasses.replace(real, fingerprint="0" * 64)
    with pytest.raises(
        Forbidden, match="presented the cluster certificate it names, so nothing was sent"
    ):
        fresh.client.join("mc3", fresh_address, foreign.encode())
    uninitialized(fresh)
    assert "mc3" in token_names(mc1)  # nobody presented the real token

    # a token issued for another name: refused by the joiner, and by the cluster
    with pytest.raises(BadRequest, match="issued for member 'mc3'"):
        fresh.client.join("mc4", fresh_address, real.encode())
    renamed = dataclasses.replace(real, name="mc4")
    with pytest.raises(Forbidden, match="issued for member 'mc3', not 'mc4'"):
        fresh.client.join("mc4", fresh_address, renamed.encode())
    uninitialized(fresh)

    # garbage
    with pytest.raises(BadRequest, match="not a join token"):
        fresh.client.join("mc3", fresh_address, "eyJub3Q")

    # revoked
    mc2.client.revoke_token("mc3")
    with pytest.raises(Forbidden, match="revoked"):
        fresh.client.join("mc3", fresh_address, real.encode())
    uninitialized(fresh)

    # expired: the record is deleted when it is presented
    short = mc2.client.add_token("mc3", expire_after="1s")
    wait_for(lambda: "mc3" not in token_names(mc1), 30.0, "the token to expire")
    with pytest.raises(Forbidden, match="expired"):
        fresh.client.join("mc3", fresh_address, short)
    rows = mc1.client.sql("SELECT count(*) FROM core_token_records WHERE name = 'mc3'")
    assert rows["results"][0]["rows"] == [[0]]
    uninitialized(fresh)

    # and a good token still works for this daemon after all of that
    fresh.client.join("mc3", fresh_address, mc2.client.add_token("mc3"))
    assert sorted(mc1.members()) == ["mc1", "mc2", "mc3", "mc9"]


@pytest.mark.timeout(900)
def test_names_addresses_and_certificates_are_unique(daemons: Daemons) -> None:
    mc1, mc2 = form(2, daemons.program)
    with pytest.raises(Conflict, match="'mc2' is already a member"):
        mc1.client.add_token("mc2")
    mc1.client.add_token("mc3")
    with pytest.raises(Conflict, match="exists already"):
        mc2.client.add_token("mc3")
    for bad in ("", "invalid_name", "c/1", ".x", "x."):
        with pytest.raises(BadRequest, match=r"not valid|missing"):
            mc1.client.add_token(bad)

    # admission asked directly, as a hostile joiner could: the address of mc1 is taken
    token = JoinToken.decode(mc1.client.add_token("mc4"))
    joiner = generate_member("mc4", "127.0.0.1")
    request = {
        "name": "mc4",
        "address": mc1.address,
        "certificate": joiner.certificate,
        "secret": token.secret,
        "schema_internal": 1,
        "schema_external": 3,
    }
    pinned = Client.pinned(mc2.address, token.fingerprint)
    with pytest.raises(Conflict, match=f"address {mc1.address} is already used by member 'mc1'"):
        pinned.request("POST", "/core/internal/join", request)
    with pytest.raises(BadRequest, match="does not name 'mc4'"):
        pinned.request(
            "POST",
            "/core/internal/join",
            {**request, "certificate": generate_member("x", "h").certificate},
        )
    with pytest.raises(Conflict, match=r"schema version 1\.1, the cluster.s is 1\.3"):
        pinned.request(
            "POST",
            "/core/internal/join",
            {**request, "address": "127.0.0.1:1", "schema_external": 1},
        )
    assert "mc4" in [t["name"] for t in mc1.client.tokens()]  # none of those used it up
    assert sorted(mc1.members()) == ["mc1", "mc2"]

    # two joiners race with copies of one token, through two members: one gets in
    racers = [generate_member("mc4", "127.0.0.1") for _ in range(2)]
    targets = [Client.pinned(mc1.address, token.fingerprint), pinned]
    requests = [
        {**request, "address": address, "certificate": racer.certificate}
        for racer, address in zip(racers, free_addresses(2), strict=True)
    ]

    def attempt(index: int) -> str:
        try:
            targets[index].request("POST", "/core/internal/join", requests[index])
        except Forbidden as exc:
            return f"refused: {exc}"
        return "admitted"

    with ThreadPoolExecutor(max_workers=2) as pool:
        outcomes = sorted(pool.map(attempt, range(2)))
    assert outcomes[0] == "admitted" and "already used" in outcomes[1], outcomes
    pending = [m for m in mc1.members().values() if m["name"] == "mc4"]
    assert len(pending) == 1 and pending[0]["role"] == "PENDING"
    mc1.client.remove_member("mc4", force=True)  # it never came: --force clears it
    assert sorted(mc1.members()) == ["mc1", "mc2"]


@pytest.mark.timeout(600)
def test_the_network_admits_members_by_certificate_only(daemons: Daemons) -> None:
    mc1, mc2 = form(2, daemons.program)
    fingerprint = JoinToken.decode(mc1.client.add_token("mc5")).fingerprint
    anonymous = Client.pinned(mc1.address, fingerprint)
    assert anonymous.request("GET", "/1.0/open") == "open"  # allow_untrusted
    for method, path in (
        ("GET", "/1.0/whoami"),
        ("POST", "/core/internal/heartbeat"),
        ("POST", "/core/internal/reset"),
    ):
        with pytest.raises(Forbidden, match="trusted member certificate"):
            anonymous.request(method, path, {})
    with pytest.raises(NotFound, match="no endpoint"):
        anonymous.request("GET", "/core/control/status")  # the control API is not on the network

    answer = Client.remote(mc2.process.state_dir, mc1.address).request("GET", "/1.0/whoami")
    assert answer == {
        "member": "mc1",
        "caller": "member",
        "caller_member": "mc2",
        "notification": False,
    }
    local = mc1.client.request("GET", "/1.0/whoami")
    assert local["caller"] == "control"

    mode = stat.S_IMODE((mc1.process.state_dir / "control.socket").stat().st_mode)
    assert mode == 0o600
    assert stat.S_IMODE((mc1.process.state_dir / "server.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((mc1.process.state_dir / "cluster.key").stat().st_mode) == 0o600
    assert stat.S_IMODE(mc1.process.state_dir.stat().st_mode) == 0o700
