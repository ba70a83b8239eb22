"""What hooks and endpoint handlers get: `State`, a view of the member they run on.

    def on_new_member(state: State, member: Remote) -> None:
        with_cursor = state.database.transaction(lambda cursor: ...)

    async def handler(state: State, request: Request) -> object:
        answers = await state.broadcast("POST", "/1.0/extended", {"message": "hi"})

Rules: `State` only reads the daemon through `Host` (the daemon implements it), so user
code cannot reach into the daemon's internals; calls to other members are made with
this member's certificate, as notifications (the receiver sees `request.notification`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol, TypeVar

from nodehost.cluster.client import Client
from nodehost.cluster.database import Database
from nodehost.cluster.errors import ClusterError
from nodehost.cluster.members import Member, read_members
from nodehost.cluster.schema import Schema
from nodehost.cluster.statedir import StateDir
from nodehost.cluster.truststore import Remote, TrustStore

T = TypeVar("T")


class Host(Protocol):
    """What the parts of nodehost.cluster need from the daemon that runs them."""

    state_dir: StateDir
    trust: TrustStore
    database: Database
    schema: Schema
    heartbeat_interval: float
    version: str

    @property
    def name(self) -> str: ...
    @property
    def address(self) -> str: ...
    def peer(self, address: str, timeout: float | None = None) -> Client: ...
    async def in_thread(self, function: Callable[..., T], *args: Any) -> T: ...


class State:
    def __init__(self, host: Host) -> None:
        self._host = host

    @property
    def name(self) -> str:
        """This member's name in the cluster."""
        return self._host.name

    @property
    def address(self) -> str:
        """This member's network address (host:port)."""
        return self._host.address

    @property
    def state_dir(self) -> Path:
        return self._host.state_dir.root

    @property
    def version(self) -> str:
        return self._host.version

    @property
    def database(self) -> Database:
        """`database.transaction(work)`, `database.read(work)`, `database.connect()`."""
        return self._host.database

    @property
    def heartbeat_interval(self) -> float:
        return self._host.heartbeat_interval

    def members(self) -> list[Member]:
        """Every member as the member table has it (a linearizable read)."""
        return self._host.database.read(read_members)

    def remotes(self) -> list[Remote]:
        """Every member this one trusts (itself included), as of the last refresh."""
        return self._host.trust.remotes()

    def client(self, address: str, timeout: float | None = None) -> Client:
        """A client of the member at `address`, authenticated as this member."""
        return self._host.peer(address, timeout)

    def broadcast_sync(
        self,
        method: str,
        path: str,
        body: object = None,
        *,
        include_self: bool = False,
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        """Send one request to every other member at once (as a notification); their
        answers by member name. When any fails, raises the first failure's class with
        every failure in the message."""
        targets = [r for r in self._host.trust.remotes() if include_self or r.name != self.name]
        if not targets:
            return {}

        def call(remote: Remote) -> Any:
            client = self._host.peer(remote.address, timeout)
            return client.request(method, path, body, notification=True)

        answers: dict[str, Any] = {}
        failures: list[tuple[Remote, ClusterError]] = []
        with ThreadPoolExecutor(max_workers=min(16, len(targets))) as pool:
            futures = {remote: pool.submit(call, remote) for remote in targets}
            for remote, future in futures.items():
                try:
                    answers[remote.name] = future.result()
                except ClusterError as exc:
                    failures.append((remote, exc))
        if failures:
            first = failures[0][1]
            detail = "; ".join(f"{r.name} ({r.address}): {e}" for r, e in failures)
            error = type(first)(detail)
            error.status = first.status
            raise error
        return answers

    async def broadcast(
        self,
        method: str,
        path: str,
        body: object = None,
        *,
        include_self: bool = False,
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        """`broadcast_sync` for coroutines (the calls run on worker threads)."""
        return await asyncio.to_thread(
            lambda: self.broadcast_sync(
                method, path, body, include_self=include_self, timeout=timeout
            )
        )
