"""The key-value service over a NodeHost: keys to shards, library outcomes to answers.

Rules:
- A key always lives in the same shard: 1 + (blake2b(key) mod SHARDS). Every node
  hosts a replica of every shard, with replica id = NODE_ID.
- Every call has a deadline (the request's timeout). "No leader yet" is retried with
  back-off until then, since nothing was done. A timed-out read is retried too; a
  timed-out write is not, as it may still be applied. Whatever stops a call, the
  caller gets Unavailable by the deadline (plus one guard second at most): a request
  never hangs. Its message tells a leader change (retry now) from a lost quorum
  (bring nodes back) as far as this node can know (diagnosis.py).
- A node removed from the cluster answers Gone to everything, saying so.
- Nothing here blocks the event loop: writes and reads await the library's request
  states; lookups are dict or RocksDB point reads.
- Membership changes touch every shard in turn and are idempotent, so a failed
  join or removal is finished by repeating it.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, TypeVar

from examples.kvstore.commands import Command, Op, Status, encode
from examples.kvstore.diagnosis import ClusterWatch, Leader, removed_text, unavailable
from examples.kvstore.metrics import ServiceMetrics
from examples.kvstore.settings import Settings
from nodehost import (
    Aborted,
    Closed,
    Membership,
    NodeHost,
    NodeHostInfoOption,
    PayloadTooBig,
    RaftError,
    Rejected,
    ReplicaRemoved,
    RequestState,
    Session,
    ShardClosed,
    ShardNotFound,
    ShardNotReady,
    SystemBusy,
    Timeout,
)

log = logging.getLogger("kvstore")
T = TypeVar("T")

_FIRST_BACKOFF = 0.01
_MAX_BACKOFF = 0.2
# The library times out every request itself; this margin only guards the HTTP
# answer against a lost wake-up, so a client is answered even then.
_GUARD_SECONDS = 1.0


class Unavailable(Exception):
    """No quorum, no leader or no replica in time: HTTP 503, worth retrying later."""


class Gone(Exception):
    """This node was removed from the cluster: it can never serve again (HTTP 410)."""


class Conflict(Exception):
    """The request contradicts the cluster's state (HTTP 409)."""


class NotFound(Exception):
    """The thing named does not exist (HTTP 404)."""


class TooLarge(Exception):
    """A value over the limit (HTTP 413)."""


def shard_for(key: str, shards: int) -> int:
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest()
    return 1 + int.from_bytes(digest, "big") % shards


