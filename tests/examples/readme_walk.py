"""Following the README as a new user does: its blocks, its commands, its transcripts.

The README is the script. Its fenced blocks are read in document order:

- ```sh blocks are commands. Each line is run as typed, from a fresh copy of the
  repository, by bash; `# -> text` at the end of a line is the output it must print.
  `NAME=value` lines set a variable for the lines after them, and `cd` moves later
  lines, as in a shell.
- ```text blocks are what a terminal shows. A line starting with `> ` (or with the
  program's own prompt, `dqlite> `, `demo> `) is typed at the prompt; the others must
  appear, in order, in the program's output. In a block of shell steps, a line starting
  with `$ ` is a command run by bash, and the lines up to the next one are exactly what
  it prints. A line that is only `...` stands for any lines, `...` within a line for
  any text. Dates and times (`2025-06-02`, `15:24:31`), counters (`count:7`,
  `count: 1`), snapshot indexes, terms, message numbers and back-off delays vary from
  run to run, so they match any number; nothing else does.
- ```python blocks are code: the API section's are one program, the tutorial's are
  excerpts of the named file, the others programs of their own. `print(...)  # -> text`
  says what that line prints.

Each test takes the blocks of its section in order (`Readme.take`), so a block added to
the README without a step that follows it fails the walk.

Ports: the README names fixed ports (localhost:63001, 127.0.0.1:11000, ...). The walk
replaces each, wherever it occurs (commands, transcripts, the Procfile of the copy),
with a port picked free on 127.0.0.1, so that tests can run beside a user's own
processes: `Ports.sub` is that one mechanical substitution. A moved port keeps its
number of digits (aligned output keeps its columns), README ports 1000 apart stay 1000
apart (nodehost.sqlite serves Raft on its client port plus 1000), and ports of one
length keep their order (members sorted by address keep their ids). A transcript line
starting with `usage: ` is a program's fixed help text, printed as is, and is left alone.
Commands that take their address from a default or a built-in get it from the
program's documented variables instead (HELLOWORLD_ADDRESSES, HTTP_ADDR and RAFT_ADDR).

Processes: interactive programs run in a pseudo-terminal, daemons as real processes
with their output in a log file; each is stopped by its PID, with the children it
started (uv runs the program as a child), SIGKILL after a bound.
"""

from __future__ import annotations

import os
import random
import re
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from pty_terminal import Terminal

REPO = Path(__file__).resolve().parents[2]
STEP = 60.0  # seconds: the bound of any one step (a loaded 2-core machine is slow)

_FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.M | re.S)
_HEADING = re.compile(r"^(#{2,3}) (.+)$", re.M)
_ADDRESS = re.compile(r"\b(localhost|127\.0\.0\.1):(\d{4,5})\b")
_VARYING = [
    (re.compile(r"\d{4}-\d\d-\d\d"), r"\d{4}-\d\d-\d\d"),
    (re.compile(r"\d\d:\d\d:\d\d"), r"\d\d:\d\d:\d\d"),
    (re.compile(r"count:\d+"), r"count:\d+"),
    (re.compile(r"count: \d+"), r"count: \d+"),
    (re.compile(r"index \d+"), r"index \d+"),
    (re.compile(r"term \d+"), r"term \d+"),
    (re.compile(r"message \d+"), r"message \d+"),
    (re.compile(r"next try in [\d.]+ s"), r"next try in [\d.]+ s"),
]


@dataclass
class Block:
    kind: str  # sh, text, python
    body: str
    section: str  # "## heading / ### heading"
    line: int  # where it starts in README.md
    taken: bool = False

    def lines(self) -> list[str]:
        return self.body.rstrip("\n").split("\n")


class Readme:
    def __init__(self, path: Path = REPO / "README.md") -> None:
        self.text = path.read_text(encoding="utf-8")
        headings = [
            (m.start(), len(m.group(1)), m.group(2).strip()) for m in _HEADING.finditer(self.text)
        ]
        self.blocks: list[Block] = []
        for m in _FENCE.finditer(self.text):
            top, sub = "", ""
            for start, level, title in headings:
                if start > m.start():
                    break
                if level == 2:
                    top, sub = title, ""
                else:
                    sub = title
            section = f"{top} / {sub}" if sub else top
            line = self.text.count("\n", 0, m.start()) + 1
            self.blocks.append(Block(m.group(1), m.group(2), section, line))

    def section_text(self, top: str) -> str:
        start = self.text.index(f"\n## {top}\n")
        end = self.text.find("\n## ", start + 1)
        return self.text[start : end if end >= 0 else len(self.text)]

    def take(self, kind: str, section: str) -> Block:
        """The next block of `section` (a prefix of its path), which must be of `kind`."""
        for block in self.blocks:
            if block.taken or not block.section.startswith(section):
                continue
            assert block.kind == kind, (
                f"README line {block.line} ({block.section}): the walk expected a {kind} "
                f"block here, the README has a {block.kind} block:\n{block.body}"
            )
            block.taken = True
            return block
        raise AssertionError(f"the README has no more {kind} blocks in {section!r}")

    def untaken(self, section: str) -> list[Block]:
        return [b for b in self.blocks if b.section.startswith(section) and not b.taken]


