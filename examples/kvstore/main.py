"""example-kvstore: run one node of the replicated JSON key-value store.

Start-up, in order, so that whatever can fail fails before the cluster is asked for
anything: bind the HTTP port and check the Raft port is free; check STATE_DIR belongs
to this node with these settings; start the NodeHost; with DISCO_MODE, a node without
data lets discovery find or found its cluster (examples/kvstore/discovery.py); start a
replica of every shard (a restart passes no members: the log remembers them; a new node
that is not an initial member starts its replicas to join); serve HTTP. Only then does
a joining node ask the JOIN member (or the member discovery found) to add it, as a
non-voting member of every shard, and, once it has caught up, to make it a voting one:
a node that dies on the way never costs the cluster its quorum, and running the same
command again finishes the join.

SIGTERM or SIGINT stops HTTP first, then the NodeHost, and exits 0. Exit codes: 2 bad
settings, 1 a start-up failure; either is one line saying what to do.
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import json
import logging
import signal
import socket
import sys
from collections.abc import Coroutine, Mapping, Sequence
from typing import Any

import aiohttp
from aiohttp import web

from examples.kvstore.api import make_app
from examples.kvstore.commands import MAX_KEY_BYTES
from examples.kvstore.diagnosis import ClusterWatch, removed_text
from examples.kvstore.discovery import DiscoveryFailed, KVDiscovery, settle_node_id
from examples.kvstore.disk import DiskKV
from examples.kvstore.memory import MemoryKV
from examples.kvstore.metrics import ServiceMetrics
from examples.kvstore.service import KVService
from examples.kvstore.settings import Settings, SettingsError, format_peers, load_settings
from examples.kvstore.statedir import StateDir, StateDirError, claim
from nodehost import (
    Config,
    InvalidShardSettings,
    NodeHost,
    NodeHostConfig,
    NodeHostInfoOption,
    RaftError,
    ReplicaRemoved,
)
from nodehost.config import parse_address
from nodehost.limits import (
    DEFAULT_MAX_IN_MEM_LOG_SIZE,
    DEFAULT_MAX_PENDING_PROPOSAL_BYTES,
    message_size_for,
)

log = logging.getLogger("kvstore")

ELECTION_RTT = 10
HEARTBEAT_RTT = 1
JOIN_PATIENCE = 120.0  # seconds a new node keeps asking to be added
PROMOTE_REPORT_EVERY = 30.0  # seconds between two warnings while a promotion waits
_MiB = 1024 * 1024


class StartupError(RuntimeError):
    """The node cannot start; the message says why and what to change."""


def main() -> None:
    sys.exit(run())


def run(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    try:
        settings = load_settings(argv, environ)
    except SettingsError as exc:
        print(f"example-kvstore: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        return runner.run(serve(settings))


def _loop_factory() -> Any:
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


async def serve(settings: Settings) -> int:
    """Run the node until SIGTERM/SIGINT; the exit code."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    watch = ClusterWatch()
    http_socket: socket.socket | None = None
    nh: NodeHost | None = None
    runner: web.AppRunner | None = None
    disco: KVDiscovery | None = None
    maintenance: asyncio.Task[None] | None = None
    try:
        settings = settle_node_id(settings)  # NODE_ID=auto
        if settings.discovery is not None:
            disco = KVDiscovery(settings)
        http_socket = bind_http(settings)
        check_raft_port(settings)
        state = claim(settings)
        nh = await asyncio.to_thread(NodeHost, nodehost_config(settings, state.nodehost_dir, watch))
        if disco is not None and not nh.has_node_info(1, settings.node_id):
            if not await _unless_stopped(disco.find(http_socket), stop):
                return 0
            if disco.joined_through:
                disco.remember_join(state)
                settings = dataclasses.replace(settings, join=f"http://{disco.joined_through}")
        await asyncio.to_thread(start_replicas, nh, settings, state)
        if disco is not None and not settings.join:
            # A node added as a non-voting member that stopped before it was promoted
            # finishes the join through the member that added it.
            through = disco.remembered_join(state)
            if through and any(role != "voting" for role in _local_roles(nh).values()):
                settings = dataclasses.replace(settings, join=f"http://{through}")
        service = KVService(nh, settings, ServiceMetrics(), ELECTION_RTT, watch)
        app = make_app(service)
        if disco is not None:
            disco.install(app, nh)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        await web.SockSite(runner, http_socket, shutdown_timeout=settings.timeout).start()
        if disco is not None:
            maintenance = asyncio.create_task(disco.maintain(nh))
        log.info(
            "node %d serving http://%s (raft %s, store %s, %d shard(s), %s)",
            settings.node_id,
            settings.http_addr,
            settings.raft_addr,
            settings.store,
            settings.shards,
            f"joining through {settings.join}"
            if settings.wants_join
            else f"members {format_peers(settings.peers)}",
        )
        if settings.wants_join:
            joined = asyncio.ensure_future(finish_joining(nh, settings))
            stopped = asyncio.ensure_future(stop.wait())
            await asyncio.wait({joined, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if not joined.done():
                joined.cancel()
            else:
                stopped.cancel()
                joined.result()  # a StartupError ends the node here
                await stop.wait()
        else:
            await stop.wait()
        log.info("node %d stopping", settings.node_id)
        return 0
    except (StartupError, StateDirError, RaftError, OSError, DiscoveryFailed) as exc:
        log.error("cannot start node %d: %s", settings.node_id, exc)
        return 1
    finally:
        if maintenance is not None:
            maintenance.cancel()
            await asyncio.gather(maintenance, return_exceptions=True)
        if runner is not None:
            await runner.cleanup()
        if disco is not None:
            await disco.close()
        if http_socket is not None:
            http_socket.close()
        if nh is not None:
            await asyncio.to_thread(nh.close)


async def _unless_stopped(work: Coroutine[Any, Any, None], stop: asyncio.Event) -> bool:
    """Run `work` unless `stop` is set first; True when it finished."""
    task = asyncio.ensure_future(work)
    stopper = asyncio.ensure_future(stop.wait())
    await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    stopper.cancel()
    if not task.done():
        task.cancel()
        return False
    task.result()
    return True


def bind_http(settings: Settings) -> socket.socket:
    """The HTTP listening socket, bound now: a port in use is found before anything else."""
    host, port = settings.http_host_port
    return _bind(host, port, "HTTP", settings.http_addr, "--api", settings)


def check_raft_port(settings: Settings) -> None:
    """Fail now, not after creating the node's data, when the Raft port is taken."""
    host, port = parse_address(settings.raft_listen, "RAFT_LISTEN")
    flag = "--raft-listen" if settings.raft_listen != settings.raft_addr else "--db"
    _bind(host.strip("[]"), port, "Raft", settings.raft_listen, flag, settings).close()


def _bind(
    host: str, port: int, kind: str, address: str, flag: str, settings: Settings
) -> socket.socket:
    try:
        family, kind_of_socket, proto, _, sockaddr = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise StartupError(f"{kind} address {address}: {exc.strerror}: fix {flag}") from None
    sock = socket.socket(family, kind_of_socket, proto)
    try:
        # As the servers themselves do: a port whose last connections linger in
        # TIME_WAIT after a restart is free; one with a listener is not.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(sockaddr)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise StartupError(
                f"{kind} address {address} is in use (is node {settings.node_id} already "
                f"running?): stop that process, or choose another {flag}"
            ) from None
        raise StartupError(
            f"cannot listen on {kind} address {address}: {exc.strerror}: use an address "
            f"of this machine with {flag}"
        ) from None
    return sock


def max_entry_size(settings: Settings) -> int:
    """The largest command: a compare-and-set carries the expected and the new value."""
    return max(8 * _MiB, settings.max_value_bytes * 2 + MAX_KEY_BYTES + 64)


def nodehost_config(
    settings: Settings, state_dir: str, watch: ClusterWatch | None = None
) -> NodeHostConfig:
    entry = max_entry_size(settings)
    return NodeHostConfig(
        node_host_dir=state_dir,
        raft_address=settings.raft_addr,
        listen_address=settings.raft_listen,
        rtt_millisecond=settings.rtt_ms,
        enable_metrics=True,
        max_entry_size=entry,
        # Every node computes the same limit from the same MAX_VALUE_BYTES, so every
        # frame one sends, the others accept (the queues follow it).
        max_message_size=message_size_for(entry),
        system_event_listener=watch,
        admin_address=settings.admin_address,
    )


def replica_config(settings: Settings, shard_id: int) -> Config:
    # With values raised past the defaults, two of the largest commands may still wait.
    room = 2 * max_entry_size(settings)
    return Config(
        shard_id=shard_id,
        replica_id=settings.node_id,
        election_rtt=ELECTION_RTT,
        heartbeat_rtt=HEARTBEAT_RTT,
        check_quorum=True,  # a leader cut off from a quorum steps down (thesis 6.2)
        pre_vote=True,  # a rejoining node cannot depose a healthy leader (thesis 9.6)
        snapshot_entries=settings.snapshot_entries,
        compaction_overhead=settings.snapshot_entries // 2,
        max_in_mem_log_size=max(DEFAULT_MAX_IN_MEM_LOG_SIZE, room),
        max_pending_proposal_bytes=max(DEFAULT_MAX_PENDING_PROPOSAL_BYTES, room),
    )


def start_replicas(nh: NodeHost, settings: Settings, state: StateDir) -> None:
    for shard_id in range(1, settings.shards + 1):
        config = replica_config(settings, shard_id)
        if nh.has_node_info(shard_id, settings.node_id):
            members: dict[int, str] = {}  # a restart: the log holds the membership
            join = False
        elif settings.wants_join:
            members, join = {}, True  # waits until the cluster adds it (finish_joining)
        else:
            members, join = dict(settings.peers), False
        try:
            if settings.store == "memory":
                nh.start_concurrent_replica(members, join, MemoryKV, config)
            else:
                nh.start_on_disk_replica(members, join, DiskKV.factory(state.kv_dir), config)
        except ReplicaRemoved:
            raise StartupError(removed_text(settings.node_id, state.root)) from None
        except InvalidShardSettings as exc:
            raise StartupError(
                f"shard {shard_id}: {exc}; start this node with the settings it was first "
                f"started with, or delete {state.root} to start it over (its data is lost)"
            ) from None


# ---------------------------------------------------------------- joining


async def finish_joining(nh: NodeHost, settings: Settings) -> None:
    """Become a member of every shard through the JOIN member: non-voting first, voting
    once caught up. Each step is idempotent, so a restart simply does it again."""
    roles = _local_roles(nh)
    if "removed" in roles.values():
        raise StartupError(removed_text(settings.node_id, settings.state_dir))
    if any(role != "voting" for role in roles.values()):
        await ask_to_join(nh, settings, voting=False)
    await promote(nh, settings)


def _local_roles(nh: NodeHost) -> dict[int, str]:
    """This node's role in each shard as its replica knows it now (no round trip)."""
    roles = {}
    for s in nh.get_node_host_info(NodeHostInfoOption(skip_log_info=True)).shard_info_list:
        if s.is_removed:
            roles[s.shard_id] = "removed"
        elif s.is_non_voting:
            roles[s.shard_id] = "non-voting"
        elif s.replica_id in s.nodes:
            roles[s.shard_id] = "voting"
        else:
            roles[s.shard_id] = "none"
    return roles


async def ask_to_join(nh: NodeHost, settings: Settings, *, voting: bool) -> None:
    """POST /join to the JOIN member until it answers 200; StartupError if it refuses,
    or (for the first step) if it cannot be reached within JOIN_PATIENCE."""
    url = f"{settings.join}/join"
    payload = {
        "id": settings.node_id,
        "addr": settings.raft_addr,
        "store": settings.store,
        "shards": settings.shards,
        "voting": voting,
    }
    loop = asyncio.get_running_loop()
    deadline = loop.time() + JOIN_PATIENCE
    last_report = 0.0
    timeout = aiohttp.ClientTimeout(total=settings.timeout * (settings.shards + 1) + 5)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        while True:
            try:
                async with http.post(url, json=payload) as response:
                    text = await response.text()
                    if response.status == 200:
                        log.info("%s through %s: %s", _step(voting), settings.join, text)
                        return
                    problem = f"{response.status} {_error_of(text)}"
                    if response.status in (400, 404, 409, 410):
                        raise StartupError(
                            f"{url} refused to add node {settings.node_id}: {problem}"
                            f"{_fix_refusal(problem, settings)}"
                        )
            except (aiohttp.ClientError, TimeoutError) as exc:
                problem = f"{type(exc).__name__}: {exc}"
            if not voting and loop.time() >= deadline:
                raise StartupError(_gave_up(nh, settings, url, problem))
            if loop.time() - last_report >= (PROMOTE_REPORT_EVERY if voting else 0):
                log.warning("%s through %s: %s; retrying", _step(voting), url, problem)
                last_report = loop.time()
            await asyncio.sleep(1.0)


def _step(voting: bool) -> str:
    return "promoted to a voting member" if voting else "added as a non-voting member"


def _fix_refusal(problem: str, settings: Settings) -> str:
    if "can never return" in problem:
        return (
            f". Start a new node with another --id (and delete {settings.state_dir}, which "
            "belongs to the removed one)"
        )
    if "already the address of node" in problem or "already a member at" in problem:
        return ". Choose another --db, or another --id"
    return ". Change the setting it names and start this node again"


def _gave_up(nh: NodeHost, settings: Settings, url: str, problem: str) -> str:
    reached = any(role != "none" for role in _local_roles(nh).values())
    if reached:
        state = (
            "it is a non-voting member of some shards now, which costs the cluster nothing: "
            "run the same command again to finish joining, or remove it with "
            f"curl -XDELETE {settings.join}/cluster/{settings.node_id}"
        )
    else:
        state = (
            f"nothing was added: run the same command again once {settings.join} answers "
            "and its cluster has a quorum"
        )
    return f"could not join through {url} in {JOIN_PATIENCE:g}s ({problem}); {state}"


async def promote(nh: NodeHost, settings: Settings) -> None:
    """Once this node's replicas caught up (a linearizable membership read on each
    succeeds only then), ask for the voting role until every shard gave it."""
    reported = False
    while True:
        behind, non_voting = [], []
        for shard_id in range(1, settings.shards + 1):
            try:
                m = await nh.aio_get_shard_membership(shard_id, settings.timeout)
            except RaftError as exc:
                if not reported:
                    log.info("node %d catching up on shard %d: %s", settings.node_id, shard_id, exc)
                    reported = True
                behind.append(shard_id)
                continue
            if settings.node_id in m.removed:
                raise StartupError(removed_text(settings.node_id, settings.state_dir))
            if settings.node_id in m.non_votings:
                non_voting.append(shard_id)
            elif settings.node_id not in m.nodes:
                behind.append(shard_id)
        if behind:
            await asyncio.sleep(1.0)
        elif non_voting:
            await ask_to_join(nh, settings, voting=True)
        else:
            log.info("node %d is a voting member of every shard", settings.node_id)
            return


def _error_of(text: str) -> str:
    try:
        body = json.loads(text)
    except ValueError:
        return text[:200]
    return str(body.get("error", body)) if isinstance(body, dict) else text[:200]


if __name__ == "__main__":
    main()
