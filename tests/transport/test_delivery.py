"""Messages between two live transports: batching, routing, failures, restarts, faults.

Every scenario runs on the gRPC transport and on the in-memory one, on the default
asyncio loop and on uvloop: the engine must not care which it has.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from transport_kit import LOOPS, Recorder, eventually, heartbeat, make, run, settle

from transport import BindError, FaultHook, InMemoryNetwork, NotStarted
from transport.base import MAX_BATCH_MESSAGES, BaseTransport

KINDS = ("grpc", "tcp", "memory")


@pytest.fixture(params=[(k, lp) for k in KINDS for lp in LOOPS], ids=lambda p: f"{p[0]}-{p[1]}")
def setup(request: pytest.FixtureRequest) -> tuple[str, str]:
    kind, loop = request.param
    return kind, loop


class Pair:
    """Two transports, A and B, that know each other's replicas of shards 1..shards."""

    def __init__(self, kind: str, shards: int = 4, **kw: Any) -> None:
        self.kind = kind
        self.network = InMemoryNetwork()
        self.ha = Recorder(hosted={(s, 1) for s in range(1, shards + 1)})
        self.hb = Recorder(hosted={(s, 2) for s in range(1, shards + 1)})
        self.a = make(kind, self.ha, self.network, **kw)
        self.b = make(kind, self.hb, self.network, **kw)
        for s in range(1, shards + 1):
            self.a.registry.add(s, 2, self.b.config.raft_address)
            self.b.registry.add(s, 1, self.a.config.raft_address)

    async def start(self) -> Pair:
        await self.a.start()
        await self.b.start()
        return self

    async def close(self) -> None:
        await self.a.close()
        await self.b.close()

    def restart_b(self) -> BaseTransport:
        """A new B at the same address (its routes re-registered)."""
        self.b = make(self.kind, self.hb, self.network, raft_address=self.b.config.raft_address)
        self.b.registry.add(1, 1, self.a.config.raft_address)
        return self.b


def scenario(
    setup: tuple[str, str], body: Callable[[Pair], Coroutine[Any, Any, None]], **kw: Any
) -> None:
    kind, loop = setup

    async def main() -> None:
        pair = await Pair(kind, **kw).start()
        try:
            await body(pair)
        finally:
            await pair.close()

    run(loop, main)


def test_messages_of_all_shards_reach_the_hosted_replicas(setup: tuple[str, str]) -> None:
    async def body(p: Pair) -> None:
        sent = [heartbeat(shard_id=1 + i % 4, to=2, from_id=1, term=i + 1) for i in range(200)]
        p.a.send(sent)
        await eventually(lambda: len(p.hb.messages) == 200)
        assert p.hb.messages == sent  # in order, all shards on one stream
        assert set(p.hb.sources) == {p.a.config.raft_address}
        assert p.a.stats.batches_sent < 10  # one pass, one frame (or a few)
        p.b.send([heartbeat(shard_id=3, to=1, from_id=2)])
        await eventually(lambda: len(p.ha.messages) == 1)
        assert p.a.stats.messages_sent == 200 and p.b.stats.messages_received == 200
        assert not p.a.stats.rejected and not p.b.stats.rejected

    scenario(setup, body)


def test_a_long_queue_goes_in_frames_of_bounded_size(setup: tuple[str, str]) -> None:
    async def body(p: Pair) -> None:
        p.a.send([heartbeat(term=i + 1) for i in range(MAX_BATCH_MESSAGES * 2 + 10)])
        await eventually(lambda: len(p.hb.messages) == MAX_BATCH_MESSAGES * 2 + 10)
        assert p.a.stats.batches_sent == 3  # all queued in one pass, sent in three frames
        assert [m.term for m in p.hb.messages] == list(range(1, MAX_BATCH_MESSAGES * 2 + 11))

    scenario(setup, body)


