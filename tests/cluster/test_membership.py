"""One cluster of the tests' own daemon (tests/cluster/program.py, 1 s heartbeats) taken
through its members' lives: forming it (the hooks), a schema update rolled out member by
member (old and new code side by side), the network's trust, joins refused
(used, forged, foreign, revoked, expired and misnamed tokens; names, addresses and
certificates already taken; two joiners racing with one token), a fourth member, a
voter SIGKILLed (OFFLINE within a few heartbeats, its vote to the stand-by, ONLINE again
once restarted), removal from the removed member's own state directory and a rejoin,
--force for an unreachable member and the reset of one that comes back, and a restart
of all three with membership and data intact.

The tests run in this order on the one cluster (forming a cluster costs more than most
checks), and each starts by checking the members it expects. Joiners are fresh daemons
of the same module."""

from __future__ import annotations

import dataclasses
import shutil
import signal
import stat
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pytest

from nodehost.cluster import BadRequest, Client, Conflict, Forbidden, JoinToken, NotFound
from nodehost.cluster.errors import Unavailable, Unreachable
from nodehost.cluster.identity import generate_member
from nodehost.cluster.members import parse_time
from nodehost.cluster.tokens import new_secret
from tests.cluster.conftest import Daemons
from tests.cluster.forming import Node, form, statuses
from tests.cluster.processes import ctl, ctl_here, fails, free_addresses, ok, wait_for

pytestmark = pytest.mark.timeout(300)


@dataclass
class Cluster:
    daemons: Daemons
    nodes: dict[str, Node] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Node:
        return self.nodes[name]

    def fresh(self, name: str) -> Node:
        """A daemon started on a new directory and address, not initialized."""
        node = Node(name, free_addresses(1)[0], self.daemons.program(name))
        node.process.wait_answering()
        return node

    def expect(self, *names: str) -> None:
        """The test starts from these members, each ONLINE."""
        seen = statuses(self.nodes["mc1"])
        assert sorted(seen) == sorted(names), f"the cluster is {seen}, not {names}"
        wait_for(
            lambda: all(s == "ONLINE" for _, s in statuses(self.nodes["mc1"]).values()),
            30.0,
            "every member ONLINE",
        )


@pytest.fixture(scope="module")
def cluster(module_daemons: Daemons) -> Iterator[Cluster]:
    nodes = form(3, lambda name: module_daemons.program(name, "--updates", "2"))
    yield Cluster(module_daemons, {n.name: n for n in nodes})


def uninitialized(node: Node) -> None:
    status = node.client.status()
    assert status["database"] == "uninitialized" and status["name"] is None
    leftovers = {p.name for p in node.process.state_dir.iterdir()}
    assert leftovers <= {"control.socket", "daemon.lock"}, leftovers


def token_names(node: Node) -> list[str]:
    return [t["name"] for t in node.client.tokens()]


def test_forming_runs_the_hooks_and_the_leader_records_heartbeats(cluster: Cluster) -> None:
    mc1, mc2, mc3 = cluster["mc1"], cluster["mc2"], cluster["mc3"]
    cluster.expect("mc1", "mc2", "mc3")
    # the hooks of forming the cluster ran where they should, by the time init answered
    assert mc1.hooks()[:2] == ["on_bootstrap mc1 []", "on_start mc1"]
    assert {"on_new_member mc1 mc2", "on_new_member mc1 mc3"} <= set(mc1.hooks())
    assert mc2.hooks()[:3] == ["on_join mc2 []", "on_start mc2", "on_new_member mc2 mc3"]
    assert mc3.hooks()[:2] == ["on_join mc3 []", "on_start mc3"]
    before = parse_time(mc1.members()["mc3"]["heartbeat"])
    wait_for(
        lambda: parse_time(mc2.members()["mc3"]["heartbeat"]) > before,  # type: ignore[operator]
        30.0,
        "the leader to record a newer heartbeat for mc3",
    )
    assert statuses(mc3) == {n: ("voter", "ONLINE") for n in ("mc1", "mc2", "mc3")}


def restart(cluster: Cluster, name: str, updates: int) -> None:
    """Stop a member and start it again with code that has the first `updates` updates."""
    node = cluster[name]
    assert node.process.stop() == 0
    node.process = cluster.daemons.program(name, "--updates", str(updates))
    node.process.wait_answering()


def database(node: Node) -> str:
    return str(node.client.status()["database"])


def tables(node: Node) -> set[str]:
    answer = node.client.sql("SELECT name FROM sqlite_master WHERE type = 'table'")
    return {row[0] for row in answer["results"][0]["rows"]}