# ---------------------------------------------------------------- ports


class Ports:
    """README port -> free port: the walk's one substitution (module docstring)."""

    def __init__(self, readme_text: str) -> None:
        wanted = sorted({int(m.group(2)) for m in _ADDRESS.finditer(readme_text)})
        # Chains of ports 1000 apart, each moved as one: 9001, 10001, 11001, ...
        chains: list[list[int]] = []
        chain_of: dict[int, list[int]] = {}
        for port in wanted:
            chain = chain_of.get(port - 1000)
            if chain is None:
                chain = []
                chains.append(chain)
            chain.append(port)
            chain_of[port] = chain
        self.map: dict[int, int] = {}
        for chain, base in zip(chains, free_bases(chains), strict=True):
            for step, port in enumerate(chain):
                self.map[port] = base + 1000 * step

    def __getitem__(self, port: int) -> int:
        return self.map[port]

    def sub(self, text: str) -> str:
        def one(m: re.Match[str]) -> str:
            port = int(m.group(2))
            return f"{m.group(1)}:{self.map.get(port, port)}"

        return _ADDRESS.sub(one, text)


def free_bases(chains: list[list[int]]) -> list[int]:
    """A free first port for each chain, whose ports then have the digits of the chain's
    README ports and are all free; below the kernel's ephemeral range when they fit (no
    port another test asks the kernel for is ever one of these); in the README's order
    among chains of one shape."""
    ephemeral = _ephemeral_low()
    held: list[socket.socket] = []
    picks: list[int] = []
    rng = random.Random()
    try:
        for chain in chains:
            low, high = _window(chain)
            preferred = (low, min(high, ephemeral - 1 - 1000 * (len(chain) - 1)))
            window = preferred if preferred[0] <= preferred[1] else (low, high)
            for _ in range(500):
                base = rng.randint(*window)
                sockets = _bind_all([base + 1000 * i for i in range(len(chain))])
                if sockets:
                    held += sockets
                    picks.append(base)
                    break
            else:
                raise AssertionError(f"no free ports for README ports {chain} in {window}")
    finally:
        for s in held:
            s.close()
    shapes: dict[tuple[int, int, int], list[int]] = {}
    for i, chain in enumerate(chains):
        shapes.setdefault((*_window(chain), len(chain)), []).append(i)
    for indexes in shapes.values():
        for i, base in zip(indexes, sorted(picks[i] for i in indexes), strict=True):
            picks[i] = base
    return picks


def _window(chain: list[int]) -> tuple[int, int]:
    """The first ports that give every port of `chain` its README digit count."""
    low, high = 1024, 65535 - 1000 * (len(chain) - 1)
    for step, port in enumerate(chain):
        digits = len(str(port))
        low = max(low, 10 ** (digits - 1) - 1000 * step)
        high = min(high, 10**digits - 1 - 1000 * step)
    assert low <= high, f"README ports {chain} cannot keep their digits"
    return low, high


def _ephemeral_low() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _bind_all(ports: list[int]) -> list[socket.socket]:
    """Sockets bound to every port in `ports` on 127.0.0.1, or [] if one is taken."""
    bound: list[socket.socket] = []
    for port in ports:
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            s.close()
            for other in bound:
                other.close()
            return []
        bound.append(s)
    return bound


# ---------------------------------------------------------------- commands


@dataclass(frozen=True)
class Command:
    line: str  # as the README has it, without the comment
    comment: str = ""

    @property
    def expected(self) -> str | None:
        """What the README says it prints (`# -> text`), if it says."""
        return self.comment[3:].strip() if self.comment.startswith("-> ") else None


def commands(block: Block) -> list[Command]:
    out = []
    for raw in block.lines():
        if not raw.strip():
            continue
        line, comment = split_comment(raw)
        out.append(Command(line.strip(), comment))
    return out


def split_comment(line: str) -> tuple[str, str]:
    """Split off a `# comment` that is outside quotes (bash's own rule, near enough)."""
    quote = ""
    for i, char in enumerate(line):
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1] in " \t"):
            return line[:i].rstrip(), line[i + 1 :].strip()
    return line, ""


def clean_environment(**extra: str) -> dict[str, str]:
    """The environment of a new terminal: none of this test run's own settings."""
    drop = ("VIRTUAL_ENV", "PYTHONPATH", "UV_RUN_RECURSION_DEPTH", "PYTEST_", "CI_READMEWALK")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    for name in ("HELLOWORLD_ADDRESSES", "GRPC_VERBOSITY"):
        env.pop(name, None)
    env.update(TERM="xterm-256color", COLUMNS="400", **extra)
    return env