def test_a_long_queue_on_an_open_idle_connection_goes_out_whole(setup: tuple[str, str]) -> None:
    """The same once the connection is up and its writer idle (on TCP the frames are
    then written by the loop's flush, not the writer task): every frame goes out."""

    async def body(p: Pair) -> None:
        p.a.send([heartbeat(term=1)])
        await eventually(lambda: len(p.hb.messages) == 1)
        count = MAX_BATCH_MESSAGES * 2 + 10
        p.a.send([heartbeat(term=i + 2) for i in range(count)])
        await eventually(lambda: len(p.hb.messages) == count + 1)
        assert [m.term for m in p.hb.messages] == list(range(1, count + 2))

    scenario(setup, body)


def test_frames_are_bounded_by_bytes(setup: tuple[str, str]) -> None:
    async def body(p: Pair) -> None:
        burst = [heartbeat(term=i + 1) for i in range(300)]  # 3,773 bytes encoded
        p.a.send(burst)
        await eventually(lambda: len(p.hb.messages) == 300)
        assert p.hb.messages == burst
        assert 4 <= p.a.stats.batches_sent <= 5  # at most 1 KiB each

    scenario(setup, body, batch_bytes=1024)


def test_engine_may_reuse_messages_after_send(setup: tuple[str, str]) -> None:
    async def body(p: Pair) -> None:
        m = heartbeat(term=1)
        p.a.send([m])
        m.term = 2  # the engine reuses its object before the writer runs
        p.a.send([m])
        await eventually(lambda: len(p.hb.messages) == 2)
        assert [x.term for x in p.hb.messages] == [1, 2]

    scenario(setup, body)


def test_unknown_target_is_dropped_and_reported_unreachable(setup: tuple[str, str]) -> None:
    async def body(p: Pair) -> None:
        p.a.send([heartbeat(shard_id=9, to=2), heartbeat(shard_id=1, to=7), heartbeat(term=3)])
        assert sorted(p.ha.unreachable) == [(1, 7), (9, 2)]  # told at once, in send()
        assert p.a.stats.unroutable == 2
        await eventually(lambda: len(p.hb.messages) == 1)
        assert p.hb.messages[0].term == 3

    scenario(setup, body)


def test_a_full_queue_drops_and_counts_without_blocking(setup: tuple[str, str]) -> None:
    async def body(p: Pair) -> None:
        burst = [heartbeat(term=i + 1) for i in range(1000)]  # ~14 KB
        p.a.send(burst)  # one pass, before the writer gets a turn
        assert p.a.queued_bytes(p.b.config.raft_address) <= 1024
        dropped = p.a.stats.dropped
        assert 900 < dropped < 1000
        await eventually(lambda: len(p.hb.messages) == 1000 - dropped)
        assert [m.term for m in p.hb.messages] == list(range(1, 1001 - dropped))
        p.a.send([heartbeat(term=5000)])  # drained: room again
        await eventually(lambda: p.hb.messages[-1].term == 5000)

    scenario(setup, body, max_send_queue_size=1024)


def test_a_message_above_max_message_size_is_dropped(setup: tuple[str, str]) -> None:
    async def body(p: Pair) -> None:
        big = heartbeat(term=1)
        big.entries.add(cmd=b"x" * (p.a.config.max_message_size + 10))
        p.a.send([big, heartbeat(term=2)])
        await eventually(lambda: len(p.hb.messages) == 1)
        assert p.hb.messages[0].term == 2 and p.a.stats.dropped == 1

    scenario(
        setup,
        body,
        max_message_size=64 * 1024,
        max_send_queue_size=1 << 20,
        snapshot_chunk_size=1024,
    )


def test_frames_stay_within_max_message_size_whatever_batch_bytes_says(
    setup: tuple[str, str],
) -> None:
    async def body(p: Pair) -> None:
        burst = []
        for i in range(12):  # ~240 KiB queued at once: one frame would be ~4x the limit
            m = heartbeat(term=i + 1)
            m.entries.add(cmd=b"x" * 20_000)
            burst.append(m)
        p.a.send(burst)
        await eventually(lambda: len(p.hb.messages) == 12)
        assert [m.term for m in p.hb.messages] == list(range(1, 13))
        assert p.a.stats.dropped == 0
        assert not p.b.stats.rejected
        assert p.a.stats.batches_sent >= 4  # 64 KiB holds three of them

    scenario(
        setup,
        body,
        max_message_size=64 * 1024,
        batch_bytes=1 << 20,
        snapshot_chunk_size=1024,
    )