def test_a_schema_update_rolled_out_member_by_member(cluster: Cluster) -> None:
    """The members run code with two user updates. mc1, then mc2 restart with code that
    has a third: each waits (its API answers "waiting"), the old members go on serving,
    and `cluster list` shows who is UPGRADING and who NEEDS UPGRADE. When mc3 restarts
    with the new code too, the update is applied once, and all three are ready. Old code
    started after that is refused until it is upgraded."""
    mc1, mc2, mc3 = cluster["mc1"], cluster["mc2"], cluster["mc3"]
    cluster.expect("mc1", "mc2", "mc3")
    assert mc1.client.request("POST", "/1.0/rows", {"value": "before"}) == 1
    assert "t2" in tables(mc1) and "t3" not in tables(mc1)

    restart(cluster, "mc1", 3)
    wait_for(lambda: database(mc1) == "waiting", 60.0, "mc1 to wait for the others")
    assert "2 other member(s)" in str(mc1.client.status()["detail"])
    with pytest.raises(Unavailable, match="waiting for 2 other member"):
        mc1.client.request("POST", "/1.0/rows", {"value": "refused"})
    # the old code goes on serving the old schema
    assert mc2.client.request("POST", "/1.0/rows", {"value": "during"}) == 2
    wait_for(
        lambda: (
            [s for _, s in statuses(mc2).values()]
            == ["UPGRADING", "NEEDS UPGRADE", "NEEDS UPGRADE"]
        ),
        30.0,
        "mc2 to list mc1 upgrading and the others needing an upgrade",
    )
    assert "t3" not in tables(mc2)

    restart(cluster, "mc2", 3)
    wait_for(lambda: database(mc2) == "waiting", 60.0, "mc2 to wait for mc3")
    assert "1 other member(s)" in str(mc2.client.status()["detail"])
    assert mc3.client.request("POST", "/1.0/rows", {"value": "still"}) == 3

    restart(cluster, "mc3", 3)
    for node in (mc1, mc2, mc3):
        wait_for(lambda n=node: database(n) == "ready", 60.0, f"{node.name} ready")  # type: ignore[misc]
    assert {"t1", "t2", "t3"} <= tables(mc1)
    applied = mc2.client.sql("SELECT version FROM schemas WHERE type = 1 ORDER BY version")
    assert applied["results"][0]["rows"] == [[1], [2], [3]]
    made = mc3.client.sql("SELECT note FROM t3")  # update 3 ran once, cluster-wide
    assert made["results"][0]["rows"] == [["made by update 3"]]
    assert mc1.client.request("POST", "/1.0/rows", {"value": "after"}) == 4
    wait_for(lambda: [s for _, s in statuses(mc3).values()] == ["ONLINE"] * 3, 30.0, "all ONLINE")
    assert all(m["schema_external"] == 3 for m in mc1.members().values())
    for node in (mc1, mc2, mc3):
        assert node.hooks().count(f"on_start {node.name}") == 2

    restart(cluster, "mc2", 2)  # the old code, after the upgrade
    wait_for(lambda: database(mc2) == "behind", 60.0, "mc2 to refuse to serve")
    assert "upgrade this member" in str(mc2.client.status()["detail"])
    with pytest.raises(Unavailable, match="upgrade this member"):
        mc2.client.request("POST", "/1.0/rows", {"value": "old"})
    assert mc1.members()["mc2"]["schema_external"] == 3  # it recorded nothing
    restart(cluster, "mc2", 3)
    wait_for(lambda: database(mc2) == "ready", 60.0, "mc2 ready once upgraded")


