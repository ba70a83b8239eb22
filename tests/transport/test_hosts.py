"""Hosts addressed by NodeHost id, over real gRPC and TCP: they find each other from their
seeds, follow a host that moved to another port, and believe an address for an id only
from the host that answers there with that id."""

from __future__ import annotations

import asyncio
import uuid

import grpc
import pytest
from transport_kit import (
    Recorder,
    address,
    config,
    eventually,
    heartbeat,
    raw_tcp,
    run,
    settle,
    tcp_answer,
)

from protos import raft_pb2 as pb
from transport import (
    GrpcTransport,
    InMemoryNetwork,
    InMemoryTransport,
    TcpTransport,
    TransportConfigError,
)
from transport.base import BaseTransport
from transport.frames import BIN_VERSION, IDENTIFY_METHOD
from transport.tcp_wire import IDENTIFY

KINDS = ("grpc", "tcp")


def by_id(
    node_host_id: str, own: str, seeds: list[str], handler: Recorder, kind: str = "grpc"
) -> BaseTransport:
    cfg = config(own, address_by_node_host_id=True, node_host_id=node_host_id, seeds=tuple(seeds))
    return GrpcTransport(cfg, handler) if kind == "grpc" else TcpTransport(cfg, handler)


def place(t: BaseTransport, ids: dict[int, str]) -> None:
    for replica_id, node_host_id in ids.items():
        t.registry.add(1, replica_id, node_host_id)


@pytest.mark.parametrize("kind", KINDS)
def test_hosts_find_each_other_and_follow_a_move(kind: str) -> None:
    async def main() -> None:
        ids = {r: str(uuid.uuid4()) for r in (1, 2, 3)}
        addresses = {r: address() for r in (1, 2, 3)}
        handlers = {r: Recorder(hosted={(1, r)}) for r in (1, 2, 3)}
        hosts = {
            r: by_id(
                ids[r],
                addresses[r],
                [addresses[o] for o in (1, 2, 3) if o != r],
                handlers[r],
                kind,
            )
            for r in (1, 2, 3)
        }
        for t in hosts.values():
            await t.start()
            place(t, ids)
        try:
            await eventually(
                lambda: all(t.registry.resolve(1, 3) == addresses[3] for t in hosts.values()),
                what="every host to locate host 3",
            )
            hosts[1].send([heartbeat(to=3, from_id=1)])
            await eventually(lambda: len(handlers[3].messages) == 1, what="a message by id")

            # Host 3 comes back on another port, knowing only host 1.
            await hosts[3].close()
            moved = address()
            handlers[3] = Recorder(hosted={(1, 3)})
            hosts[3] = by_id(ids[3], moved, [addresses[1]], handlers[3], kind)
            await hosts[3].start()
            place(hosts[3], ids)
            await eventually(
                lambda: hosts[1].registry.resolve(1, 3) == moved,
                what="host 1 to learn the new port",
            )

            # Host 2 heard nothing from host 3; its messages there fail, and it asks
            # the hosts it knows.
            async def delivered_from_2() -> None:
                while not any(m.from_id == 2 for m in handlers[3].messages):
                    hosts[2].send([heartbeat(to=3, from_id=2)])
                    await asyncio.sleep(0.05)

            await asyncio.wait_for(delivered_from_2(), 20)
            assert hosts[2].registry.resolve(1, 3) == moved
            assert hosts[3].registry.resolve(1, 2) == addresses[2]
        finally:
            for t in hosts.values():
                await t.close()

    run("asyncio", main, timeout=60)