def test_a_peer_that_is_down_is_reported_then_found_when_it_starts(setup: tuple[str, str]) -> None:
    kind, loop = setup

    async def main() -> None:
        p = Pair(kind)
        await p.a.start()  # B is not running
        try:
            p.a.send([heartbeat(shard_id=1), heartbeat(shard_id=2)])
            await eventually(lambda: len(p.ha.unreachable) >= 4, what="unreachable reports")
            # Every replica at B's address was reported (all 4 shards), not only the two sent to.
            assert set(p.ha.unreachable) == {(s, 2) for s in range(1, 5)}
            assert p.a.stats.connect_failures >= 1
            await p.b.start()
            # Keep sending, as Raft does with heartbeats, until the breaker lets one through.
            for i in range(400):
                p.a.send([heartbeat(term=i + 1)])
                if p.hb.messages:
                    break
                await asyncio.sleep(0.01)
            assert p.hb.messages, "a peer that came up was never reached"
            assert p.a.stats.connects >= 1
            b = p.b.config.raft_address
            failures = p.a.stats.connect_failures
            assert p.ha.connections == [(b, False)] * failures + [(b, True)]
        finally:
            await p.close()

    run(loop, main)


def test_sends_while_the_breaker_is_open_fail_fast(setup: tuple[str, str]) -> None:
    kind, loop = setup

    async def main() -> None:
        p = Pair(kind, backoff_min=5.0, backoff_max=5.0)
        await p.a.start()
        try:
            p.a.send([heartbeat()])
            await eventually(lambda: p.a.stats.connect_failures == 1)
            reports = len(p.ha.unreachable)
            p.a.send([heartbeat(shard_id=2), heartbeat(shard_id=2), heartbeat(shard_id=3)])
            assert p.ha.unreachable[reports:] in ([(2, 2), (3, 2)], [(3, 2), (2, 2)])
            assert p.a.stats.unreachable >= 3
            await settle(0.1)
            assert p.a.stats.connect_failures == 1  # no new attempt inside the back-off
        finally:
            await p.close()

    run(loop, main)


def test_a_restarted_remote_is_picked_up(setup: tuple[str, str]) -> None:
    async def body(p: Pair) -> None:
        p.a.send([heartbeat(term=1)])
        await eventually(lambda: len(p.hb.messages) == 1)
        await p.b.close()
        for _ in range(400):  # heartbeats until the broken stream is noticed
            p.a.send([heartbeat(term=2)])
            if p.ha.unreachable:
                break
            await asyncio.sleep(0.01)
        assert (1, 2) in p.ha.unreachable
        b = p.restart_b()
        await b.start()
        before = len(p.hb.messages)
        for i in range(400):
            p.a.send([heartbeat(term=100 + i)])
            if len(p.hb.messages) > before:
                break
            await asyncio.sleep(0.01)
        assert len(p.hb.messages) > before, "the restarted remote was never reached"
        b.send([heartbeat(shard_id=1, to=1, from_id=2)])  # and it can answer
        await eventually(lambda: len(p.ha.messages) == 1)

    scenario(setup, body)


def test_cuts_are_enforced_per_direction(setup: tuple[str, str]) -> None:
    async def body(p: Pair) -> None:
        a, b = p.a.config.raft_address, p.b.config.raft_address
        hook = FaultHook()
        p.a.set_fault_hook(hook)
        hook.cut(a, b)  # A stops sending to B, still hears B
        p.a.send([heartbeat(term=1)])
        p.b.send([heartbeat(shard_id=1, to=1, from_id=2)])
        await eventually(lambda: len(p.ha.messages) == 1)
        await settle()
        assert p.hb.messages == [] and p.a.stats.fault_dropped == 1
        hook.heal()
        hook.cut(b, a)  # now A refuses what arrives from B
        p.b.send([heartbeat(shard_id=1, to=1, from_id=2)])
        p.a.send([heartbeat(term=2)])
        await eventually(lambda: len(p.hb.messages) == 1)
        await eventually(lambda: p.a.stats.fault_dropped == 2)
        assert len(p.ha.messages) == 1
        p.a.set_fault_hook(None)
        p.b.send([heartbeat(shard_id=1, to=1, from_id=2)])
        await eventually(lambda: len(p.ha.messages) == 2)

    scenario(setup, body)


