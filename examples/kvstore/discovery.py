"""kvstore's side of automatic clustering (DISCO_MODE): nodes started with the same
discovery settings find each other and form one cluster, in any order, at any time.

    NODE_ID=auto STATE_DIR=/data DISCO_MODE=etcd-kv \
    DISCO_CONFIG='{"endpoints": ["http://10.0.0.9:2379"]}' DISCO_KEY=orders example-kvstore

Rules:
- Discovery runs only for a node without data. A restarted node finds its members in
  its own log, as without discovery; it still serves GET /discovery, keeps the etcd key
  up to date when it leads, and (dns, remove_after) removes departed members.
- While it looks for its cluster the node serves GET /discovery (who it is, not yet a
  member) on its HTTP address, and answers every other path 503, so peers can see it
  and Kubernetes does not send it clients.
- It asks to be added with the same POST /join as --join does, as a non-voting member,
  and is made a voting one by the same promotion step once it has caught up; a refusal
  (a removed id, another store kind or shard count) is final, anything else is retried
  by the agent.
- NODE_ID=auto picks a random id the first time and keeps it in STATE_DIR/kvstore.json:
  ids are never reused, so a StatefulSet scaled down and up again gets new ones.
- The API address published and probed is HTTP_ADDR, or, when that binds every
  interface (0.0.0.0, ::), the host of RAFT_ADDR with HTTP_ADDR's port.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import secrets
import socket

import aiohttp
from aiohttp import web

from examples.kvstore.settings import Settings
from examples.kvstore.statedir import StateDir
from nodehost import NodeHost
from nodehost.config import parse_address
from nodehost.discovery import (
    Discovery,
    DiscoveryError,
    DocumentError,
    JoinRefused,
    PeerStatus,
    PeerUnavailable,
)
from nodehost.discovery.etcd import describe_failure

log = logging.getLogger("kvstore.discovery")

PATH = "/discovery"
_JOINED_THROUGH = "joined-through"  # in STATE_DIR: the member that added this node
_PROBE_SECONDS = 2.0
_MAX_AUTO_ID = 2**31 - 1  # small enough to read, large enough never to meet twice


class DiscoveryFailed(RuntimeError):
    """Discovery cannot find or join a cluster; the message says why and what to do."""


def settle_node_id(settings: Settings) -> Settings:
    """With NODE_ID=auto, the id this STATE_DIR already has, or a new random one."""
    if settings.node_id != 0:
        return settings
    state = StateDir(settings.state_dir)
    node_id = 0
    try:
        with open(state.identity_path, encoding="utf-8") as f:
            found = json.load(f)
        if isinstance(found, dict) and isinstance(found.get("node_id"), int):
            node_id = found["node_id"]
    except FileNotFoundError:
        pass
    except (OSError, ValueError) as exc:
        raise DiscoveryFailed(f"cannot read {state.identity_path}: {exc}") from None
    if node_id < 1:
        node_id = 1 + secrets.randbelow(_MAX_AUTO_ID)
        log.info("NODE_ID=auto: this node's id is %d", node_id)
    return dataclasses.replace(settings, node_id=node_id, peers={node_id: settings.raft_addr})


def advertised_api_addr(settings: Settings) -> str:
    host, port = parse_address(settings.http_addr, "HTTP_ADDR")
    if host.strip("[]") in ("0.0.0.0", "::", ""):
        raft_host, _ = parse_address(settings.raft_addr, "RAFT_ADDR")
        return f"{raft_host}:{port}"
    return settings.http_addr


class KVDiscovery:
    """The discovery agent of one kvstore node, with kvstore's probe and join calls."""

    def __init__(self, settings: Settings) -> None:
        assert settings.discovery is not None
        self.settings = settings
        self.api_addr = advertised_api_addr(settings)
        self.agent = Discovery(
            settings.discovery,
            node_id=settings.node_id,
            raft_addr=settings.raft_addr,
            api_addr=self.api_addr,
            probe=self.probe,
            join=self.join,
        )
        self._http: aiohttp.ClientSession | None = None
        self._nh: NodeHost | None = None
        self.joined_through = ""  # the API address of the member that added this node

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None:
            self._http = aiohttp.ClientSession()
        return self._http

    async def close(self) -> None:
        await self.agent.close()
        if self._http is not None:
            await self._http.close()

    # ------------------------------------------------------------ the agent's calls

    async def probe(self, address: str) -> PeerStatus:
        try:
            async with self._session().get(
                f"http://{address}{PATH}", timeout=aiohttp.ClientTimeout(total=_PROBE_SECONDS)
            ) as response:
                body = await response.content.read(256 * 1024)
                if response.status != 200:
                    raise PeerUnavailable(f"{address} answered {response.status}")
            return PeerStatus.from_json(body)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise PeerUnavailable(f"{address}: {describe_failure(exc)}") from None
        except DocumentError as exc:
            raise PeerUnavailable(f"{address} answered {PATH} with a bad document: {exc}") from None

    async def join(self, address: str) -> None:
        s = self.settings
        payload = {"id": s.node_id, "addr": s.raft_addr, "store": s.store, "shards": s.shards}
        timeout = aiohttp.ClientTimeout(total=s.timeout * (s.shards + 1) + 5)
        try:
            async with self._session().post(
                f"http://{address}/join", json=payload, timeout=timeout
            ) as response:
                text = (await response.content.read(64 * 1024)).decode("utf-8", "replace")
                status = response.status
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise PeerUnavailable(f"join through {address}: {describe_failure(exc)}") from None
        if status == 200:
            self.joined_through = address
            return
        problem = f"{status} {_error_of(text)}"
        if status in (400, 404, 409):
            raise JoinRefused(f"{address} refused to add node {s.node_id}: {problem}")
        raise PeerUnavailable(f"join through {address}: {problem}")

    # ------------------------------------------------------------ start-up

    async def find(self, http_socket: socket.socket) -> None:
        """Serve GET /discovery on the node's bound HTTP socket while the agent looks;
        sets `joined_through` when a cluster added this node (else it bootstraps)."""
        app = web.Application()
        app.router.add_get(PATH, self._answer)
        app.router.add_route("*", "/{tail:.*}", self._not_yet)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        try:
            # A duplicate: the temporary server closes its socket when it stops, and the
            # service serves on the original afterwards without letting the port go.
            await web.SockSite(runner, http_socket.dup()).start()
            await self.agent.find_cluster()
        except DiscoveryError as exc:
            raise DiscoveryFailed(str(exc)) from None
        finally:
            await runner.cleanup()

    def remember_join(self, state: StateDir) -> None:
        """Keep the address that added this node, for a restart before its promotion."""
        with open(os.path.join(state.root, _JOINED_THROUGH), "w", encoding="utf-8") as f:
            f.write(self.joined_through + "\n")

    def remembered_join(self, state: StateDir) -> str:
        try:
            with open(os.path.join(state.root, _JOINED_THROUGH), encoding="utf-8") as f:
                return f.read().strip()
        except FileNotFoundError:
            return ""

    def install(self, app: web.Application, nh: NodeHost) -> None:
        """Add GET /discovery to the service's app (before it starts)."""
        self._nh = nh
        app.router.add_get(PATH, self._answer)

    async def maintain(self, nh: NodeHost) -> None:
        shard_ids = list(range(1, self.settings.shards + 1))
        try:
            await self.agent.maintain(nh, shard_ids)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("discovery maintenance stopped")

    async def _not_yet(self, request: web.Request) -> web.Response:
        message = (
            f"node {self.settings.node_id} is still looking for its cluster through "
            f"{self.agent.describe()}"
        )
        return web.json_response({"error": message}, status=503, headers={"Retry-After": "1"})

    async def _answer(self, request: web.Request) -> web.Response:
        status = await asyncio.to_thread(self.agent.status, self._nh, 1)
        return web.json_response(status.to_dict())


def _error_of(text: str) -> str:
    with contextlib.suppress(ValueError):
        body = json.loads(text)
        if isinstance(body, dict) and "error" in body:
            return str(body["error"])
    return text[:200]