def test_the_network_admits_members_by_certificate_only(cluster: Cluster) -> None:
    mc1, mc2 = cluster["mc1"], cluster["mc2"]
    assert mc2.token is not None
    fingerprint = JoinToken.decode(mc2.token).fingerprint
    anonymous = Client.pinned(mc1.address, fingerprint)
    assert anonymous.request("GET", "/1.0/open") == "open"  # allow_untrusted
    for method, path in (
        ("GET", "/1.0/whoami"),
        ("POST", "/core/internal/heartbeat"),
        ("POST", "/core/internal/reset"),
        ("POST", "/core/internal/hooks/pre-remove"),
        ("DELETE", "/core/internal/members/mc2"),
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
    assert mc1.client.request("GET", "/1.0/whoami")["caller"] == "control"

    directory = mc1.process.state_dir
    assert stat.S_IMODE((directory / "control.socket").stat().st_mode) == 0o600
    assert stat.S_IMODE((directory / "server.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((directory / "cluster.key").stat().st_mode) == 0o600
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700


def test_names_addresses_and_certificates_are_unique(cluster: Cluster) -> None:
    mc1, mc2 = cluster["mc1"], cluster["mc2"]
    cluster.expect("mc1", "mc2", "mc3")
    with pytest.raises(Conflict, match="'mc2' is already a member"):
        mc1.client.add_token("mc2")
    mc1.client.add_token("mc7")
    with pytest.raises(Conflict, match="exists already"):
        mc2.client.add_token("mc7")
    mc2.client.revoke_token("mc7")
    for bad in ("", "invalid_name", "c/1", ".x", "x."):
        with pytest.raises(BadRequest, match=r"not valid|missing"):
            mc1.client.add_token(bad)

    # admission asked directly, as a hostile joiner could: the address of mc1 is taken
    token = JoinToken.decode(mc1.client.add_token("mc8"))
    joiner = generate_member("mc8", "127.0.0.1")
    request = {
        "name": "mc8",
        "address": mc1.address,
        "certificate": joiner.certificate,
        "secret": token.secret,
        "schema_internal": 1,
        "schema_external": 3,
    }
    pinned = Client.pinned(mc2.address, token.fingerprint)
    with pytest.raises(Conflict, match=f"address {mc1.address} is already used by member 'mc1'"):
        pinned.request("POST", "/core/internal/join", request)
    with pytest.raises(BadRequest, match="does not name 'mc8'"):
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
    assert "mc8" in token_names(mc1)  # none of those used it up
    assert sorted(mc1.members()) == ["mc1", "mc2", "mc3"]

    # two joiners race with copies of one token, through two members: one gets in
    racers = [generate_member("mc8", "127.0.0.1") for _ in range(2)]
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
    assert mc1.members()["mc8"]["role"] == "PENDING"
    mc1.client.remove_member("mc8", force=True)  # it never came: --force clears it
    assert sorted(mc1.members()) == ["mc1", "mc2", "mc3"]


def test_tokens_are_used_once_and_cannot_be_forged(cluster: Cluster) -> None:
    mc1, mc2 = cluster["mc1"], cluster["mc2"]
    cluster.expect("mc1", "mc2", "mc3")
    fresh = cluster.fresh("mc4")
    address = fresh.address

    # a used token: mc3 joined with it; the record is gone, so it admits nobody else
    assert cluster["mc3"].token is not None
    with pytest.raises(Forbidden, match="already used"):
        fresh.client.join("mc3", address, cluster["mc3"].token)
    uninitialized(fresh)

    # a forged secret, with the right fingerprint and addresses
    real = JoinToken.decode(mc1.client.add_token("mc4"))
    forged = dataclasses.replace(real, secret=new_secret())
    with pytest.raises(Forbidden, match="invalid join token"):
        fresh.client.join("mc4", address, forged.encode())
    uninitialized(fresh)

    # a token whose fingerprint is another cluster's: the joiner sends nothing
    foreign = dataclasses.replace(real, fingerprint="0" * 64)
    with pytest.raises(
        Forbidden, match="presented the cluster certificate it names, so nothing was sent"
    ):
        fresh.client.join("mc4", address, foreign.encode())
    uninitialized(fresh)
    assert "mc4" in token_names(mc1)  # nobody presented the real token

    # a token issued for another name: refused by the joiner, and by the cluster
    with pytest.raises(BadRequest, match="issued for member 'mc4'"):
        fresh.client.join("mc5", address, real.encode())
    renamed = dataclasses.replace(real, name="mc5")
    with pytest.raises(Forbidden, match="issued for member 'mc4', not 'mc5'"):
        fresh.client.join("mc5", address, renamed.encode())
    uninitialized(fresh)

    # not a token at all
    with pytest.raises(BadRequest, match="not a join token"):
        fresh.client.join("mc4", address, "eyJub3Q")

    # revoked
    mc2.client.revoke_token("mc4")
    with pytest.raises(Forbidden, match="revoked"):
        fresh.client.join("mc4", address, real.encode())
    uninitialized(fresh)

    # expired: refused as expired (the heartbeat does not purge it that soon), and the
    # record is deleted when it is presented
    short = mc2.client.add_token("mc4", expire_after="1s")
    wait_for(lambda: "mc4" not in token_names(mc1), 30.0, "the token to expire")
    with pytest.raises(Forbidden, match="this join token has expired"):
        fresh.client.join("mc4", address, short)
    rows = mc1.client.sql("SELECT count(*) FROM core_token_records WHERE name = 'mc4'")
    assert rows["results"][0]["rows"] == [[0]]
    uninitialized(fresh)

    # and a good token still works for this daemon after all of that
    fresh.client.join("mc4", address, mc2.client.add_token("mc4"))
    cluster.nodes["mc4"] = fresh
    wait_for(lambda: statuses(mc1)["mc4"] == ("stand-by", "ONLINE"), 30.0, "mc4 a stand-by, ONLINE")
    assert fresh.hooks()[:2] == ["on_join mc4 []", "on_start mc4"]
    assert "on_new_member mc3 mc4" in cluster["mc3"].hooks()


def test_a_killed_voter_goes_offline_and_its_vote_to_the_stand_by(cluster: Cluster) -> None:
    mc1, mc3 = cluster["mc1"], cluster["mc3"]
    cluster.expect("mc1", "mc2", "mc3", "mc4")
    assert statuses(mc1)["mc4"] == ("stand-by", "ONLINE")
    fingerprint = mc1.members()["mc3"]["fingerprint"]

    mc3.process.kill()
    # three missed heartbeats (1 s apart) make a member OFFLINE; bounded generously
    wait_for(lambda: statuses(mc1)["mc3"][1] == "OFFLINE", 30.0, "mc3 OFFLINE seen from mc1")
    assert statuses(cluster["mc2"])["mc3"][1] == "OFFLINE"
    wait_for(
        lambda: statuses(mc1)["mc4"][0] == "voter" and statuses(mc1)["mc3"][0] == "spare",
        60.0,
        "the stand-by mc4 to take mc3's vote",
    )
    rows = mc1.client.request("POST", "/1.0/rows", {"value": "three voters again"})

    mc3.process.start()
    mc3.process.wait_ready()
    wait_for(lambda: statuses(mc1)["mc3"] == ("stand-by", "ONLINE"), 60.0, "mc3 back as a stand-by")
    assert mc3.client.status()["name"] == "mc3"
    assert mc1.members()["mc3"]["fingerprint"] == fingerprint
    assert mc3.hooks()[-1] == "on_start mc3"  # once more, after the restart
    answer = mc3.client.sql("SELECT count(*), max(value) FROM t1 WHERE value LIKE 'three%'")
    assert answer["results"][0]["rows"] == [[1, "three voters again"]]
    assert mc3.client.sql("SELECT count(*) FROM t1")["results"][0]["rows"] == [[rows]]


def test_a_voter_removes_itself_and_can_join_again(cluster: Cluster) -> None:
    mc1, mc2 = cluster["mc1"], cluster["mc2"]
    cluster.expect("mc1", "mc2", "mc3", "mc4")
    assert statuses(mc1)["mc2"][0] == "voter"
    keep = mc2.process.state_dir.parent / "mc2-identity"  # its certificate, to try it later
    keep.mkdir()
    for name in ("cluster.crt", "server.crt", "server.key"):
        shutil.copy2(mc2.process.state_dir / name, keep / name)
    assert Client.remote(keep, mc1.address).request("GET", "/1.0/whoami")["caller"] == "member"

    ok(ctl(mc2.process.state_dir, "cluster", "remove", "mc2"))
    assert mc2.client.status()["database"] == "uninitialized"  # reset before the answer
    assert sorted(mc1.members()) == ["mc1", "mc3", "mc4"]
    assert sorted(cluster["mc4"].members()) == ["mc1", "mc3", "mc4"]
    for gone in ("daemon.json", "database", "cluster.key", "server.key"):
        assert not (mc2.process.state_dir / gone).exists(), gone
    assert "pre_remove mc2 False" in mc2.hooks()
    for node in (mc1, cluster["mc3"], cluster["mc4"]):
        wait_for(lambda n=node: f"post_remove {n.name} False" in n.hooks(), 10.0, "post_remove")  # type: ignore[misc]
    fails(ctl_here(mc2.process.state_dir, "cluster", "list"), "database is uninitialized")
    wait_for(  # the stand-by takes the free vote
        lambda: sorted(r for r, _ in statuses(mc1).values()) == ["voter"] * 3,
        60.0,
        "three voters again",
    )

    # its old certificate is not trusted any more; it joins again under a new one
    with pytest.raises(Forbidden, match="does not trust this member's certificate"):
        Client.remote(keep, mc1.address).request("GET", "/1.0/whoami")
    mc2.client.join("mc2", mc2.address, cluster["mc3"].client.add_token("mc2"))
    wait_for(lambda: statuses(mc1).get("mc2") == ("stand-by", "ONLINE"), 60.0, "mc2 back")
    assert mc2.client.sql("SELECT count(*) FROM core_cluster_members")["results"][0]["rows"] == [
        [4]
    ]


def test_an_unreachable_member_needs_force_and_a_returning_one_resets(cluster: Cluster) -> None:
    mc1, mc2, mc3 = cluster["mc1"], cluster["mc2"], cluster["mc3"]
    cluster.expect("mc1", "mc2", "mc3", "mc4")
    mc2.process.kill()
    with pytest.raises(Unreachable, match="use --force"):
        mc1.client.remove_member("mc2")
    assert sorted(mc1.members()) == ["mc1", "mc2", "mc3", "mc4"]  # nothing changed

    message = fails(ctl_here(mc3.process.state_dir, "cluster", "remove", "mc2"), "use --force")
    assert "Nothing was changed" in message
    ok(ctl_here(mc3.process.state_dir, "cluster", "remove", "mc2", "--force"))
    assert sorted(mc1.members()) == ["mc1", "mc3", "mc4"]
    before = mc1.client.sql("SELECT count(*) FROM t1")["results"][0]["rows"][0][0]
    assert mc3.client.request("POST", "/1.0/rows", {"value": "without mc2"}) == before + 1

    # mc2 comes back: it is no member any more, finds out, and forgets the cluster
    mc2.process.start()
    mc2.process.wait_answering()
    wait_for(
        lambda: mc2.client.status()["database"] == "uninitialized", 90.0, "mc2 to reset itself"
    )
    assert not (mc2.process.state_dir / "daemon.json").exists()
    del cluster.nodes["mc2"]
    assert statuses(mc1) == {n: ("voter", "ONLINE") for n in ("mc1", "mc3", "mc4")}


def test_all_three_restart_with_membership_and_data(cluster: Cluster) -> None:
    """All three down at once, one SIGTERMed, one SIGINTed (Ctrl-C), one SIGKILLed, then
    all started again. The long form (all SIGTERMed, then all SIGKILLed) is
    test_restarts_all_clean_then_all_killed:
    `uv run pytest tests/cluster/test_membership.py --run-slow`."""
    cluster.expect("mc1", "mc3", "mc4")
    restart_all(cluster, {"mc1": signal.SIGTERM, "mc3": signal.SIGINT, "mc4": signal.SIGKILL})


@pytest.mark.slow
def test_restarts_all_clean_then_all_killed(cluster: Cluster) -> None:
    """All three SIGTERMed and restarted, then all SIGKILLed and restarted (the module's
    tests before it run first: `uv run pytest tests/cluster/test_membership.py
    --run-slow`)."""
    cluster.expect("mc1", "mc3", "mc4")
    for how in (signal.SIGTERM, signal.SIGKILL):
        restart_all(cluster, dict.fromkeys(cluster.nodes, how))


def restart_all(cluster: Cluster, how: dict[str, signal.Signals]) -> None:
    nodes = [cluster[name] for name in sorted(how)]
    first = nodes[0]
    label = ",".join(f"{n}:{s.name}" for n, s in how.items())
    first.client.sql(f"INSERT INTO t1 (value) VALUES ('before {label}')")
    before = {name: m["fingerprint"] for name, m in first.members().items()}
    rows = first.client.sql("SELECT id, value FROM t1 ORDER BY id")["results"][0]["rows"]

    for node in nodes:
        if how[node.name] is signal.SIGKILL:
            node.process.kill()
        else:
            assert node.process.stop(how=how[node.name]) == 0
            assert not (node.process.state_dir / "control.socket").exists()
    for node in nodes:
        node.process.start()
    for node in nodes:
        node.process.wait_ready()
    for node in nodes:
        status = node.client.status()
        assert (status["name"], status["address"]) == (node.name, node.address)
        assert status["database"] == "ready"
    wait_for(
        lambda: statuses(nodes[-1]) == {n.name: ("voter", "ONLINE") for n in nodes},
        60.0,
        f"three voters ONLINE after {label}",
    )
    assert {name: m["fingerprint"] for name, m in nodes[1].members().items()} == before
    for node in nodes:
        assert node.client.sql("SELECT id, value FROM t1 ORDER BY id")["results"][0]["rows"] == rows
    token = first.client.add_token("after-restart")  # writes work again
    assert token
    nodes[-1].client.revoke_token("after-restart")