@dataclass
class Shell:
    """Where the README's commands run: a directory, variables, a port map."""

    cwd: Path
    ports: Ports
    env: dict[str, str] = field(default_factory=clean_environment)
    variables: dict[str, str] = field(default_factory=dict)
    substitutions: dict[str, str] = field(default_factory=dict)

    def script(self, line: str) -> str:
        text = self.ports.sub(line)
        for old, new in self.substitutions.items():
            text = text.replace(old, new)
        return text

    def environment(self, **extra: str) -> dict[str, str]:
        return {**self.env, **self.variables, **extra}

    def assign(self, command: Command) -> bool:
        """Take `NAME=value` (or `export NAME=value`) as bash would; True if the line
        was one."""
        m = re.fullmatch(r"(?:export )?([A-Za-z_]\w*)=(\S*)", command.line)
        if m is None:
            return False
        self.variables[m.group(1)] = self.script(m.group(2))
        return True

    def run(self, command: Command, timeout: float = STEP) -> subprocess.CompletedProcess[str]:
        """Run a one-shot line to its end; a `cd` in it moves the lines after it."""
        marker = "__README_WALK_CWD__="
        script = f'{self.script(command.line)}\nstatus=$?\necho "{marker}$PWD"\nexit $status\n'
        done = subprocess.run(
            ["bash", "-c", script],
            cwd=self.cwd,
            env=self.environment(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        out, _, cwd = done.stdout.rpartition(marker)
        if cwd.strip():
            self.cwd = Path(cwd.strip())
        done.stdout = out
        return done

    def check(self, command: Command, timeout: float = STEP, retry_for: float = 0.0) -> str:
        """Run it; it must succeed and print what the README says (retried while a
        cluster settles, for at most `retry_for` seconds). Its output."""
        deadline = time.monotonic() + retry_for
        while True:
            done = self.run(command, timeout)
            printed = done.stdout.strip()
            expected = command.expected
            ok = done.returncode == 0 and (
                expected is None or matches_line(self.script(expected), printed)
            )
            if ok:
                return printed
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"README command {command.line!r} ran as {self.script(command.line)!r}: "
                    f"exit {done.returncode}, printed {printed!r}, expected {expected!r}; "
                    f"stderr:\n{done.stderr[-3000:]}"
                )
            time.sleep(0.5)

    def terminal(self, command: Command, **env: str) -> Terminal:
        return Terminal(
            ["bash", "-c", self.script(command.line)],
            str(self.cwd),
            self.environment(**env),
            columns=400,
        )

    def daemon(self, command: Command, log: Path, **env: str) -> Daemon:
        return Daemon(self.script(command.line), self.cwd, self.environment(**env), log)


class Daemon:
    """A long-running command of the README, as a real process in its own session."""

    def __init__(self, script: str, cwd: Path, env: Mapping[str, str], log: Path) -> None:
        self.script = script
        self.log_path = log
        with open(log, "ab") as out:
            out.write(f"---- {script}\n".encode())
            self.process = subprocess.Popen(
                ["bash", "-c", script],
                cwd=cwd,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-8000:]

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, signum: int = signal.SIGTERM, timeout: float = STEP) -> int:
        """Send `signum` to the command (and, since uv and honcho forward signals to
        the programs they run, through it to them); its exit code. Whatever still runs
        after `timeout` is killed by PID and the test fails."""
        return stop_tree(self.process, signum, timeout)


def stop_tree(process: subprocess.Popen[bytes], signum: int, timeout: float) -> int:
    try:
        family = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        family = []
    if process.poll() is None:
        os.kill(process.pid, signum)
    try:
        code = process.wait(timeout)
    except subprocess.TimeoutExpired:
        code = None
    _, alive = psutil.wait_procs(family, timeout=timeout if code is not None else 1)
    for child in alive:
        child.kill()
    if code is None:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout)
        raise AssertionError(f"pid {process.pid} ignored signal {signum} for {timeout:g} s")
    assert not alive, f"still running after pid {process.pid} ended: {alive}"
    return code