@pytest.mark.parametrize("kind", KINDS)
def test_an_address_is_believed_only_from_the_host_answering_there(kind: str) -> None:
    async def main() -> None:
        victim, honest, liar = (str(uuid.uuid4()) for _ in range(3))
        a_address, b_address, liar_address = address(), address(), address()
        a = by_id(victim, a_address, [b_address], Recorder(), kind)
        b = by_id(honest, b_address, [], Recorder(hosted={(1, 2)}), kind)
        fake = by_id(liar, liar_address, [], Recorder(), kind)
        for t in (a, b, fake):
            await t.start()
        place(a, {2: honest})
        try:
            await eventually(lambda: a.registry.resolve(1, 2) == b_address, what="b located")

            async def identify(hello: pb.HostHello) -> grpc.StatusCode | None:
                """None when answered; PERMISSION_DENIED when refused (the status gRPC's
                transport answers; the TCP transport's refusal maps to it here)."""
                if kind == "tcp":
                    status, _ = tcp_answer(
                        await raw_tcp(a_address, IDENTIFY, [hello.SerializeToString()])
                    )
                    return None if status == 0 else grpc.StatusCode.PERMISSION_DENIED
                async with grpc.aio.insecure_channel(a_address) as channel:
                    try:
                        await channel.unary_unary(IDENTIFY_METHOD)(
                            hello.SerializeToString(), timeout=5
                        )
                    except grpc.aio.AioRpcError as exc:
                        return exc.code()
                return None

            # The liar claims to be b, and names itself as where b is.
            forged = pb.HostHello(
                deployment_id=7,
                bin_ver=BIN_VERSION,
                node_host_id=honest,
                address=liar_address,
                known=[pb.HostAddress(node_host_id=honest, address=liar_address)],
            )
            assert await identify(forged) is None
            # a checked the claim by dialling it: the host there is the liar, by its own id.
            await eventually(
                lambda: a.hosts is not None and a.hosts.address_of(liar) == liar_address,
                what="a to have dialled the claimed address",
            )
            assert a.registry.resolve(1, 2) == b_address
            assert a.hosts is not None and a.hosts.address_of(honest) == b_address

            # Another deployment is refused outright.
            other = pb.HostHello(deployment_id=8, bin_ver=BIN_VERSION, node_host_id=liar)
            assert await identify(other) is grpc.StatusCode.PERMISSION_DENIED
            assert await identify(pb.HostHello()) is grpc.StatusCode.PERMISSION_DENIED
        finally:
            for t in (a, b, fake):
                await t.close()

    run("asyncio", main, timeout=60)


def test_a_source_address_names_a_host_only_once_dialled() -> None:
    """What a joining replica's host learns from a peer's first batch: its source address
    is dialled, and only the host answering there is taken to be at it."""

    async def main() -> None:
        joining, leader = str(uuid.uuid4()), str(uuid.uuid4())
        a_address, b_address, silent = address(), address(), address()
        a = by_id(joining, a_address, [], Recorder())
        b = by_id(leader, b_address, [], Recorder())
        for t in (a, b):
            await t.start()
        try:
            assert a.hosts is not None
            assert a.hosts.host_at(b_address) is None  # a claim, not dialled yet
            a.hosts.look_at(b_address)
            a.hosts.look_at(silent)  # nobody answers there
            a.hosts.look_at("not an address")
            await eventually(lambda: a.hosts is not None and a.hosts.host_at(b_address) == leader)
            await settle(0.5)
            assert a.hosts.host_at(silent) is None
            assert a.hosts.known() == {joining: a_address, leader: b_address}
        finally:
            for t in (a, b):
                await t.close()

    run("asyncio", main, timeout=60)


def test_a_transport_that_cannot_identify_hosts_refuses_the_mode() -> None:
    cfg = config(address_by_node_host_id=True, node_host_id=str(uuid.uuid4()))
    with pytest.raises(TransportConfigError, match="cannot address hosts by NodeHost id"):
        InMemoryTransport(InMemoryNetwork(), cfg, Recorder())
    with pytest.raises(TransportConfigError, match="is not a NodeHost id"):
        config(address_by_node_host_id=True, node_host_id="host-1")
    with pytest.raises(TransportConfigError, match="seeds"):
        config(address_by_node_host_id=True, node_host_id=str(uuid.uuid4()), seeds=("nowhere",))
