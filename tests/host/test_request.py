"""RequestState: one outcome, seen by threads and by coroutines on any loop."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from nodehost import errors
from nodehost.request import (
    PendingRequests,
    RequestResult,
    RequestState,
    ResultCode,
    batched_wakeups,
    complete,
    mark_committed,
)
from statemachine import Result


def test_first_outcome_wins() -> None:
    rs = RequestState(1, time.monotonic() + 5)
    assert complete(rs, RequestResult(ResultCode.COMPLETED, Result(7)))
    assert not complete(rs, RequestResult(ResultCode.TIMEOUT))
    assert rs.result().result.value == 7


def test_wait_from_thread_and_timeout() -> None:
    rs = RequestState(1, time.monotonic() + 5)
    assert rs.wait(0.01).timeout()
    threading.Timer(0.02, complete, [rs, RequestResult(ResultCode.COMPLETED)]).start()
    assert rs.wait(5).completed()


def test_await_from_two_loops_completed_by_a_thread() -> None:
    rs = RequestState(1, time.monotonic() + 5)
    results: list[RequestResult] = []

    def run_loop() -> None:
        async def main() -> None:
            results.append(await rs)

        asyncio.run(main())

    threads = [threading.Thread(target=run_loop) for _ in range(2)]
    for t in threads:
        t.start()
    time.sleep(0.05)
    complete(rs, RequestResult(ResultCode.REJECTED, reason="no"))
    for t in threads:
        t.join(5)
    assert [r.code for r in results] == [ResultCode.REJECTED, ResultCode.REJECTED]


def test_await_completed_on_the_same_loop() -> None:
    async def main() -> RequestResult:
        rs = RequestState(1, time.monotonic() + 5)
        asyncio.get_running_loop().call_later(0.01, complete, rs, RequestResult(ResultCode.DROPPED))
        return await rs

    assert asyncio.run(main()).dropped()


def test_batched_completions_wake_each_loop_once_after_the_batch() -> None:
    """An apply worker completes a batch of requests awaited on another thread's loop:
    the coroutines resume after the batch ends, through one cross-thread call."""
    loop = asyncio.new_event_loop()
    calls: list[object] = []
    plain = loop.call_soon_threadsafe

    def counting(callback: object, *args: object) -> object:
        calls.append(callback)
        return plain(callback, *args)  # type: ignore[arg-type]

    loop.call_soon_threadsafe = counting  # type: ignore[method-assign]
    states = [RequestState(k, time.monotonic() + 5) for k in range(20)]
    gathered = loop.create_task(_gather(states))
    loop.run_until_complete(asyncio.sleep(0.01))  # every coroutine is now waiting

    def apply_batch() -> None:
        with batched_wakeups():
            for k, rs in enumerate(states):
                complete(rs, RequestResult(ResultCode.COMPLETED, Result(k)))
            assert calls == []  # nobody is woken before the batch ends

    worker = threading.Thread(target=apply_batch)
    worker.start()
    worker.join(5)
    results = loop.run_until_complete(asyncio.wait_for(gathered, 5))
    loop.close()
    assert [r.result.value for r in results] == list(range(20))
    assert len(calls) == 1


async def _gather(states: list[RequestState]) -> list[RequestResult]:
    return list(await asyncio.gather(*(_awaited(rs) for rs in states)))


async def _awaited(rs: RequestState) -> RequestResult:
    return await rs


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (ResultCode.TIMEOUT, errors.Timeout),
        (ResultCode.REJECTED, errors.Rejected),
        (ResultCode.DROPPED, errors.ShardNotReady),
        (ResultCode.TERMINATED, errors.ShardClosed),
        (ResultCode.ABORTED, errors.Aborted),
    ],
)
def test_codes_map_to_errors(code: ResultCode, error: type[errors.RaftError]) -> None:
    with pytest.raises(error):
        RequestResult(code).raise_for_code()
    RequestResult(ResultCode.COMPLETED).raise_for_code()


def test_pending_expires_by_deadline_only() -> None:
    pending = PendingRequests()
    now = time.monotonic()
    early, late = RequestState(1, now + 1), RequestState(2, now + 10)
    pending.add(early)
    pending.add(late)
    assert pending.expire(now + 2) == 1
    assert early.result().timeout() and not late.done()
    assert pending.complete(2, RequestResult(ResultCode.COMPLETED))
    assert len(pending) == 0


def test_wait_committed_needs_notify_commit() -> None:
    with pytest.raises(errors.InvalidOperation):
        RequestState(1, time.monotonic() + 1).wait_committed()
    rs = RequestState(1, time.monotonic() + 5, notify_commit=True)
    mark_committed(rs)
    assert rs.wait_committed(1).committed()
    complete(rs, RequestResult(ResultCode.COMPLETED))
    assert rs.wait().completed()
