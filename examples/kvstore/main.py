"""example-kvstore: run one node of the replicated JSON key-value store.

Start-up, in order: check STATE_DIR belongs to this node; start the NodeHost; if this
node is new and not an initial member, ask the JOIN member to add it (retrying while
that member is unreachable or has no leader), or, with DISCO_MODE, let discovery find
or found its cluster (examples/kvstore/discovery.py); start a replica of every shard (a
restart passes no members: the log remembers them); serve HTTP. SIGTERM or SIGINT
stops HTTP first, then the NodeHost, and exits 0. Exit codes: 2 bad settings, 1 a
start-up failure (the message says which).
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
from collections.abc import Coroutine, Mapping, Sequence
from typing import Any, TypeVar

import aiohttp
from aiohttp import web

from examples.kvstore.api import make_app
from examples.kvstore.commands import MAX_KEY_BYTES
from examples.kvstore.discovery import DiscoveryFailed, KVDiscovery, settle_node_id
from examples.kvstore.disk import DiskKV
from examples.kvstore.memory import MemoryKV
from examples.kvstore.metrics import ServiceMetrics
from examples.kvstore.service import KVService
from examples.kvstore.settings import Settings, SettingsError, format_peers, load_settings
from examples.kvstore.statedir import StateDir, StateDirError, claim
from nodehost import Config, NodeHost, NodeHostConfig, RaftError

log = logging.getLogger("kvstore")
T = TypeVar("T")

ELECTION_RTT = 10
HEARTBEAT_RTT = 1
JOIN_PATIENCE = 120.0  # seconds a new node keeps asking to be added
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
    try:
        settings = settle_node_id(settings)  # NODE_ID=auto
        state = claim(settings)
        nh = await asyncio.to_thread(NodeHost, _nodehost_config(settings, state))
    except (StateDirError, RaftError, OSError, DiscoveryFailed) as exc:
        log.error("cannot start node %d: %s", settings.node_id, exc)
        return 1
    runner: web.AppRunner | None = None
    disco = KVDiscovery(settings) if settings.discovery is not None else None
    maintenance: asyncio.Task[None] | None = None
    try:
        joining = settings.wants_join and not nh.has_node_info(1, settings.node_id)
        if joining and not await _unless_stopped(ask_to_join(settings), stop):
            return 0
        if disco is not None and not nh.has_node_info(1, settings.node_id):
            if not await _unless_stopped(disco.find(), stop):
                return 0
            joining = disco.joining
        await asyncio.to_thread(start_replicas, nh, settings, state, joining)
        service = KVService(nh, settings, ServiceMetrics(), ELECTION_RTT)
        app = make_app(service)
        if disco is not None:
            disco.install(app, nh)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        host, port = settings.http_host_port
        await web.TCPSite(runner, host, port, shutdown_timeout=settings.timeout).start()
        if disco is not None:
            maintenance = asyncio.create_task(disco.maintain(nh))
        log.info(
            "node %d serving http://%s (raft %s, store %s, %d shard(s), members %s)",
            settings.node_id,
            settings.http_addr,
            settings.raft_addr,
            settings.store,
            settings.shards,
            "asked to join" if joining else format_peers(settings.peers),
        )
        await stop.wait()
        log.info("node %d stopping", settings.node_id)
        return 0
    except (StartupError, RaftError, OSError, DiscoveryFailed) as exc:
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


def _nodehost_config(settings: Settings, state: StateDir) -> NodeHostConfig:
    return NodeHostConfig(
        node_host_dir=state.nodehost_dir,
        raft_address=settings.raft_addr,
        listen_address=settings.raft_listen,
        rtt_millisecond=settings.rtt_ms,
        enable_metrics=True,
        max_entry_size=max(8 * _MiB, settings.max_value_bytes * 2 + MAX_KEY_BYTES + 64),
    )


def replica_config(settings: Settings, shard_id: int) -> Config:
    return Config(
        shard_id=shard_id,
        replica_id=settings.node_id,
        election_rtt=ELECTION_RTT,
        heartbeat_rtt=HEARTBEAT_RTT,
        check_quorum=True,  # a leader cut off from a quorum steps down (thesis 6.2)
        pre_vote=True,  # a rejoining node cannot depose a healthy leader (thesis 9.6)
        snapshot_entries=settings.snapshot_entries,
        compaction_overhead=settings.snapshot_entries // 2,
    )


def start_replicas(nh: NodeHost, settings: Settings, state: StateDir, joining: bool) -> None:
    for shard_id in range(1, settings.shards + 1):
        config = replica_config(settings, shard_id)
        if nh.has_node_info(shard_id, settings.node_id):
            members: dict[int, str] = {}  # a restart: the log holds the membership
            join = False
        elif joining:
            members, join = {}, True
        else:
            members, join = dict(settings.peers), False
        if settings.store == "memory":
            nh.start_concurrent_replica(members, join, MemoryKV, config)
        else:
            nh.start_on_disk_replica(members, join, DiskKV.factory(state.kv_dir), config)


async def ask_to_join(settings: Settings) -> None:
    """POST /join to the JOIN member until it added this node to every shard."""
    url = f"{settings.join}/join"
    payload = {
        "id": settings.node_id,
        "addr": settings.raft_addr,
        "store": settings.store,
        "shards": settings.shards,
    }
    loop = asyncio.get_running_loop()
    deadline = loop.time() + JOIN_PATIENCE
    timeout = aiohttp.ClientTimeout(total=settings.timeout * (settings.shards + 1) + 5)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        while True:
            try:
                async with http.post(url, json=payload) as response:
                    text = await response.text()
                    if response.status == 200:
                        log.info("joined through %s: %s", settings.join, text)
                        return
                    problem = f"{response.status} {_error_of(text)}"
                    if response.status in (400, 404, 409):
                        raise StartupError(
                            f"{url} refused to add node {settings.node_id}: {problem}"
                        )
            except (aiohttp.ClientError, TimeoutError) as exc:
                problem = f"{type(exc).__name__}: {exc}"
            if loop.time() >= deadline:
                raise StartupError(f"could not join through {url} in {JOIN_PATIENCE:g}s: {problem}")
            log.warning("join through %s: %s; retrying", url, problem)
            await asyncio.sleep(1.0)


def _error_of(text: str) -> str:
    try:
        body = json.loads(text)
    except ValueError:
        return text[:200]
    return str(body.get("error", body)) if isinstance(body, dict) else text[:200]


if __name__ == "__main__":
    main()
