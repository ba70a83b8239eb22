"""The terminal side of helloworld: the prompt, and what is printed when.

Rules:
- Four activities, three of them Dragonboat helloworld's: the console reads lines,
  the proposer runs them one at a time (a line with `sync_propose`, 3 s), the reader
  prints a linearizable count every 10 s (nothing when there is no majority). The
  fourth, the watcher, prints one line when the replica has had no leader for a few
  seconds and cannot get one by itself (which replicas to start, and how), or when it
  was removed. They are asyncio tasks on the main thread; the blocking NodeHost calls
  run on two worker threads, so the prompt stays responsive while a proposal waits.
- A failed request prints Dragonboat's line (`SyncPropose returned error ...`); one
  dropped for want of a leader that waiting cannot bring gets a second line saying what
  will, instead of the library's "retry".
- In a terminal, everything printed (state machine, results, logs) goes through
  prompt_toolkit's patched stdout, above the line being typed, never into it. Piped
  input is read line by line instead, so scripts can drive the example too.
- `exit` and Ctrl-D (end of input) finish the commands already queued; Ctrl-C and
  SIGTERM stop at once. Either way the NodeHost is closed and the process exits with 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor

from prompt_toolkit import PromptSession
from prompt_toolkit.history import InMemoryHistory
from prompt_toolkit.patch_stdout import patch_stdout

from examples.helloworld import advice
from examples.helloworld.commands import (
    AddReplica,
    Command,
    Exit,
    Propose,
    RemoveReplica,
    Usage,
    parse,
)
from examples.helloworld.main import Options
from examples.helloworld.replica import Replica
from nodehost import RaftError, ReplicaRemoved, ShardNotReady

READ_EVERY = 10.0  # seconds between two `count:` reads
QUEUED_COMMANDS = 16  # lines typed ahead of the proposer (Dragonboat's channel size)
LEADERLESS_GRACE = 5.0  # seconds without a leader before the watcher explains why
WATCH_EVERY = 1.0


def commands(options: Options) -> advice.Commands:
    """The commands to suggest: as this one was started (`uv run` sets this variable)."""
    prefix = "uv run " if "UV_RUN_RECURSION_DEPTH" in os.environ else ""
    return advice.Commands(builtin=options.builtin, prefix=prefix)


def serve(options: Options) -> int:
    """Start the replica, run the console until the user quits, close. The exit code."""
    try:
        replica = Replica(options)
    except RaftError as exc:
        print(advice.start_failure(options, exc), file=sys.stderr)
        return 1
    console = Console(replica, commands(options))
    try:
        asyncio.run(console.run())
    except asyncio.CancelledError:  # SIGTERM
        pass
    finally:  # also after Ctrl-C (KeyboardInterrupt), which the caller turns into exit 0
        console.close()
        # Peers keep sending until they notice we left: what they report about a replica
        # that is stopping is expected, not worth a line on the way out.
        if not options.verbose:
            logging.getLogger().setLevel(logging.ERROR)
        for sig in (signal.SIGINT, signal.SIGTERM):  # closing takes a moment; let it
            signal.signal(sig, signal.SIG_IGN)
        replica.close()
    return 0


class Console:
    def __init__(self, replica: Replica, commands: advice.Commands) -> None:
        self.replica = replica
        self.commands = commands
        self._workers = ThreadPoolExecutor(2, thread_name_prefix="helloworld")
        self._closing = threading.Event()

    async def run(self) -> None:
        task = asyncio.current_task()
        assert task is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        queued: asyncio.Queue[Command | None] = asyncio.Queue(QUEUED_COMMANDS)
        with _patched_stdout():
            helpers = [
                asyncio.create_task(self._read_loop()),
                asyncio.create_task(self._watch_loop()),
            ]
            proposer = asyncio.create_task(self._propose_loop(queued))
            try:
                async for line in _lines():
                    command = parse(line)
                    if isinstance(command, Usage):
                        print(command.text, flush=True)
                    elif isinstance(command, Exit):
                        break
                    elif command is not None:
                        await queued.put(command)
                await queued.put(None)
                await proposer  # `exit` and Ctrl-D let what was typed finish
            finally:
                proposer.cancel()
                for helper in helpers:
                    helper.cancel()

    def close(self) -> None:
        """Stop reporting failures: from here on, requests fail because we are closing."""
        self._closing.set()
        self._workers.shutdown(wait=False, cancel_futures=True)

    async def _propose_loop(self, queued: asyncio.Queue[Command | None]) -> None:
        loop = asyncio.get_running_loop()
        while (command := await queued.get()) is not None:
            await loop.run_in_executor(self._workers, self._execute, command)

    def _execute(self, command: Command) -> None:
        """Run one command on a worker thread; blocks up to the timeout."""
        replica = self.replica
        if isinstance(command, Propose):
            try:
                replica.propose(command.text)
            except RaftError as exc:
                self._explain("SyncPropose returned error", exc)
            return
        try:
            if isinstance(command, AddReplica):
                replica.add(command.replica_id, command.address)
            elif isinstance(command, RemoveReplica):
                replica.remove(command.replica_id)
        except RaftError as exc:
            self._explain("membership change failed,", exc)
        else:
            print("membership change completed successfully", flush=True)

    def _explain(self, failed: str, exc: RaftError) -> None:
        """Dragonboat's line for a failed request, then what will help if waiting won't."""
        if self._closing.is_set():
            return
        try:
            view = self.replica.view()
        except RaftError:
            return  # closing: nothing to explain
        if view.removed or isinstance(exc, ReplicaRemoved):
            self._report(f"{failed} {advice.removed_line(view.replica_id)}")
            return
        # Dropped for want of a leader: say why there is none, if this replica knows. A
        # timeout says only that (the watcher explains a stall once it is sure of it).
        stalled = advice.stalled(view, self.commands) if isinstance(exc, ShardNotReady) else None
        if stalled is None:
            self._report(f"{failed} {exc}")
            return
        self._report(f"{failed} request dropped: there is no leader")
        self._report(stalled)

    async def _read_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(READ_EVERY)
            try:
                count = await loop.run_in_executor(self._workers, self.replica.count)
            except RaftError:
                continue  # no majority: say nothing, as Dragonboat's helloworld does
            print(f"count: {count}", flush=True)

    async def _watch_loop(self) -> None:
        """Say once why nothing can be committed, when this replica cannot fix it itself."""
        leaderless_since: float | None = None
        said = ""
        while True:
            await asyncio.sleep(WATCH_EVERY)
            try:
                view = self.replica.view()
            except RaftError:
                return  # closing
            if view.has_leader and not view.removed:
                leaderless_since, said = None, ""
                continue
            now = time.monotonic()
            if leaderless_since is None:
                leaderless_since = now
            if not view.removed and now - leaderless_since < LEADERLESS_GRACE:
                continue
            line = advice.stalled(view, self.commands)
            if line is not None and line != said:
                self._report(line)
                said = line

    def _report(self, text: str) -> None:
        if not self._closing.is_set():
            print(text, file=sys.stderr, flush=True)


def _interactive() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty()


@contextlib.contextmanager
def _patched_stdout() -> Iterator[None]:
    if not _interactive():
        yield
        return
    with patch_stdout(raw=True):
        yield


async def _lines() -> AsyncIterator[str]:
    """Typed lines, with line editing and history, or piped ones; ends at Ctrl-D / EOF."""
    if _interactive():
        session: PromptSession[str] = PromptSession(history=InMemoryHistory())
        while True:
            try:
                yield await session.prompt_async("> ")
            except EOFError:
                return
    else:
        async for line in _piped_lines():
            yield line


async def _piped_lines() -> AsyncIterator[str]:
    loop = asyncio.get_running_loop()
    lines: asyncio.Queue[str | None] = asyncio.Queue()

    def pump() -> None:
        # A thread, because stdin cannot be read without blocking everywhere; it is a
        # daemon so that a read still pending when we quit does not hold the process.
        try:
            for raw in sys.stdin.buffer:  # bytes: a stray non-UTF-8 byte is no reason to stop
                line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                loop.call_soon_threadsafe(lines.put_nowait, line)
            loop.call_soon_threadsafe(lines.put_nowait, None)
        except RuntimeError:  # the loop closed first: we are quitting anyway
            pass

    threading.Thread(target=pump, name="helloworld-stdin", daemon=True).start()
    while (line := await lines.get()) is not None:
        yield line
