"""Workload clients inside a worker process, and the history they write as they go.

Rules:
- One operation outstanding per client; a client id is never reused, not even by a
  restarted worker (ids embed the host and the incarnation).
- Every invoke is written to the history file before the request leaves and every
  outcome as soon as it is known, one line each, so a SIGKILL loses nothing that was
  decided: an invoke without an outcome is an operation of unknown outcome.
- Times are `time.monotonic_ns()`, one clock for every process of the machine.
- Outcomes: "ok" (took effect, output known), "fail" (definitely did not take effect,
  e.g. dropped before it was proposed), "unknown" (may take effect at any later time).
  A write whose attempts were all dropped is "fail"; once one attempt may have been
  proposed, nothing short of a result makes it "fail".
- Keys live for one generation (`gen_seconds`), the same for every process, so each
  key's history stays small enough to check while clients still contend on it.
- With `bursts` = (busy, idle) seconds, every client of a shard pauses in the same
  idle phases (one clock for all processes, each shard at its own offset), so idle
  shards can quiesce and must wake up for the next burst.
- A client without sessions (a shard whose state machine takes none) sends its
  appends through the no-op session: one attempt, outcome unknown on a timeout.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import IO, Any

from nodehost import (
    NodeHost,
    RaftError,
    Rejected,
    Session,
    ShardNotFound,
    ShardNotReady,
    SystemBusy,
    Timeout,
)
from tests.chaos.machine import command

# Errors that prove a request never reached the log.
DEFINITE_FAILURES: tuple[type[RaftError], ...] = (ShardNotReady, ShardNotFound, SystemBusy)


class HistoryLog:
    """Append-only JSON lines, one syscall per line (see the module rules)."""

    def __init__(self, path: str) -> None:
        self._file: IO[str] = open(path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115
        self._lock = threading.Lock()

    def write(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, separators=(",", ":")) + "\n"
        with self._lock:
            self._file.write(line)

    def invoke(self, client: int, n: int, shard: int, input: list[Any]) -> None:
        self.write(
            {"e": "i", "c": client, "n": n, "s": shard, "in": input, "t": time.monotonic_ns()}
        )

    def finish(self, client: int, n: int, status: str, output: Any = None) -> None:
        self.write(
            {"e": "r", "c": client, "n": n, "st": status, "out": output, "t": time.monotonic_ns()}
        )

    def close(self) -> None:
        with self._lock:
            self._file.close()


@dataclass(frozen=True, slots=True)
class WorkloadConfig:
    epoch_ns: int
    gen_seconds: float
    op_timeout: float
    session_attempt: float  # one attempt of a session write
    session_deadline: float  # all attempts of one session write
    think: tuple[float, float]
    kv_keys: int
    append_keys: int
    bursts: tuple[float, float] = (0.0, 0.0)  # (busy, idle) seconds; idle 0: always busy


class Client:
    """One logical client: picks operations of its shard's workload and records them.

    The op choice is the same for the sync and the asyncio flavour; only the calls
    differ (`_sync_*` / `_aio_*`)."""

    def __init__(
        self,
        nh: NodeHost,
        history: HistoryLog,
        config: WorkloadConfig,
        client_id: int,
        shard: int,
        kind: str,
        sessions: bool,
        rng: random.Random,
        stop: threading.Event,
    ) -> None:
        self.nh, self.history, self.config = nh, history, config
        self.id, self.shard, self.kind, self.rng, self.stop = client_id, shard, kind, rng, stop
        self.sessions = sessions
        self.n = 0
        self.last_seen: dict[str, Any] = {}
        self.session: Session | None = None
        self.noop = nh.get_noop_session(shard)

    # ------------------------------------------------------------------ choosing

    def key(self, prefix: str, count: int = 1, gen_seconds: float = 0.0) -> str:
        gen_seconds = gen_seconds or self.config.gen_seconds
        gen = int((time.monotonic_ns() - self.config.epoch_ns) / 1e9 / gen_seconds)
        suffix = f".{self.rng.randrange(count)}" if count > 1 else ""
        return f"s{self.shard}/{prefix}{gen}{suffix}"

    def value(self) -> str:
        return f"{self.id}.{self.n}"

    def next_op(self) -> tuple[str, list[Any]]:
        """(call kind, model input). Call kinds: read, write, session-append."""
        r = self.rng.random()
        if self.kind == "register":
            k = self.key("r")
            if r < 0.5:
                return "read", ["get", k]
            if r < 0.8:
                return "write", ["put", k, self.value()]
            return "write", ["cas", k, self.last_seen.get(k), self.value()]
        if self.kind == "set":
            # Whole-set reads cost the durability check (reads x reads x members) per
            # key: short generations and few reads keep it linear in the run's length.
            k = self.key("s", gen_seconds=self.config.gen_seconds / 4)
            if r < 0.9:
                return "write", ["add", k, self.value()]
            return "read", ["read", k]
        # kv: registers on a few keys plus strings appended through a client session
        if r < 0.3:
            k = self.key("a", self.config.append_keys)
            if r < 0.12:
                return "read", ["get", k]
            return "session-append", ["append", k, self.value() + ";"]
        k = self.key("k", self.config.kv_keys)
        if r < 0.6:
            return "read", ["get", k]
        if r < 0.8:
            return "write", ["put", k, self.value()]
        if r < 0.95:
            return "write", ["cas", k, self.last_seen.get(k), self.value()]
        return "write", ["delete", k]

    @staticmethod
    def to_command(input: list[Any]) -> bytes:
        op, key = input[0], input[1]
        if op == "cas":
            return command("cas", key, input[3], old=input[2])
        if op == "delete":
            return command("delete", key)
        return command(op, key, input[2])

    def query(self, input: list[Any]) -> tuple[str, str]:
        return ("get", input[1])

    def output(self, input: list[Any], result_value: int, read: Any) -> Any:
        op = input[0]
        if op == "get":
            self.last_seen[input[1]] = read
            return read
        if op == "read":
            return read if read is not None else []
        if op == "cas":
            return result_value == 1
        return None

    def think(self) -> float:
        return self.rng.uniform(*self.config.think)

    def idle_for(self) -> float:
        """Seconds until this shard's next busy phase (0 while busy)."""
        busy, idle = self.config.bursts
        if idle <= 0:
            return 0.0
        cycle = busy + idle
        now = (time.monotonic_ns() - self.config.epoch_ns) / 1e9 + self.shard * cycle / 4
        phase = now % cycle
        return 0.0 if phase < busy else cycle - phase

    # ------------------------------------------------------------------ sync

    def run_sync(self) -> None:
        while not self.stop.is_set():
            idle = self.idle_for()
            if idle > 0:
                self.stop.wait(idle)
                continue
            self.n += 1
            kind, input = self.next_op()
            self.history.invoke(self.id, self.n, self.shard, input)
            if kind == "read":
                status, out = self._sync_read(input)
            elif kind == "write" or not self.sessions:
                status, out = self._sync_write(input)
            else:
                status, out = self._sync_session_write(input)
            self.history.finish(self.id, self.n, status, out)
            time.sleep(self.think() if status == "ok" else max(self.think(), 0.05))

    def _sync_read(self, input: list[Any]) -> tuple[str, Any]:
        try:
            value = self.nh.sync_read(self.shard, self.query(input), self.config.op_timeout)
        except RaftError:
            return "fail", None
        return "ok", self.output(input, 0, value)

    def _sync_write(self, input: list[Any]) -> tuple[str, Any]:
        try:
            result = self.nh.sync_propose(self.noop, self.to_command(input), self.config.op_timeout)
        except DEFINITE_FAILURES:
            return "fail", None
        except Rejected:
            return "fail", None
        except RaftError:
            return "unknown", None
        return "ok", self.output(input, result.value, None)

    def _sync_session_write(self, input: list[Any]) -> tuple[str, Any]:
        if self.session is None:
            try:
                self.session = self.nh.sync_get_session(self.shard, self.config.op_timeout)
            except RaftError:
                return "fail", None
        session = self.session
        cmd = self.to_command(input)
        deadline = time.monotonic() + self.config.session_deadline
        maybe_proposed = False
        while True:
            try:
                result = self.nh.sync_propose(session, cmd, self.config.session_attempt)
                return "ok", self.output(input, result.value, None)
            except Timeout:
                maybe_proposed = True  # retried below with the same series id
            except DEFINITE_FAILURES:
                pass
            except RaftError:
                maybe_proposed = True
                break
            if time.monotonic() >= deadline or self.stop.is_set():
                break
        # Give up on this series: the session moves on, the outcome stays open.
        session.proposal_completed()
        return ("unknown" if maybe_proposed else "fail"), None

    # ------------------------------------------------------------------ asyncio

    async def run_async(self) -> None:
        while not self.stop.is_set():
            idle = self.idle_for()
            if idle > 0:
                await asyncio.sleep(min(idle, 0.2))  # short naps: `stop` is a thread event
                continue
            self.n += 1
            kind, input = self.next_op()
            self.history.invoke(self.id, self.n, self.shard, input)
            timeout = self.config.op_timeout
            if kind == "read":
                call = self.nh.aio_read(self.shard, self.query(input), timeout)
                status, out = await self._aio(call, input, read=True)
            elif kind == "write" or not self.sessions:
                call = self.nh.aio_propose(self.noop, self.to_command(input), timeout)
                status, out = await self._aio(call, input, read=False)
            else:
                status, out = await self._aio_session_write(input)
            self.history.finish(self.id, self.n, status, out)
            await asyncio.sleep(self.think() if status == "ok" else max(self.think(), 0.05))

    async def _aio(self, call: Awaitable[Any], input: list[Any], read: bool) -> tuple[str, Any]:
        try:
            answer = await call
        except DEFINITE_FAILURES:
            return "fail", None
        except Rejected:
            return "fail", None
        except RaftError:
            return ("fail" if read else "unknown"), None
        if read:
            return "ok", self.output(input, 0, answer)
        return "ok", self.output(input, answer.value, None)

    async def _aio_session_write(self, input: list[Any]) -> tuple[str, Any]:
        if self.session is None:
            try:
                self.session = await self.nh.aio_get_session(self.shard, self.config.op_timeout)
            except RaftError:
                return "fail", None
        session = self.session
        cmd = self.to_command(input)
        deadline = time.monotonic() + self.config.session_deadline
        maybe_proposed = False
        while True:
            try:
                result = await self.nh.aio_propose(session, cmd, self.config.session_attempt)
                return "ok", self.output(input, result.value, None)
            except Timeout:
                maybe_proposed = True
            except DEFINITE_FAILURES:
                pass
            except RaftError:
                maybe_proposed = True
                break
            if time.monotonic() >= deadline or self.stop.is_set():
                break
        session.proposal_completed()
        return ("unknown" if maybe_proposed else "fail"), None


