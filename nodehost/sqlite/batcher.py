"""Group commit: many clients' writes in one Raft entry.

Rules:
- Writes queue here; while fewer than `max_outstanding` proposals are in flight, all that
  wait (up to `max_batch` commands, `max_bytes`) leave as one entry: one command alone as
  itself, several as a BATCH command, which every replica applies in order as separate
  commands (each its own transaction, its own answer). Under load, entries grow instead
  of multiplying, so the Raft cost per write falls as clients are added; alone, a write
  leaves at once.
- Everything runs on one asyncio loop (the member's); threads hand their writes over
  with one wake-up of the loop per burst and wait on a concurrent future.
- Only commands of a client session are batched: an attempt that times out (its leader
  died) is proposed again, and sessions make the replicas apply each command once. A
  command whose own deadline passes is answered OperationalError (outcome unknown);
  others of its batch go on.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections import deque
from dataclasses import dataclass

from nodehost import NodeHost, PayloadTooBig, RaftError, Session
from nodehost.sqlite import errors
from nodehost.sqlite.command import (
    Command,
    CommandKind,
    CommandResult,
    Outcome,
    decode_batch_results,
    decode_result,
    encode_command,
)


@dataclass(slots=True)
class _Write:
    """One queued write; a thread waits on `future`, a coroutine on `waiter`."""

    data: bytes
    deadline: float
    future: concurrent.futures.Future[CommandResult] | None = None
    waiter: asyncio.Future[CommandResult] | None = None

    def done(self) -> bool:
        target = self.future if self.future is not None else self.waiter
        return target is not None and target.done()

    def settle(self, result: CommandResult | None, error: BaseException | None = None) -> None:
        target = self.future if self.future is not None else self.waiter
        if target is None or target.done():
            return
        if error is not None:
            target.set_exception(error)
        else:
            assert result is not None
            target.set_result(result)


class Batcher:
    def __init__(
        self,
        nodehost: NodeHost,
        session: Session,
        loop: asyncio.AbstractEventLoop,
        *,
        retry_pause: float,
        attempt_timeout: float,
        max_outstanding: int = 2,
        max_batch: int = 512,
        max_bytes: int = 4 * 1024 * 1024,
    ) -> None:
        self.nodehost = nodehost
        self.session = session
        self.loop = loop
        self.retry_pause = retry_pause
        self.attempt_timeout = attempt_timeout
        self.max_outstanding = max_outstanding
        self.max_batch = max_batch
        self.max_bytes = max_bytes
        self._queue: deque[_Write] = deque()
        self._lock = threading.Lock()
        self._kick_scheduled = False
        self._outstanding = 0
        self.entries = 0  # proposals made (for tests and figures)
        self.writes = 0

    # ------------------------------------------------------------------ submitting

    def write(self, command: Command, timeout: float) -> CommandResult:
        """From any thread but the loop's: propose with others, wait for the answer.

        When nothing waits and a proposal slot is free, the write is proposed from this
        thread at once: a lone writer pays no hand-off to the loop and back."""
        with self._lock:
            direct = not self._queue and self._outstanding < self.max_outstanding
            if direct:
                self._outstanding += 1
        if direct:
            try:
                return self._write_here(command, timeout)
            finally:
                with self._lock:
                    self._outstanding -= 1
                    schedule = bool(self._queue) and not self._kick_scheduled
                    if schedule:
                        self._kick_scheduled = True
                if schedule:
                    self.loop.call_soon_threadsafe(self._kick)
        write = self._enqueue(command, timeout, None)
        assert write.future is not None
        try:
            return write.future.result(timeout + 1.0)
        except concurrent.futures.TimeoutError:
            raise errors.OperationalError(
                "Timeout: the write was not answered in time; it may or may not be applied"
            ) from None

    def _write_here(self, command: Command, timeout: float) -> CommandResult:
        data = encode_command(command)
        if len(data) > self.nodehost.config.max_entry_size:
            raise errors.DataError(
                f"the statement is too large to replicate: {len(data)} bytes is more "
                f"than max_entry_size ({self.nodehost.config.max_entry_size})"
            )
        deadline = time.monotonic() + timeout
        self.entries += 1
        self.writes += 1
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise errors.OperationalError(
                    "Timeout: the write was not answered in time; it may or may not be applied"
                )
            attempt = min(self.attempt_timeout, remaining)
            try:
                outcome = self.nodehost.propose(self.session, data, attempt).wait(attempt + 0.5)
            except PayloadTooBig as exc:
                raise errors.DataError(f"the statement is too large to replicate: {exc}") from None
            except RaftError as exc:
                raise errors.OperationalError(f"{type(exc).__name__}: {exc}") from None
            if outcome.completed():
                result = decode_result(outcome.result.data)
                if result.outcome is Outcome.REJECTED:
                    raise errors.InterfaceError(result.message)
                return result
            if outcome.dropped():
                time.sleep(self.retry_pause)
            elif not outcome.timeout():
                try:
                    outcome.raise_for_code()
                except RaftError as exc:
                    raise errors.OperationalError(f"{type(exc).__name__}: {exc}") from None
            # A timed-out attempt is proposed again: the session applies it once.

    async def write_async(self, command: Command, timeout: float) -> CommandResult:
        """On the loop: the same, awaited."""
        write = self._enqueue(command, timeout, self.loop.create_future())
        assert write.waiter is not None
        return await write.waiter

    def _enqueue(
        self, command: Command, timeout: float, waiter: asyncio.Future[CommandResult] | None
    ) -> _Write:
        if not command.client_id:
            raise ValueError("only commands of a client session are batched")
        write = _Write(encode_command(command), time.monotonic() + timeout)
        if waiter is None:
            write.future = concurrent.futures.Future()
        else:
            write.waiter = waiter  # on the loop: answered there, no cross-thread wake-up
        if len(write.data) > self.nodehost.config.max_entry_size:
            raise errors.DataError(
                f"the statement is too large to replicate: {len(write.data)} bytes is more "
                f"than max_entry_size ({self.nodehost.config.max_entry_size})"
            )
        with self._lock:
            self._queue.append(write)
            schedule = not self._kick_scheduled
            self._kick_scheduled = True
        if schedule:
            if waiter is not None:
                self.loop.call_soon(self._kick)
            else:
                self.loop.call_soon_threadsafe(self._kick)
        return write

    # ------------------------------------------------------------------ on the loop

    def _kick(self) -> None:
        with self._lock:
            self._kick_scheduled = False
        while self._outstanding < self.max_outstanding:
            batch = self._take()
            if not batch:
                return
            self._outstanding += 1
            self.loop.create_task(self._propose(batch))

    def _take(self) -> list[_Write]:
        batch: list[_Write] = []
        size = 0
        with self._lock:
            while self._queue and len(batch) < self.max_batch:
                following = len(self._queue[0].data) + 4
                if batch and size + following > self.max_bytes:
                    break
                batch.append(self._queue.popleft())
                size += following
        return batch

    async def _propose(self, batch: list[_Write]) -> None:
        try:
            await self._settle(batch)
        except BaseException as exc:  # nothing may leave a client waiting
            for write in batch:
                write.settle(None, errors.OperationalError(f"the write failed: {exc!r}"))
        finally:
            self._outstanding -= 1
            self._kick()

    async def _settle(self, batch: list[_Write]) -> None:
        if len(batch) == 1:
            data = batch[0].data
        else:
            data = encode_command(
                Command(
                    CommandKind.BATCH,
                    0,
                    0,
                    batch=[Command(CommandKind.EXECUTE, 0, 0, payload=w.data) for w in batch],
                )
            )
        self.entries += 1
        self.writes += len(batch)
        while batch:
            now = time.monotonic()
            for write in [w for w in batch if w.deadline <= now]:
                write.settle(
                    None,
                    errors.OperationalError(
                        "Timeout: the write was not answered in time; it may or may not be applied"
                    ),
                )
            waiting = [w for w in batch if not w.done()]
            if not waiting:
                return
            attempt = min(self.attempt_timeout, max(w.deadline for w in waiting) - now)
            try:
                outcome = await self.nodehost.propose(self.session, data, max(attempt, 0.01))
            except PayloadTooBig as exc:
                self._fail(
                    batch, errors.DataError(f"the statement is too large to replicate: {exc}")
                )
                return
            except RaftError as exc:
                self._fail(batch, errors.OperationalError(f"{type(exc).__name__}: {exc}"))
                return
            if outcome.completed():
                self._answer(batch, outcome.result.data)
                return
            if outcome.dropped():
                await asyncio.sleep(self.retry_pause)
            elif not outcome.timeout():
                try:
                    outcome.raise_for_code()
                except RaftError as exc:
                    self._fail(batch, errors.OperationalError(f"{type(exc).__name__}: {exc}"))
                    return
            # A timed-out attempt is proposed again: the sessions apply each write once.

    def _answer(self, batch: list[_Write], data: bytes) -> None:
        results = [decode_result(data)] if len(batch) == 1 else decode_batch_results(data)
        if len(results) != len(batch):
            self._fail(batch, errors.InternalError("a batch answered with the wrong count"))
            return
        for write, result in zip(batch, results, strict=True):
            if result.outcome is Outcome.REJECTED:
                write.settle(None, errors.InterfaceError(result.message))
            else:
                write.settle(result)

    @staticmethod
    def _fail(batch: list[_Write], error: errors.Error) -> None:
        for write in batch:
            write.settle(None, error)