def kill_terminal(terminal: Terminal) -> None:
    """Close a terminal, killing by PID the program and what it started."""
    try:
        family = psutil.Process(terminal.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        family = []
    for child in family:
        try:
            child.kill()
        except psutil.NoSuchProcess:
            pass
    terminal.close()


# ---------------------------------------------------------------- transcripts


def line_pattern(line: str) -> str:
    """The regex a README transcript line stands for (ports already substituted)."""
    return ".*?".join(_vary(part) for part in line.split("..."))


def _vary(part: str) -> str:
    """re.escape(part), with the varying numbers of _VARYING matching any number."""
    pieces: list[str] = []
    at = 0
    spans = []
    for literal, _ in _VARYING:
        for m in literal.finditer(part):
            spans.append((m.start(), m.end(), literal))
    spans.sort(key=lambda s: s[0])
    for start, end, literal in spans:
        if start < at:
            continue
        pieces.append(re.escape(part[at:start]))
        pieces.append(dict(_VARYING)[literal])
        at = end
    pieces.append(re.escape(part[at:]))
    return "".join(pieces)


def matches_line(expected: str, printed: str) -> bool:
    return re.fullmatch(line_pattern(expected), printed, re.S) is not None


def follow(
    terminal: Terminal,
    block: Block,
    ports: Ports,
    type_line: Callable[[Terminal, str], object] | None = None,
    timeout: float = STEP,
    since: int | None = None,
    prompt: str = "> ",
) -> None:
    """Check a transcript against a terminal: type its lines that start with `prompt`
    (by `type_line`, or at the next prompt_toolkit prompt), and expect each other line
    after the one before it (or after the line typed before it). The first is looked for
    after `since` (default: after the terminal's previous match)."""
    for raw in block.lines():
        # A usage line is the program's fixed help text: its example address is no port.
        line = raw if raw.startswith("usage: ") else ports.sub(raw)
        if line.strip() == "...":
            continue
        if line.startswith(prompt):
            if type_line is None:
                terminal.wait_for_prompt(timeout)
            since = terminal.mark()
            if type_line is None:
                terminal.type(line[len(prompt) :])
            else:
                type_line(terminal, line[len(prompt) :])
            continue
        match = terminal.expect(line_pattern(line), timeout, since=since)
        since = match.end()


def at_prompt(prompt: str) -> Callable[[Terminal, str], None]:
    """Type a line once `prompt` shows: for programs whose line editor is not
    prompt_toolkit's (Go's dqlite shell)."""

    def type_line(terminal: Terminal, line: str) -> None:
        terminal.expect(re.escape(prompt), STEP)
        terminal.type(line)

    return type_line


def shell_steps(block: Block) -> list[tuple[Command, list[str]]]:
    """A transcript's `$ ` commands, each with the lines it prints."""
    steps: list[tuple[Command, list[str]]] = []
    for line in block.lines():
        if line.startswith("$ "):
            steps.append((Command(line[2:].strip()), []))
        else:
            assert steps, f"README line {block.line}: a transcript of commands starts with `$ `"
            steps[-1][1].append(line)
    return steps


def run_steps(shell: Shell, block: Block, timeout: float = STEP) -> None:
    """Run a transcript's commands in order: each must succeed, print exactly the lines
    shown under it (trailing spaces aside) and nothing on stderr but uv's own lines."""
    for command, shown in shell_steps(block):
        done = shell.run(command, timeout)
        printed = "\n".join(line.rstrip() for line in done.stdout.rstrip("\n").split("\n"))
        expected = "\n".join(shell.script(line).rstrip() for line in shown)
        assert done.returncode == 0 and matches_line(expected, printed), (
            f"README line {block.line}: {command.line!r} exited {done.returncode} and "
            f"printed:\n{done.stdout}\nexpected:\n{expected}\nstderr:\n{done.stderr[-3000:]}"
        )
        assert program_stderr(done.stderr) == [], done.stderr


_UV_LINES = re.compile(
    r"^(Using CPython|Creating virtual environment|\s*(Building|Built) nodehost|"
    r"Installed \d+ packages|Resolved \d+ packages|Prepared \d+ packages|"
    r"Uninstalled \d+ packages|Audited \d+ packages|\s*[-+~] )"
)


def program_stderr(stderr: str) -> list[str]:
    """A program's stderr lines, without those of `uv run` (when it installs first)."""
    return [line for line in stderr.splitlines() if not _UV_LINES.match(line)]


def shown_prints(block: Block) -> list[str]:
    """What a python block says it prints: the `# -> text` of each `print(` line, all
    of which must say."""
    shown = []
    for line in block.lines():
        if line.lstrip().startswith("print("):
            _, comment = split_comment(line)
            assert comment.startswith("-> "), f"README line {block.line}: {line!r} says no output"
            shown.append(comment[3:].strip())
    return shown


def wait_until(what: str, check: Callable[[], bool], timeout: float = STEP) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.2)


def missing_from(excerpt: list[str], source: list[str]) -> Iterator[str]:
    """The excerpt's lines (stripped) not found in `source`, in order: an excerpt may
    leave lines out, never add or reorder them."""
    stripped = [s.strip() for s in source]
    at = 0
    for line in excerpt:
        want = line.strip()
        if not want:
            continue
        try:
            at = stripped.index(want, at) + 1
        except ValueError:
            yield line