class Clients:
    """Every client of one worker: sync ones on threads, asyncio ones on one loop."""

    def __init__(self, nh: NodeHost, history: HistoryLog, config: WorkloadConfig) -> None:
        self.nh, self.history, self.config = nh, history, config
        self.stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self, clients: list[tuple[int, int, str, bool, bool, random.Random]]) -> None:
        """`clients`: (client id, shard, workload kind, asyncio?, sessions?, rng)."""
        self.stop.clear()
        aio: list[Client] = []
        for client_id, shard, kind, is_async, sessions, rng in clients:
            c = Client(
                self.nh, self.history, self.config, client_id, shard, kind, sessions, rng, self.stop
            )
            if is_async:
                aio.append(c)
            else:
                t = threading.Thread(target=c.run_sync, name=f"client-{client_id}", daemon=True)
                self._threads.append(t)
                t.start()
        if aio:
            loop = asyncio.new_event_loop()
            self._loop = loop

            async def main() -> None:
                await asyncio.gather(*(c.run_async() for c in aio))

            t = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
            self._threads.append(t)
            t.start()

    def running(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def halt(self, timeout: float) -> None:
        """Stop every client after its current operation (bounded by `timeout`)."""
        self.stop.set()
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        self._threads = [t for t in self._threads if t.is_alive()]
