"""The leader key in a real etcd: create-if-absent, check-and-set, and failures."""

from __future__ import annotations

import asyncio

import pytest

from nodehost.discovery import (
    EtcdConfig,
    EtcdStore,
    LeaderRecord,
    StoreAnswerInvalid,
    StoreUnavailable,
)
from tests.discovery.etcd_server import EtcdServer
from tests.host.cluster import free_ports

pytestmark = pytest.mark.integration


def record(node_id: int, term: int = 1) -> LeaderRecord:
    return LeaderRecord(
        node_id, f"127.0.0.1:{12000 + node_id}", f"127.0.0.1:{11000 + node_id}", term
    )


def test_create_only_while_absent_and_swap_only_at_the_read_revision(etcd: EtcdServer) -> None:
    async def scenario() -> None:
        store = EtcdStore(EtcdConfig((etcd.endpoint,)), "orders")
        try:
            assert await store.read() is None
            assert await store.create(record(1))
            assert not await store.create(record(2)), "the key exists: create must fail"
            first = await store.read()
            assert first is not None and first.record == record(1)
            assert await store.swap(record(2, 2), first.mod_revision)
            assert not await store.swap(record(3, 3), first.mod_revision), "stale revision"
            second = await store.read()
            assert second is not None and second.record == record(2, 2)
            assert second.mod_revision > first.mod_revision
        finally:
            await store.close()

    asyncio.run(scenario())
    assert etcd.get_json("/nodehost/discovery/orders") == {
        "format": 1,
        "node_id": 2,
        "raft_addr": "127.0.0.1:12002",
        "api_addr": "127.0.0.1:11002",
        "term": 2,
        "bootstrapped": True,
    }


def test_many_simultaneous_creates_have_one_winner(etcd: EtcdServer) -> None:
    async def scenario() -> list[bool]:
        stores = [EtcdStore(EtcdConfig((etcd.endpoint,)), "race") for _ in range(20)]
        try:
            return await asyncio.gather(*(s.create(record(i + 1)) for i, s in enumerate(stores)))
        finally:
            for s in stores:
                await s.close()

    won = asyncio.run(scenario())
    assert won.count(True) == 1
    stored = etcd.get_json("/nodehost/discovery/race")
    assert stored is not None and stored["node_id"] == won.index(True) + 1


def test_keys_of_two_clusters_are_separate(etcd: EtcdServer) -> None:
    async def scenario() -> None:
        a = EtcdStore(EtcdConfig((etcd.endpoint,)), "a")
        b = EtcdStore(EtcdConfig((etcd.endpoint,), prefix="/other/"), "a")
        try:
            assert await a.create(record(1)) and await b.create(record(2))
            got_a, got_b = await a.read(), await b.read()
            assert got_a is not None and got_a.record.node_id == 1
            assert got_b is not None and got_b.record.node_id == 2
        finally:
            await a.close()
            await b.close()

    asyncio.run(scenario())


def test_a_foreign_value_under_the_key_is_refused(etcd: EtcdServer) -> None:
    etcd.put("/nodehost/discovery/taken", b"some other program's value")

    async def scenario() -> None:
        store = EtcdStore(EtcdConfig((etcd.endpoint,)), "taken")
        try:
            with pytest.raises(StoreAnswerInvalid, match="not a discovery record"):
                await store.read()
        finally:
            await store.close()

    asyncio.run(scenario())


def test_a_dead_endpoint_is_skipped_and_all_dead_is_unavailable(etcd: EtcdServer) -> None:
    (dead,) = free_ports(1)

    async def scenario() -> None:
        both = EtcdStore(EtcdConfig((f"http://127.0.0.1:{dead}", etcd.endpoint), timeout=1), "k")
        only_dead = EtcdStore(EtcdConfig((f"http://127.0.0.1:{dead}",), timeout=1), "k")
        try:
            assert await both.create(record(1))
            with pytest.raises(StoreUnavailable, match=f"127.0.0.1:{dead}") as caught:
                await only_dead.read()
            assert "\n" not in str(caught.value)
        finally:
            await both.close()
            await only_dead.close()

    asyncio.run(scenario())