class KVService:
    def __init__(
        self,
        nh: NodeHost,
        settings: Settings,
        metrics: ServiceMetrics,
        election_rtt: int,
        watch: ClusterWatch | None = None,
    ) -> None:
        self.nh = nh
        self.settings = settings
        self.metrics = metrics
        self.watch = watch or ClusterWatch()
        self._removed = False
        self.shard_ids = list(range(1, settings.shards + 1))
        # A read attempt outlasting two election timeouts went to a leader that is gone.
        self.attempt_seconds = max(0.5, 2 * election_rtt * settings.rtt_ms / 1000)
        self._sessions: dict[int, Session] = {s: nh.get_noop_session(s) for s in self.shard_ids}

    def shard_for(self, key: str) -> int:
        return shard_for(key, self.settings.shards)

    # ------------------------------------------------------------ keys

    async def get(self, key: str, *, stale: bool, timeout: float) -> bytes | None:
        """The canonical JSON under `key` (None when missing): linearizable unless stale."""
        shard = self.shard_for(key)
        if stale:
            return await self._call(
                "stale read", lambda _: self._stale(shard, key), timeout, shard=shard
            )
        value: bytes | None = await self._call(
            "read",
            lambda left: self.nh.aio_read(shard, key, left),
            timeout,
            shard=shard,
            repeatable=True,
        )
        return value

    async def _stale(self, shard: int, key: str) -> bytes | None:
        value: bytes | None = self.nh.stale_read(shard, key)
        return value

    async def put(self, key: str, value: bytes, timeout: float) -> None:
        await self._write(Command(Op.PUT, key, value=value), timeout)

    async def delete(self, key: str, timeout: float) -> bool:
        """True when the key existed."""
        status, _ = await self._write(Command(Op.DELETE, key), timeout)
        return status is Status.APPLIED

    async def cas(
        self, key: str, expected: bytes, value: bytes, timeout: float
    ) -> tuple[bool, bytes | None]:
        """(swapped, the current value when not swapped; None when missing)."""
        status, data = await self._write(
            Command(Op.CAS, key, value=value, expected=expected), timeout
        )
        return status is Status.APPLIED, (data or None)

    async def _write(self, cmd: Command, timeout: float) -> tuple[Status, bytes]:
        shard = self.shard_for(cmd.key)
        data = encode(cmd)
        session = self._sessions[shard]
        result = await self._call(
            "write", lambda left: self.nh.aio_propose(session, data, left), timeout, shard=shard
        )
        status = Status(result.value)
        if status is Status.BAD_COMMAND:
            raise RuntimeError(result.data.decode("utf-8", "replace"))
        return status, result.data

    # ------------------------------------------------------------ deadlines

    async def _call(
        self,
        what: str,
        attempt: Callable[[float], Awaitable[T]],
        timeout: float,
        *,
        shard: int,
        repeatable: bool = False,
    ) -> T:
        """Run `attempt(seconds it may take)` until it succeeds or the deadline passes.

        `repeatable` calls (reads) are also tried again after a timed-out attempt, each
        attempt bounded by `attempt_seconds`: a read sent to a leader that just died is
        lost, and the next one finds the new leader. A write never is: it may still be
        applied, and applying it twice could undo a later write.
        """
        if self.removed():
            raise Gone(removed_text(self.settings.node_id, self.settings.state_dir))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        backoff = _FIRST_BACKOFF
        before = self._leader(shard)
        busy: SystemBusy | None = None
        while True:
            left = deadline - loop.time()
            if left <= 0:
                if busy is not None:
                    raise Unavailable(
                        f"{what} failed: the shard stayed busy for {timeout:g}s ({busy})"
                    )
                raise Unavailable(self._why(what, timeout, shard, before, timed_out_write=False))
            if repeatable:
                left = min(left, self.attempt_seconds)
            try:
                async with asyncio.timeout(left + _GUARD_SECONDS):
                    return await attempt(left)
            except ShardNotReady:
                busy = None  # nothing was done: try again
            except SystemBusy as exc:
                busy = exc  # nothing was done either: back off, try again
            except (Timeout, TimeoutError):
                if not repeatable:
                    raise Unavailable(
                        self._why(what, timeout, shard, before, timed_out_write=True)
                    ) from None
            except PayloadTooBig as exc:
                raise TooLarge(str(exc)) from None
            except ReplicaRemoved:
                raise Gone(removed_text(self.settings.node_id, self.settings.state_dir)) from None
            except (ShardClosed, ShardNotFound, Closed, Aborted) as exc:
                raise Unavailable(f"{what} failed: {exc}") from None
            if self.removed():
                raise Gone(removed_text(self.settings.node_id, self.settings.state_dir))
            self.metrics.retries.inc()
            await asyncio.sleep(min(backoff, max(0.0, deadline - loop.time())))
            backoff = min(2 * backoff, _MAX_BACKOFF)

    def _leader(self, shard: int) -> Leader:
        try:
            leader_id, term, _ = self.nh.get_leader_id(shard)
        except RaftError:
            return Leader(0, 0)
        return Leader(leader_id, term)

    def _why(
        self, what: str, timeout: float, shard: int, before: Leader, *, timed_out_write: bool
    ) -> str:
        members: dict[int, str] = {}
        info = self.nh.get_node_host_info(NodeHostInfoOption(skip_log_info=True))
        for s in info.shard_info_list:
            if s.shard_id == shard:
                members = dict(s.nodes)
        return unavailable(
            what=what,
            timeout=timeout,
            timed_out_write=timed_out_write,
            node_id=self.settings.node_id,
            before=before,
            now=self._leader(shard),
            members=members,
            reached=self.watch.reached(),
        )

    def removed(self) -> bool:
        """True once any shard's replica here learnt it was removed (never false again)."""
        if not self._removed and self.watch.take_membership_change():
            try:
                info = self.nh.get_node_host_info(NodeHostInfoOption(skip_log_info=True))
            except RaftError:
                return False
            self._removed = any(s.is_removed for s in info.shard_info_list)
        return self._removed

    def removed_text(self) -> str:
        return removed_text(self.settings.node_id, self.settings.state_dir)

    # ------------------------------------------------------------ cluster

    def cluster(self) -> dict[str, Any]:
        """This node's view: local, and answered even without a quorum. It waits for
        each shard's apply lock (for the state hash), so callers run it off the loop."""
        info = self.nh.get_node_host_info(NodeHostInfoOption(skip_log_info=True))
        by_shard = {s.shard_id: s for s in info.shard_info_list}
        shards: list[dict[str, Any]] = []
        for shard_id in self.shard_ids:
            s = by_shard.get(shard_id)
            if s is None:
                shards.append({"shard_id": shard_id, "running": False})
                continue
            try:
                state_hash: str | None = f"{self.nh.get_state_hash(shard_id):#018x}"
            except Exception:
                state_hash = None
            shards.append(
                {
                    "shard_id": shard_id,
                    "running": s.failed is None,
                    "failed": s.failed,
                    "leader_id": s.leader_id,
                    "term": s.term,
                    "is_leader": s.is_leader,
                    "is_non_voting": s.is_non_voting,
                    "is_removed": s.is_removed,
                    "members": {str(k): v for k, v in sorted(s.nodes.items())},
                    "applied_index": s.applied_index,
                    "state_hash": state_hash,
                }
            )
        first = shards[0]
        return {
            "node": {
                "id": self.settings.node_id,
                "http_addr": self.settings.http_addr,
                "raft_addr": self.settings.raft_addr,
            },
            "store": self.settings.store,
            "removed": self.removed(),
            "leader": first.get("leader_id", 0),
            "term": first.get("term", 0),
            "members": first.get("members", {}),
            "shards": shards,
        }

    def health(self) -> tuple[bool, dict[str, Any]]:
        """Healthy when every shard's replica runs here (a leader is not required:
        a restart would not bring back a lost quorum)."""
        if self.removed():
            return False, {
                "status": "removed",
                "node_id": self.settings.node_id,
                "error": self.removed_text(),
            }
        info = self.nh.get_node_host_info(NodeHostInfoOption(skip_log_info=True))
        running = {s.shard_id: s for s in info.shard_info_list}
        problems = []
        for shard_id in self.shard_ids:
            s = running.get(shard_id)
            if s is None:
                problems.append(f"shard {shard_id} is not running here")
            elif s.failed is not None:
                problems.append(f"shard {shard_id} stopped: {s.failed}")
        body: dict[str, Any] = {"status": "ok" if not problems else "failing"}
        body["node_id"] = self.settings.node_id
        if problems:
            body["problems"] = problems
        return not problems, body

    async def add_member(
        self, node_id: int, address: str, timeout: float, *, voting: bool = False
    ) -> bool:
        """Add node `node_id` at Raft `address` to every shard, as a non-voting member, or
        with `voting` as a voting one (promoting a non-voting one); False if nothing
        changed. A node that is not running yet is added as non-voting, so that it cannot
        cost the cluster its quorum: it is promoted once it runs and caught up."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        changed = False
        for shard in self.shard_ids:
            m = await self._membership(shard, deadline - loop.time())
            if node_id in m.removed:
                raise Conflict(f"node {node_id} was removed and can never return; use a new id")
            known = m.nodes.get(node_id) or m.non_votings.get(node_id) or m.witnesses.get(node_id)
            if known is not None and known != address:
                raise Conflict(f"node {node_id} is already a member at {known}")
            if node_id in m.nodes or (node_id in m.non_votings and not voting):
                continue
            owner = [
                n
                for group in (m.nodes, m.non_votings, m.witnesses)
                for n, a in group.items()
                if a == address and n != node_id
            ]
            if owner:
                raise Conflict(f"{address} is already the address of node {owner[0]}")
            add = self.nh.request_add_replica if voting else self.nh.request_add_non_voting
            await self._config_change(
                "join",
                partial(add, shard, node_id, address, 0),
                deadline - loop.time(),
                shard=shard,
            )
            changed = True
        return changed

    async def remove_member(self, node_id: int, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        found = False
        for shard in self.shard_ids:
            m = await self._membership(shard, deadline - loop.time())
            if node_id not in m.nodes and node_id not in m.non_votings:
                continue
            found = True
            if set(m.nodes) == {node_id}:
                raise Conflict(f"node {node_id} is the last member of shard {shard}")
            await self._config_change(
                "remove",
                partial(self.nh.request_delete_replica, shard, node_id, 0),
                deadline - loop.time(),
                shard=shard,
            )
        if not found:
            raise NotFound(f"node {node_id} is not a member")

    async def _membership(self, shard: int, timeout: float) -> Membership:
        return await self._call(
            "membership read",
            lambda left: self.nh.aio_get_shard_membership(shard, left),
            max(timeout, 0.001),
            shard=shard,
            repeatable=True,
        )

    async def _config_change(
        self, what: str, request: Callable[[float], RequestState], timeout: float, *, shard: int
    ) -> None:
        async def attempt(left: float) -> None:
            (await request(left)).raise_for_code()

        try:
            await self._call(what, attempt, max(timeout, 0.001), shard=shard)
        except Rejected as exc:
            raise Conflict(f"{what} refused: {exc}") from None
