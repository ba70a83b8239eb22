"""Coroutine forms of the blocking `sync_*` calls, for programs built on asyncio.

They await RequestStates (which resume the caller on its own loop) instead of blocking a
thread, and retry dropped requests within the timeout exactly as the `sync_*` calls do.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from nodehost import errors
from nodehost.hostcore import HostBase
from nodehost.info import Membership, SnapshotOption
from nodehost.request import RequestResult, RequestState, ResultCode, check_timeout
from nodehost.rsm import Session
from statemachine import Result


class AsyncAPI(HostBase):
    async def aio_propose(self, session: Session, cmd: bytes, timeout: float) -> Result:
        """`sync_propose` for coroutines: awaits without blocking the event loop."""
        outcome = await self._aio_retrying(lambda t: self.propose(session, cmd, t), timeout)
        outcome.raise_for_code()
        if not session.is_noop():
            session.proposal_completed()
        return outcome.result

    async def aio_read(self, shard_id: int, query: Any, timeout: float) -> Any:
        """`sync_read` for coroutines. The lookup itself runs on the calling loop."""
        outcome = await self._aio_retrying(lambda t: self.read_index(shard_id, t), timeout)
        outcome.raise_for_code()
        return self._node(shard_id).lookup(query)

    async def aio_get_session(self, shard_id: int, timeout: float) -> Session:
        session = Session.new(shard_id, self._rng)
        session.prepare_for_register()
        outcome = await self._aio_retrying(lambda t: self._propose(session, b"", t), timeout)
        outcome.raise_for_code()
        if outcome.result.value != session.client_id:
            raise errors.Rejected("the shard did not register the session")
        session.registered()
        return session

    async def aio_close_session(self, session: Session, timeout: float) -> None:
        if session.is_noop():
            raise errors.InvalidSession("the no-op session cannot be closed")
        session.prepare_for_unregister()
        outcome = await self._aio_retrying(lambda t: self._propose(session, b"", t), timeout)
        outcome.raise_for_code()

    async def aio_request_snapshot(
        self, shard_id: int, option: SnapshotOption | None, timeout: float
    ) -> int:
        outcome = await self.request_snapshot(shard_id, option, timeout)
        outcome.raise_for_code()
        return outcome.snapshot_index

    async def aio_get_shard_membership(self, shard_id: int, timeout: float) -> Membership:
        outcome = await self._aio_retrying(lambda t: self.read_index(shard_id, t), timeout)
        outcome.raise_for_code()
        return self._membership(shard_id)

    async def _aio_retrying(
        self, start: Callable[[float], RequestState], timeout: float
    ) -> RequestResult:
        check_timeout(timeout)
        clock = self._clock
        deadline = clock.monotonic() + timeout
        pause = self.config.rtt_millisecond / 1000.0
        while True:
            outcome = await start(max(deadline - clock.monotonic(), 0.001))
            if outcome.code is not ResultCode.DROPPED:
                return outcome
            if clock.monotonic() + pause >= deadline:
                return outcome
            await asyncio.sleep(pause)
