"""The agent with real NodeHosts (gRPC on loopback, RocksDB in a temp dir) and a real
etcd, in one process: a node joins through the key; the leader publishes with
check-and-set, never over a higher term, repairs an edit or a deletion, and rides out
an etcd outage; a node that cannot reach the store gives up after its patience."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from nodehost import Config, NodeHost, NodeHostConfig
from nodehost.discovery import (
    Discovery,
    GaveUp,
    Joiner,
    JoinRefused,
    LeaderRecord,
    PeerStatus,
    load_config,
)
from tests.discovery.etcd_server import EtcdServer
from tests.host.cluster import KV, free_ports

pytestmark = pytest.mark.integration

KEY = "/nodehost/discovery/agent"


def replica_config(replica_id: int) -> Config:
    return Config(shard_id=1, replica_id=replica_id, election_rtt=10, heartbeat_rtt=1)


@pytest.fixture
def hosts(tmp_path: Path) -> Iterator[list[NodeHost]]:
    made = []
    for i, port in enumerate(free_ports(2), start=1):
        made.append(
            NodeHost(
                NodeHostConfig(
                    node_host_dir=str(tmp_path / f"nh{i}"),
                    raft_address=f"127.0.0.1:{port}",
                    rtt_millisecond=20,
                )
            )
        )
    try:
        yield made
    finally:
        for nh in made:
            nh.close()


async def wait_until(what: str, check: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")


def agents_for(etcd: EtcdServer, hosts: list[NodeHost]) -> list[Discovery]:
    """An agent per host; probe and join reach the other host directly, standing in for
    an application's API."""
    disco = load_config("etcd-kv", json.dumps({"endpoints": [etcd.endpoint]}), "agent")
    agents: list[Discovery] = []

    def host_at(address: str) -> int:
        return [a.api_addr for a in agents].index(address)

    async def probe(address: str) -> PeerStatus:
        index = host_at(address)
        return agents[index].status(hosts[index], 1)

    def joiner(me: int) -> Joiner:
        async def join(address: str) -> None:
            member = hosts[host_at(address)]
            if me in member.sync_get_shard_membership(1, 5).removed:
                raise JoinRefused(f"node {me} was removed")
            await asyncio.to_thread(
                member.sync_request_add_replica, 1, me, hosts[me - 1].raft_address, 0, 10
            )

        return join

    for i, nh in enumerate(hosts, start=1):
        agents.append(
            Discovery(
                disco,
                node_id=i,
                raft_addr=nh.raft_address,
                api_addr=f"api-{i}",
                probe=probe,
                join=joiner(i),
            )
        )
    return agents


def test_a_node_bootstraps_the_next_joins_and_the_leader_keeps_the_key(
    etcd: EtcdServer, hosts: list[NodeHost], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="nodehost.discovery")
    first, second = agents_for(etcd, hosts)

    async def scenario() -> None:
        assert await first.find_cluster() is False, "the first node creates the key"
        hosts[0].start_replica({1: first.raft_addr}, False, KV, replica_config(1))
        maintaining = asyncio.create_task(first.maintain(hosts[0], [1]))
        try:
            await wait_until(
                "the leader to publish itself",
                lambda: (etcd.get_json(KEY) or {}).get("bootstrapped") is True,
            )
            assert await second.find_cluster() is True, "the second node joins"
            hosts[1].start_replica({}, True, KV, replica_config(2))
            await wait_until(
                "both to be members",
                lambda: set(second.status(hosts[1], 1).members) == {1, 2},
            )
            _, term, _ = hosts[0].get_leader_id(1)
            assert etcd.get_json(KEY) == json.loads(
                LeaderRecord(1, first.raft_addr, "api-1", term).to_json()
            )

            # A record of a higher term is a newer leader's: never overwritten.
            newer = LeaderRecord(9, "127.0.0.1:9", "api-9", term + 100)
            etcd.put(KEY, newer.to_json())
            await wait_until(
                "the leader to notice it is not the newest",
                lambda: "this node is no longer the leader" in caplog.text,
            )
            assert etcd.get_json(KEY) == json.loads(newer.to_json())

            # An older record, or none, is repaired within the re-read period.
            etcd.put(KEY, LeaderRecord(9, "127.0.0.1:9", "api-9", 0).to_json())
            await wait_until(
                "the key to be repaired", lambda: (etcd.get_json(KEY) or {}).get("node_id") == 1
            )
            etcd.delete(KEY)
            await wait_until(
                "the key to be recreated", lambda: (etcd.get_json(KEY) or {}).get("node_id") == 1
            )

            # An outage is logged once, serving goes on, and the end is logged too.
            etcd.stop()
            await wait_until(
                "the outage to be logged", lambda: "discovery store unreachable" in caplog.text
            )
            session = hosts[0].get_noop_session(1)
            await asyncio.to_thread(
                hosts[0].sync_propose, session, b'{"op": "put", "k": "a", "v": 1}', 5
            )
            etcd.start()
            await wait_until("the recovery to be logged", lambda: "reachable again" in caplog.text)
            assert caplog.text.count("discovery store unreachable") == 1
        finally:
            maintaining.cancel()
            await asyncio.gather(maintaining, return_exceptions=True)
            for agent in (first, second):
                await agent.close()

    asyncio.run(scenario())


def test_an_unreachable_store_is_retried_then_given_up(
    hosts: list[NodeHost], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="nodehost.discovery")
    (closed,) = free_ports(1)
    config = load_config(
        "etcd-kv", json.dumps({"endpoints": [f"127.0.0.1:{closed}"], "patience": 1.5}), "k"
    )

    async def never(address: str) -> PeerStatus:
        raise AssertionError("nothing to probe")

    async def no_join(address: str) -> None:
        raise AssertionError("nothing to join")

    agent = Discovery(
        config, node_id=1, raft_addr="127.0.0.1:1", api_addr="a", probe=never, join=no_join
    )

    async def scenario() -> None:
        try:
            with pytest.raises(GaveUp, match=r"in 1\.5s: etcd is unreachable") as caught:
                await agent.find_cluster()
            assert "\n" not in str(caught.value)
        finally:
            await agent.close()

    asyncio.run(scenario())
    retries = [r for r in caplog.records if "retrying in" in r.getMessage()]
    assert retries and all(r.levelno == logging.WARNING for r in retries)