def test_random_faults_drop_duplicate_and_delay(setup: tuple[str, str]) -> None:
    async def body(p: Pair) -> None:
        p.a.set_fault_hook(FaultHook(1, duplicate=1.0))
        p.a.send([heartbeat(term=1)])
        await eventually(lambda: len(p.hb.messages) == 2)
        p.a.set_fault_hook(FaultHook(2, drop=1.0))
        p.a.send([heartbeat(term=2)])
        p.a.set_fault_hook(FaultHook(3, delay=(0.05, 0.2), delay_rate=0.5))
        p.a.send([heartbeat(term=3 + i) for i in range(40)])
        await eventually(lambda: len(p.hb.messages) == 42)
        terms = [m.term for m in p.hb.messages[2:]]
        assert sorted(terms) == list(range(3, 43)) and terms != sorted(terms)  # reordered
        assert p.a.stats.fault_dropped == 1

    scenario(setup, body)


def test_lifecycle_errors_are_clear(setup: tuple[str, str]) -> None:
    kind, loop = setup

    async def main() -> None:
        p = Pair(kind)
        with pytest.raises(NotStarted):
            p.a.send([heartbeat()])
        await p.start()
        await p.a.close()
        await p.a.close()  # idempotent
        p.a.send([heartbeat()])  # after close: dropped, no error
        await p.b.close()

    run(loop, main)


@pytest.mark.parametrize("loop", LOOPS)
def test_a_taken_port_is_a_clear_error(loop: str) -> None:
    async def main() -> None:
        with socket.socket() as other:
            other.bind(("127.0.0.1", 0))
            other.listen()
            taken = f"127.0.0.1:{other.getsockname()[1]}"
            t = make("grpc", Recorder(), raft_address=taken)
            with pytest.raises(BindError, match=taken):
                await t.start()
        first = make("grpc", Recorder())
        await first.start()
        second = make("grpc", Recorder(), raft_address=first.config.raft_address)
        with pytest.raises(BindError):
            await second.start()  # SO_REUSEPORT is off: no silent sharing
        await first.close()
        network = InMemoryNetwork()
        m1 = make("memory", Recorder(), network)
        await m1.start()
        with pytest.raises(BindError):
            await make("memory", Recorder(), network, raft_address=m1.config.raft_address).start()
        await m1.close()

    run(loop, main)


@pytest.mark.parametrize("kind", KINDS)
def test_nodehosts_on_their_own_loop_threads(kind: str) -> None:
    """As NodeHosts run: each transport on its own loop, on its own thread."""
    network = InMemoryNetwork()
    ha, hb = Recorder(hosted={(1, 1)}), Recorder(hosted={(1, 2)})
    a, b = make(kind, ha, network), make(kind, hb, network)
    a.registry.add(1, 2, b.config.raft_address)
    b.registry.add(1, 1, a.config.raft_address)
    started = threading.Barrier(3, timeout=10)
    stop = threading.Event()
    errors: list[BaseException] = []

    def host(t: BaseTransport, loop_kind: str, to: int, from_id: int) -> None:
        async def main() -> None:
            await t.start()
            started.wait()
            for i in range(50):
                t.send([heartbeat(to=to, from_id=from_id, term=i + 1)])
                await asyncio.sleep(0.002)
            while not stop.is_set():
                await asyncio.sleep(0.005)
            await t.close()

        try:
            run(loop_kind, main)
        except BaseException as e:
            errors.append(e)

    threads = [
        threading.Thread(target=host, args=(a, "uvloop", 2, 1)),
        threading.Thread(target=host, args=(b, "asyncio", 1, 2)),
    ]
    for t in threads:
        t.start()
    started.wait()

    async def wait() -> None:
        await eventually(lambda: len(ha.messages) == 50 and len(hb.messages) == 50)

    try:
        run("asyncio", wait)
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    assert not errors
    assert [m.term for m in hb.messages] == list(range(1, 51))
