"""The README, followed top to bottom on a fresh copy of the repository, as a new user
follows it: every shell step it shows is run, in order, as the README writes it; every
transcript is checked against what the program printed; the API section's snippets run
as one program, pasted in order, and the other programs (the SQL script, its clients,
the hosts addressed by id) as saved, printing what they say they print; the tutorial's
code excerpts are found, line by line, in the files they quote. Daemons the README
starts are real processes (the operator section's kvstore nodes are SIGKILLed, recovered
and rebuilt as it says); the benchmark it shows runs shortened, and its table is checked
to be the script's lines.

readme_walk.py says how the README's blocks are read and how its fixed ports are moved
to free ones. Each test walks one part of the README and takes its blocks in order; the
last test checks that no block was left unwalked, so the README cannot grow a step that
no test follows. The tests share one fresh copy and run in the README's order.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cluster_walk import take_section as take_cluster_section
from pty_terminal import CTRL_C, CTRL_D, Terminal
from readme_walk import (
    REPO,
    STEP,
    Command,
    Daemon,
    Ports,
    Readme,
    Shell,
    at_prompt,
    commands,
    follow,
    kill_terminal,
    line_pattern,
    missing_from,
    program_stderr,
    run_steps,
    shown_prints,
    wait_until,
)

from nodehost import tools
from nodehost.sqlite.client import ClusterClient
from nodehost.tools import AdminClient
from tests.discovery.etcd_server import EtcdServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

GIT_URL = "https://github.com/<owner>/nodehost"
UPDATE = re.compile(r"from ExampleStateMachine\.Update\(\), msg: (.*?), count:(\d+)$", re.M)
CAPTURED = re.compile(r"snapshot captured, index \d+$", re.M)


@dataclass
class Walk:
    readme: Readme
    root: Path  # holds the copy, named nodehost as a checkout is
    checkout: Path
    ports: Ports
    terminals: list[Terminal] = field(default_factory=list)
    daemons: list[Daemon] = field(default_factory=list)
    sql_demo: Terminal | None = None  # the SQL section's script, while its members run
    operator: Shell | None = None  # the operator section's terminal: P, NODEHOST_ADMIN
    kv_nodes: dict[int, Daemon] = field(default_factory=dict)  # the operator's kvstore
    kv_starts: dict[int, Command] = field(default_factory=dict)  # how each was started

    def shell(self, cwd: Path | None = None) -> Shell:
        return Shell(cwd or self.checkout, self.ports)

    def helloworld_addresses(self) -> str:
        """HELLOWORLD_ADDRESSES for the three built-in addresses, moved as the README's."""
        return ",".join(f"localhost:{self.ports[63000 + i]}" for i in (1, 2, 3))

    def terminal(self, shell: Shell, command: Command) -> Terminal:
        terminal = shell.terminal(command, HELLOWORLD_ADDRESSES=self.helloworld_addresses())
        self.terminals.append(terminal)
        return terminal

    def daemon(self, shell: Shell, command: Command, name: str, **env: str) -> Daemon:
        daemon = shell.daemon(command, self.root / f"{name}.log", **env)
        self.daemons.append(daemon)
        return daemon


@pytest.fixture(scope="module")
def walk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Walk]:
    root = tmp_path_factory.mktemp("readme")
    checkout = root / "nodehost"
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_file():
            (checkout / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, checkout / name)
    readme = Readme(checkout / "README.md")
    w = Walk(readme, root, checkout, Ports(readme.text))
    try:
        yield w
    finally:
        for terminal in w.terminals:
            kill_terminal(terminal)
        for daemon in w.daemons:
            if daemon.alive():
                daemon.stop(signal.SIGKILL)


# ---------------------------------------------------------------- Quick start


def test_quick_start(walk: Walk) -> None:
    shell = walk.shell()
    (hello,) = commands(walk.readme.take("sh", "Quick start"))
    one = walk.terminal(shell, hello)
    follow(one, walk.readme.take("text", "Quick start"), walk.ports)
    one.wait_for_prompt(STEP)
    one.type("exit")  # "Type `exit` to stop it"
    assert one.wait(STEP) == 0

    # The suite itself is this very command in CI (.ci/run); run inside the suite it
    # would recurse, so here it collects every test, which imports every test module.
    (suite,) = commands(walk.readme.take("sh", "Quick start"))
    assert suite.line == "uv run pytest"
    done = shell.run(Command(suite.line + " --collect-only -q"), timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert re.search(r"^\d+ tests collected", done.stdout, re.M), done.stdout[-2000:]


# ---------------------------------------------------------------- Use it in your project


@pytest.fixture(scope="module")
def git_repository(walk: Walk) -> Path:
    """A git repository of the copy's files: what the README's git URL stands for."""
    git = walk.root / "nodehost-git"
    shutil.copytree(walk.checkout, git, ignore=shutil.ignore_patterns(".venv"))
    identity = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t"}
    identity.update(GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t")
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "the README's copy"]):
        subprocess.run(["git", *args], cwd=git, check=True, env={**os.environ, **identity})
    return git


def test_use_it_in_your_project(walk: Walk, git_repository: Path) -> None:
    """From the directory that holds the checkout: a new project adds nodehost from
    the path, then from a git URL. The git URL is a local git repository of the same
    files, as file://localhost/<path> (a URL pip's PEP 508 parser takes too), standing
    in for the one the README's `<owner>` names."""
    shell = walk.shell(walk.root)
    shell.substitutions[GIT_URL] = f"file://localhost{git_repository}"
    block = walk.readme.take("sh", "Use it in your project")
    lines = commands(block)
    assert [c.line.split()[:2] for c in lines] == [
        ["uv", "init"],
        ["uv", "add"],
        ["uv", "add"],
        ["uv", "run"],
    ], block.body
    for command in lines:
        shell.check(command, timeout=600)
        if command.line.startswith("uv add"):
            # Each form installed nodehost from where it says.
            url = str(_direct_url(shell)["url"])
            expected = git_repository if "git+" in command.line else walk.checkout
            assert url.startswith("file://") and url.endswith(str(expected)), url
    assert shell.cwd.name == "myproject"
    installed = _installed(shell)
    text = walk.readme.section_text("Use it in your project")
    named = re.search(r"installs the Python packages (.*?), the commands (.*?), and the "
                      r"dependencies (.*?)\.", text, re.S)  # fmt: skip
    assert named is not None, "the README names what gets installed"
    packages, scripts, dependencies = (re.findall(r"`([^`]+)`", g) for g in named.groups())
    assert sorted(packages) == installed["packages"]
    assert sorted(scripts) == installed["scripts"]
    assert sorted(dependencies) == installed["dependencies"]


@pytest.mark.slow  # pip downloads and builds everything again, twice: minutes
def test_the_pip_forms_of_use_it_in_your_project(walk: Walk, git_repository: Path) -> None:
    """The two pip commands the section names, each in a new virtual environment, run
    from a project next to the checkout (where ../nodehost is the checkout)."""
    project = walk.root / "pip-project"
    project.mkdir(exist_ok=True)
    text = walk.readme.section_text("Use it in your project")
    pip_forms = re.findall(r"`(pip install [^`]+)`", text)
    assert len(pip_forms) == 2, pip_forms
    for i, form in enumerate(pip_forms):
        venv = walk.root / f"pip-venv-{i}"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=STEP)
        shell = walk.shell(project)
        shell.substitutions[GIT_URL] = f"file://localhost{git_repository}"
        shell.env["PATH"] = f"{venv / 'bin'}{os.pathsep}{shell.env['PATH']}"
        shell.env["VIRTUAL_ENV"] = str(venv)
        shell.check(Command(form + " -q"), timeout=900)
        shell.check(Command('python -c "import nodehost, statemachine"'))


def _direct_url(shell: Shell) -> dict[str, object]:
    """Where the project's environment got nodehost from (PEP 610's direct_url.json)."""
    program = (
        "import importlib.metadata as m; "
        "print(m.distribution('nodehost').read_text('direct_url.json'))"
    )
    done = subprocess.run(
        ["uv", "run", "python", "-c", program],
        cwd=shell.cwd,
        env=shell.environment(),
        capture_output=True,
        text=True,
        check=True,
    )
    found: dict[str, object] = json.loads(done.stdout)
    return found


def _installed(shell: Shell) -> dict[str, list[str]]:
    """What the nodehost distribution put into the project's environment."""
    program = """
import importlib.metadata as m, json, re
d = m.distribution("nodehost")
packages = sorted({str(f).split("/")[0] for f in d.files or []
                   if str(f).endswith(".py") and "/" in str(f)})
scripts = sorted(e.name for e in d.entry_points if e.group == "console_scripts")
deps = sorted(re.split(r"[ ;<>=!~\\[]", r)[0] for r in d.requires or [] if "extra ==" not in r)
print(json.dumps({"packages": packages, "scripts": scripts, "dependencies": deps}))
"""
    done = subprocess.run(
        ["uv", "run", "python", "-c", program],
        cwd=shell.cwd,
        env=shell.environment(),
        capture_output=True,
        text=True,
        check=True,
    )
    found: dict[str, list[str]] = json.loads(done.stdout)
    found["dependencies"] = sorted(d.replace("_", "-").lower() for d in found["dependencies"])
    return found


# ---------------------------------------------------------------- Tutorial


def updates_since_last_snapshot(terminal: Terminal) -> int:
    text = terminal.text
    last = max((m.end() for m in CAPTURED.finditer(text)), default=0)
    return len(UPDATE.findall(text, last))


class Typist:
    """A person at the prompts: types a line, and types it again after an error that
    says to retry (a leader being elected), as the README tells them to."""

    def __init__(self) -> None:
        self.sent = 0

    def message(self) -> str:
        self.sent += 1
        return f"message {self.sent}"

    def propose(self, terminal: Terminal, text: str, timeout: float = STEP) -> int:
        deadline = time.monotonic() + timeout
        while True:
            terminal.wait_for_prompt(STEP)
            mark = terminal.mark()
            terminal.type(text)
            match = terminal.expect(
                rf"msg: {re.escape(text)}, count:(\d+)$|SyncPropose returned error .*retry$",
                STEP,
                since=mark,
            )
            if match.group(1) is not None:
                return int(match.group(1))
            assert time.monotonic() < deadline, f"{text!r} was never applied"
            time.sleep(1.0)

    def membership(self, terminal: Terminal, text: str) -> None:
        """Type a membership command; retry only after an error that says to."""
        deadline = time.monotonic() + STEP
        while True:
            terminal.wait_for_prompt(STEP)
            mark = terminal.mark()
            terminal.type(text)
            match = terminal.expect(
                r"membership change (completed successfully|failed, .*)$", STEP, since=mark
            )
            if not match.group(0).endswith("retry") or time.monotonic() > deadline:
                return
            time.sleep(1.0)


def seen_in(terminals: list[Terminal], text: str, count: int) -> None:
    for t in terminals:
        t.expect(rf"msg: {re.escape(text)}, count:{count}$", STEP, since=0)


def stop_with_history(
    typist: Typist, terminal: Terminal, other: Terminal, keys: str
) -> list[tuple[str, int]]:
    """Quit `terminal` once its log holds entries after its latest snapshot (so that its
    restart has entries to apply again, as the README shows); what it had applied."""
    while updates_since_last_snapshot(terminal) < 2:
        text = typist.message()
        seen_in([terminal], text, typist.propose(other, text))
    history = [(m, int(c)) for m, c in UPDATE.findall(terminal.text)]
    terminal.wait_for_prompt(STEP)
    terminal.press(keys)
    assert terminal.wait(STEP) == 0
    return history


def expect_replay(terminal: Terminal, history: list[tuple[str, int]]) -> None:
    """As the README says, a restarted replica "loads its latest snapshot, then applies
    the entries after it again, in their original order": exactly those, in that order."""
    restored = int(terminal.expect(r"snapshot recovered, count:(\d+)$", STEP, since=0).group(1))
    later = [line for line in history if line[1] > restored]
    assert restored >= 1 and later, (restored, history[-1])
    terminal.expect(rf"msg: {re.escape(later[-1][0])}, count:{later[-1][1]}$", STEP, since=0)
    replayed = [(m, int(c)) for m, c in UPDATE.findall(terminal.text)]
    assert replayed[: len(later)] == later


def test_tutorial_hello_world(walk: Walk) -> None:
    readme, ports = walk.readme, walk.ports
    shell = walk.shell()
    typist = Typist()

    section = "Tutorial: hello world, three replicas / Start three replicas"
    starts = commands(readme.take("sh", section))
    one, two, three = (walk.terminal(shell, c) for c in starts)
    follow(one, readme.take("text", section), ports)
    for terminal, port in ((two, 63002), (three, 63003)):
        terminal.expect(rf"node address: localhost:{ports[port]}$", STEP)
    everyone = [one, two, three]
    for terminal in everyone:
        terminal.wait_for_prompt(STEP)

    section = "Tutorial: hello world, three replicas / Replicate a message"
    block = readme.take("text", section)
    typed = [line[2:] for line in block.lines() if line.startswith("> ")]
    follow(one, block, ports, type_line=lambda t, text: typist.propose(t, text, 90))
    seen_in(everyone, typed[0], 1)
    follow(one, readme.take("text", section), ports, timeout=30)  # count: 1, every 10 s
    block = readme.take("text", section)  # ten more lines, a snapshot among them
    before = one.mark()
    for i in range(10):
        text = typist.message()
        seen_in(everyone, text, typist.propose(everyone[i % 3], text))
    follow(one, block, ports, since=before)

    section = "Tutorial: hello world, three replicas / Lose one replica, then the majority"
    three_history = stop_with_history(typist, three, one, "exit\r")
    warned = readme.take("text", section)
    wait_until(
        "the leader's warning about replica 3",
        lambda: any(re.search(line_pattern(ports.sub(warned.body.strip())), t.text)
                    for t in (one, two)),
        timeout=90,
    )  # fmt: skip
    text = typist.message()
    seen_in([one, two], text, typist.propose(one, text))

    two_history = stop_with_history(typist, two, one, "exit\r")
    typed, timed_out = readme.take("text", section).lines()  # typed at once: timed out
    one.wait_for_prompt(STEP)
    mark = one.mark()
    one.type(typed.removeprefix("> "))
    outcome = one.expect(
        f"{line_pattern(timed_out)}$|SyncPropose returned error request dropped: .*$",
        STEP,
        since=mark,
    ).group(0)
    if "dropped" in outcome:
        # Replica 1 no longer believed in a leader when the line was typed (on a loaded
        # machine a follower may start an election early): the README's other cases,
        # "while the leader is being elected" or "typed later", whose lines it shows.
        assert outcome.split("error ", 1)[1] in " ".join(readme.text.split()), outcome
    follow(one, readme.take("text", section), ports)  # the watcher's line, then typed later
    assert one.process.poll() is None

    section = "Tutorial: hello world, three replicas / Restart: the snapshot, then the log"
    restarts = commands(readme.take("sh", section))
    assert [c.line for c in restarts] == [starts[1].line, starts[2].line]
    two, three = (walk.terminal(shell, c) for c in restarts)
    follow(two, readme.take("text", section), ports)
    expect_replay(two, two_history)
    expect_replay(three, three_history)
    everyone = [one, two, three]
    text = typist.message()
    seen_in(everyone, text, typist.propose(two, text))

    section = "Tutorial: hello world, three replicas / Add a fourth replica, then remove it"
    follow(one, readme.take("text", section), ports, type_line=typist.membership)
    (join,) = commands(readme.take("sh", section))
    four = walk.terminal(shell, join)
    four.expect(rf"node address: localhost:{ports[63100]}$", STEP)
    # "It receives the leader's snapshot or the log it is missing", then "from then on
    # prints every new message like the others": caught up first.
    latest = max(int(c) for _, c in UPDATE.findall(one.text))
    wait_until(
        "replica 4 to catch up, by snapshot or log",
        lambda: re.search(rf"count:{latest}$", four.text, re.M) is not None,
    )
    text = typist.message()
    seen_in([*everyone, four], text, typist.propose(one, text))
    follow(two, readme.take("text", section), ports, type_line=typist.membership)  # remove 4
    follow(four, readme.take("text", section), ports)  # replica 4 is told
    text = typist.message()
    count = typist.propose(one, text)
    seen_in(everyone, text, count)
    four.wait_for_prompt(STEP)
    assert f"msg: {text}," not in four.text, "a removed replica receives nothing"
    follow(three, readme.take("text", section), ports)  # a removed id never comes back
    follow(one, readme.take("text", section), ports)  # usage lines

    section = "Tutorial: hello world, three replicas / Quit, start over"
    twice = walk.terminal(shell, starts[0])
    assert twice.wait(STEP) == 1
    follow(twice, readme.take("text", section), ports)
    # "exit, Ctrl-D, Ctrl-C and kill <pid> (SIGTERM) all close the NodeHost and exit 0"
    one.type("exit")
    two.press(CTRL_D)
    three.press(CTRL_C)
    os.kill(_program_pid(four), signal.SIGTERM)
    for terminal in (one, two, three, four):
        assert terminal.wait(STEP) == 0, terminal.tail()
    for terminal in walk.terminals:
        assert "Traceback" not in terminal.text, terminal.tail()


def _program_pid(terminal: Terminal) -> int:
    """The helloworld process itself (uv runs it as a child): what `kill <pid>` names."""
    import psutil

    family = [terminal.pid, *(c.pid for c in psutil.Process(terminal.pid).children(True))]
    for pid in reversed(family):
        if "example-helloworld" in " ".join(psutil.Process(pid).cmdline()):
            return pid
    raise AssertionError(f"no example-helloworld among {family}")


def test_tutorial_code_excerpts_are_the_files(walk: Walk) -> None:
    section = "Tutorial: hello world, three replicas / What the code does"
    for _ in range(2):
        block = walk.readme.take("python", section)
        first, *excerpt = block.lines()
        path = first.removeprefix("# ").strip()
        source = (walk.checkout / path).read_text().splitlines()
        missing = list(missing_from(excerpt, source))
        assert not missing, f"README line {block.line}: not in {path}, in this order: {missing}"


# ---------------------------------------------------------------- The API by example


def test_the_api_snippets_run_as_pasted(walk: Walk) -> None:
    """Pasted in order into demo.py and run from the checkout, as the section says; a
    program that configures no logging must print nothing on stderr (no warning for a
    normal close or a first stale_read)."""
    section = "The API by example"
    blocks = []
    while any(b.kind == "python" for b in walk.readme.untaken(section)):
        blocks.append(walk.readme.take("python", section))
    program = "\n".join(walk.ports.sub(b.body) for b in blocks)
    (walk.checkout / "demo.py").write_text(program)
    shell = walk.shell()
    done = shell.run(Command("uv run python demo.py"), timeout=120)
    assert done.returncode == 0, done.stderr
    assert program_stderr(done.stderr) == [], done.stderr
    printed = done.stdout.splitlines()
    assert printed[:2] == ["1", "1"] and printed[2] in ("0", "1"), printed
    assert printed[3:7] == ["True 1", "1 1", "2", "[1, 2, 3, 4]"], printed
    assert re.fullmatch(r"a snapshot at index \d+ already exists", printed[7]), printed


# ---------------------------------------------------------------- Replicated SQL

SQL = "Replicated SQL: nodehost.sqlite"


def test_sql_three_members_one_script(walk: Walk) -> None:
    """The script, saved and run as the section says, prints what it shows and keeps its
    members running for the next steps (until Enter, typed at the end of the clients)."""
    readme, ports = walk.readme, walk.ports
    section = f"{SQL} / Three members, one script"
    run = "uv run python sql_demo.py"
    assert f"save it as `sql_demo.py` and run `{run}`" in " ".join(readme.section_text(SQL).split())
    (walk.checkout / "sql_demo.py").write_text(ports.sub(readme.take("python", section).body))
    walk.sql_demo = walk.terminal(walk.shell(), Command(run))
    follow(walk.sql_demo, readme.take("text", section), ports, timeout=120)


def test_sql_the_dqlite_shell(walk: Walk) -> None:
    """Debian's dqlite shell, typed into against the script's members (skipped, after
    taking its blocks, where go-dqlite is not installed: CI may lack it)."""
    readme, ports = walk.readme, walk.ports
    section = f"{SQL} / Three members, one script"
    (command,) = commands(readme.take("sh", section))
    session = readme.take("text", section)
    if shutil.which("dqlite") is None:
        pytest.skip("Debian's dqlite shell is not installed (apt-get install go-dqlite)")
    assert walk.sql_demo is not None, "runs after test_sql_three_members_one_script"
    shell = walk.terminal(walk.shell(), command)
    follow(shell, session, ports, type_line=at_prompt("dqlite> "), prompt="dqlite> ")
    shell.expect(re.escape("dqlite> "), STEP)
    shell.press(CTRL_D)
    assert shell.wait(STEP) == 0, shell.tail()


def test_sql_remote_clients(walk: Walk) -> None:
    """The section's programs and commands against the script's members, as a user runs
    them in another terminal: the client snippet, the console (in a pseudo-terminal, its
    history in the home directory), its script forms, the SQLAlchemy example; then Enter
    in the script's terminal stops the members, and it exits 0."""
    readme, ports = walk.readme, walk.ports
    demo = walk.sql_demo
    assert demo is not None, "runs after test_sql_three_members_one_script"
    section = f"{SQL} / Remote clients"
    shell = walk.shell()
    home = walk.root / "home"
    home.mkdir(exist_ok=True)
    # A home of the walk's own (for the console's history), with uv's cache where it is.
    uv_cache = subprocess.run(
        ["uv", "cache", "dir"], capture_output=True, text=True, check=True, timeout=STEP
    ).stdout.strip()
    shell.env.update(HOME=str(home), UV_CACHE_DIR=uv_cache)

    client = readme.take("python", section)
    _run_python(walk, shell, "sql_client.py", client.body, shown_prints(client))

    (console,) = commands(readme.take("sh", section))
    terminal = shell.terminal(console)
    walk.terminals.append(terminal)
    session = readme.take("text", section)
    follow(terminal, session, ports, prompt="demo> ")
    members = [ports.sub(f"127.0.0.1:{port}") for port in (9001, 9002, 9003)]
    shown = terminal.text.rsplit(".leader", 1)[1]
    with ClusterClient(members) as cluster:
        leader = cluster.leader()
    assert leader is not None and f"{leader.address} (id {leader.id})" in shown, shown
    assert "Error" not in terminal.text, terminal.tail()
    terminal.wait_for_prompt(STEP)
    terminal.press(CTRL_D)  # "Ctrl-D leaves"
    assert terminal.wait(STEP) == 0, terminal.tail()
    history = (home / ".nodehost_sql_history").read_text()
    typed = [line.removeprefix("demo> ") for line in session.lines() if line.startswith("demo> ")]
    assert all(line in history for line in typed), history

    run_steps(shell, readme.take("text", section), timeout=120)

    orm = readme.take("python", section)
    _run_python(walk, shell, "sql_orm.py", orm.body, shown_prints(orm))

    demo.type("")  # "press Enter to stop them"
    assert demo.wait(STEP) == 0, demo.tail()
    assert "Traceback" not in demo.text, demo.tail()


def _run_python(walk: Walk, shell: Shell, name: str, body: str, shown: list[str]) -> None:
    """Save a README program in the checkout and run it there with `uv run python`: it
    prints what its comments say, and nothing on stderr."""
    (walk.checkout / name).write_text(walk.ports.sub(body))
    done = shell.run(Command(f"uv run python {name}"), timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert program_stderr(done.stderr) == [], done.stderr
    assert done.stdout.splitlines() == [walk.ports.sub(line) for line in shown], done.stdout


_FIGURE_LINE = re.compile(
    r"^  (?P<label>\S.*?) +(?P<rate>[\d,]+)/s +p50 +(?P<p50>[\d.]+) ms +p99 +(?P<p99>[\d.]+) ms"
    r" +failures (?P<failures>\d+)(?: +CPU [\d,]+ us/op)?$",
    re.M,
)
# A table cell gives some of a printed line's figures, in the order printed.
_CELL_FIELDS = [r"[\d,]+/s", r"p50 \d+(\.\d+)? ms", r"p99 \d+(\.\d+)? ms", r"failures \d+"]


def _cell_fits(cell: str) -> bool:
    at = 0
    for item in cell.split(", "):
        for i in range(at, len(_CELL_FIELDS)):
            if re.fullmatch(_CELL_FIELDS[i], item):
                at = i + 1
                break
        else:
            return False
    return True


def test_sql_speed(walk: Walk) -> None:
    """The benchmark command, shortened (1 s per load, 4 clients: the flags the section
    names), prints every figure it promises; the section's table is made of its lines:
    each row a label the script prints (64 clients where it ran 4), each cell some of
    that line's figures in its format, the dqlite column its dqlite lines in order.
    (The figures themselves are one recorded run's, not checked.)"""
    section = f"{SQL} / Speed"
    (command,) = commands(walk.readme.take("sh", section))
    shell = walk.shell()
    clients = 4
    shell.substitutions["--seconds 10"] = f"--seconds 1 --clients {clients}"
    printed = shell.check(command, timeout=600)
    ours_text, _, rest = printed.partition("\ndqlite (")
    theirs_text, _, rest = rest.partition("\nraw ceilings")
    ours = [m.group("label") for m in _FIGURE_LINE.finditer(ours_text)]
    assert ours == [
        "sequential INSERT, 1 client",
        f"INSERT transactions, {clients} clients",
        f"linearizable point SELECT, {clients} clients",
        f"INSERT over the wire, {clients} conns",
    ], printed
    assert "write + fdatasync, one writer (measured now)" in rest, printed
    assert "\ngoals\n" in rest, printed
    measured = shutil.which("dqlite-benchmark") is not None
    theirs = [m.group("label") for m in _FIGURE_LINE.finditer(theirs_text)]
    if measured:
        assert theirs == ["kvwrite, 1 worker", f"kvwrite, {clients} workers"], printed
    else:  # the script shows the figures recorded on this machine kind instead
        assert theirs == [] and "(recorded; run with --dqlite to measure)" in theirs_text

    text = walk.readme.section_text(SQL)
    speed = text[text.index("### Speed") :]
    rows = [
        [cell.strip() for cell in line.strip("|").split("|")]
        for line in speed.splitlines()
        if line.startswith("| ") and not line.startswith("| load ")
    ]
    assert [row[0].replace("64", str(clients)) for row in rows] == ours, rows
    for row in rows:
        assert _cell_fits(row[1]), f"README Speed table: {row[1]!r} is not the script's figures"
    dqlite_cells = [row[2] for row in rows if row[2] != "-"]
    assert len(dqlite_cells) == 2, rows  # kvwrite with 1 worker, then with --clients
    for cell in dqlite_cells:
        assert _cell_fits(cell), f"README Speed table: {cell!r} is not the script's figures"


# ---------------------------------------------------------------- Testing your state machine


def test_testing_your_state_machine_under_the_simulation(walk: Walk) -> None:
    """The section's test file, saved under the name its first line gives, in the
    checkout, and run with the section's commands: every seed passes, and the replay
    command prints the same run each time it is run (one digest)."""
    section = "Testing your state machine under the simulation"
    block = walk.readme.take("python", section)
    first = block.lines()[0]
    name = first.removeprefix("# ").strip()
    assert first.startswith("# ") and name.endswith(".py"), first
    (walk.checkout / name).write_text(block.body)
    run_tests, replay = commands(walk.readme.take("sh", section))
    shell = walk.shell()
    printed = shell.check(run_tests, timeout=600)
    assert re.search(r"\b20 passed\b", printed), printed
    once, again = shell.check(replay, timeout=120), shell.check(replay, timeout=120)
    seed = replay.line.split("--seed ")[1]
    assert once.splitlines()[0].startswith(f"seed {seed}: ok;"), once
    assert once.split("digest ")[1].split()[0] == again.split("digest ")[1].split()[0]
    text = walk.readme.section_text(section)
    assert f"replay: {replay.line}" in " ".join(text.split()), "the report's last line"


# ---------------------------------------------------------------- example-kvstore


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return 0


def healthy(walk: Walk, readme_port: int) -> bool:
    return http_status(f"http://127.0.0.1:{walk.ports[readme_port]}/healthz") == 200


def test_kvstore(walk: Walk) -> None:
    readme, ports = walk.readme, walk.ports
    shell = walk.shell()
    top = "example-kvstore: a replicated JSON key-value store"

    section = f"{top} / One node, no configuration"
    start, *requests = commands(readme.take("sh", section))
    assert start.line == "uv run example-kvstore"
    # Its defaults, 127.0.0.1:11000 and :12000, moved by the documented variables.
    moved = {"HTTP_ADDR": f"127.0.0.1:{ports[11000]}", "RAFT_ADDR": f"127.0.0.1:{ports[12000]}"}
    node = walk.daemon(shell, start, "kv-one", **moved)
    wait_until("the one node", lambda: healthy(walk, 11000))
    for request in requests:
        shell.check(request)
    assert node.stop(signal.SIGINT) == 0, node.log()  # "Ctrl-C stops it"
    node = walk.daemon(shell, start, "kv-one", **moved)  # "started again, it finds the key"
    wait_until("the one node, restarted", lambda: healthy(walk, 11000))
    shell.check(requests[-1], retry_for=30)
    assert node.stop(signal.SIGINT) == 0, node.log()

    section = f"{top} / Three nodes on one machine"
    procfile = walk.checkout / "deploy" / "kvstore" / "Procfile"
    procfile.write_text(ports.sub(procfile.read_text()))  # the ports, moved
    first_of_three = next(
        line.split(":", 1)[1].strip()
        for line in procfile.read_text().splitlines()
        if line.startswith("kv1:")
    )
    refused = shell.run(Command(f"uv run {first_of_three}"))
    assert refused.returncode == 1, refused.stderr
    assert "kvstore-data/1 holds a cluster first started with PEERS=" in refused.stderr, (
        "the README predicts this refusal"
    )
    assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr

    remove, honcho, request = commands(readme.take("sh", section))
    assert remove.line == "rm -rf kvstore-data"
    shell.check(remove)
    three = walk.daemon(shell, honcho, "kv-procfile")
    for port in (11001, 11002, 11003):
        wait_until(f"Procfile node on {port}", lambda p=port: healthy(walk, p), timeout=120)  # type: ignore[misc]
    shell.check(request, retry_for=30)
    three.stop(signal.SIGINT)  # "Ctrl-C stops the three" (honcho itself exits 130)
    for node_id in (1, 2, 3):
        assert f"node {node_id} stopping" in three.log(), three.log()
    assert "Traceback" not in three.log(), three.log()

    assignment, *by_hand, read = commands(readme.take("sh", section))
    assert shell.assign(assignment)
    nodes = [walk.daemon(shell, c, f"kv-hand-{i}") for i, c in enumerate(by_hand, 1)]
    for port in (11001, 11002, 11003):
        wait_until(f"node on {port}", lambda p=port: healthy(walk, p))  # type: ignore[misc]
    shell.check(read, retry_for=30)  # they found their data again

    join, read, delete, health = commands(readme.take("sh", section))
    fourth = walk.daemon(shell, join, "kv-hand-4")
    wait_until("node 4", lambda: healthy(walk, 11004))
    shell.check(read, retry_for=60)
    shell.check(delete, retry_for=30)
    shell.check(health, retry_for=30)
    for daemon in [*nodes, fourth]:  # "SIGTERM ... exits 0"
        assert daemon.stop(signal.SIGTERM) == 0, daemon.log()
        assert "Traceback" not in daemon.log(), daemon.log()


# ---------------------------------------------------------------- discovery

DISCOVERY = "Discovery: nodes that find each other"


def test_discovery_with_etcd(walk: Walk) -> None:
    """Three nodes with the README's settings form one cluster through a real etcd on
    the README's port (moved); with etcd stopped, the leader logs the README's line."""
    readme, ports = walk.readme, walk.ports
    shell = walk.shell()
    etcd = EtcdServer(walk.root)
    etcd.client_port = ports[2379]
    etcd.start()
    try:
        export, *starts, curl = commands(readme.take("", f"{DISCOVERY} / With etcd"))
        words = shlex.split(export.line)
        assert words[0] == "export"
        for word in words[1:]:
            name, value = word.split("=", 1)
            shell.variables[name] = shell.script(value)
        nodes = [walk.daemon(shell, c, f"kv-disco-{i}") for i, c in enumerate(starts)]

        def three_members() -> bool:
            done = shell.run(curl)
            try:
                view = json.loads(done.stdout)
            except ValueError:
                return False
            return isinstance(view, dict) and len(view.get("members") or {}) == 3

        wait_until("the README's three nodes to form one cluster", three_members, 120)
        assert all(node.alive() for node in nodes), [node.log() for node in nodes]

        (warning,) = readme.take("", f"{DISCOVERY} / When the store is down").lines()
        expected = line_pattern(ports.sub(warning))
        etcd.stop()

        def said() -> bool:
            return any(re.search(expected, node.log()) for node in nodes)

        wait_until("a node to say the store is unreachable, as the README does", said, 60)
        for node in nodes:
            assert node.stop(signal.SIGTERM) == 0, node.log()
            assert "Traceback" not in node.log(), node.log()
    finally:
        etcd.stop()


def test_discovery_in_your_own_program(walk: Walk) -> None:
    """The section's fragment, run as written inside a program that supplies what it
    names (probe, join, nh, Counter, Config) against a real etcd: the lone node
    bootstraps, then its maintenance publishes it under the key."""
    block = walk.readme.take("python", f"{DISCOVERY} / In your own program")
    fragment = walk.ports.sub(block.body)
    etcd = EtcdServer(walk.root, name="etcd-program")
    etcd.client_port = walk.ports[2379]
    etcd.start()
    program = HARNESS.format(
        directory=str(walk.root / "disco-program"),
        raft=f"127.0.0.1:{walk.ports[63004]}",
        endpoint=etcd.endpoint,
        body=textwrap.indent(fragment, "    "),
    )
    script = walk.root / "disco_program.py"
    script.write_text(program)
    try:
        done = subprocess.run(
            [sys.executable, str(script)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        etcd.stop()
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == "published 4", done.stdout + done.stderr


HARNESS = """
import asyncio, json, urllib.request, base64
from nodehost import Config, NodeHost, NodeHostConfig, discovery
from statemachine import IStateMachine, Result


class Counter(IStateMachine):
    def __init__(self, shard_id, replica_id):
        self.count = 0
    def update(self, entry):
        self.count += 1
        return Result(self.count)
    def lookup(self, query):
        return self.count
    def save_snapshot(self, writer, files, stopped):
        writer.write(self.count.to_bytes(8, "big"))
    def recover_from_snapshot(self, reader, files, stopped):
        self.count = int.from_bytes(reader.read(8), "big")
    def close(self):
        pass


async def probe(address):
    raise discovery.PeerUnavailable(f"{{address}}: nobody else in this demo")


async def join(address):
    raise discovery.PeerUnavailable(f"{{address}}: nobody else in this demo")


def published():
    key = base64.b64encode(b"/nodehost/discovery/orders").decode()
    request = urllib.request.Request(
        "{endpoint}/v3/kv/range", data=json.dumps({{"key": key}}).encode(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=5) as answer:
        kvs = json.loads(answer.read()).get("kvs") or []
    if not kvs:
        return None
    return json.loads(base64.b64decode(kvs[0]["value"])).get("node_id")


async def fragment(nh):
{body}


async def main():
    nh = NodeHost(NodeHostConfig(node_host_dir="{directory}", raft_address="{raft}",
                                 rtt_millisecond=20))
    try:
        task = asyncio.create_task(fragment(nh))
        for _ in range(600):
            if task.done():
                task.result()
            if published() == 4 and nh.get_leader_id(1)[2]:
                break
            await asyncio.sleep(0.1)
        else:
            raise SystemExit("the key never named node 4")
        task.cancel()
        print("published", published())
    finally:
        nh.close()


asyncio.run(main())
"""


# ---------------------------------------------------------------- Operating a cluster

OPERATING = "Operating a cluster: the `nodehost` command"
KEYS = 30  # written before the quorum is lost; every one must survive the recovery


def _url(walk: Walk, readme_port: int, path: str) -> str:
    return f"http://127.0.0.1:{walk.ports[readme_port]}{path}"


def _request(
    walk: Walk, readme_port: int, path: str, method: str = "GET", body: object = None
) -> tuple[int, object]:
    """Status and JSON body of one request to the kvstore node on `readme_port`."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(_url(walk, readme_port, path), data=data, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status), json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), json.loads(exc.read() or b"null")


def _put(walk: Walk, readme_port: int, key: str, value: object) -> None:
    """A write the node acknowledges, retried while a leader is being elected."""

    def done() -> bool:
        return _request(walk, readme_port, f"/key/{key}", "PUT", value)[0] == 200

    wait_until(f"PUT {key} on {readme_port}", done, 30)


def _members(walk: Walk, readme_port: int) -> list[int]:
    cluster = _request(walk, readme_port, "/cluster")[1]
    assert isinstance(cluster, dict), cluster
    return sorted(int(node_id) for node_id in cluster["members"])


def _program_of(daemon: Daemon, name: str) -> int:
    """The program a README command started (uv runs it as a child): what `kill` names."""
    import psutil

    family = [daemon.pid, *(c.pid for c in psutil.Process(daemon.pid).children(True))]
    for pid in reversed(family):
        if name in " ".join(psutil.Process(pid).cmdline()):
            return pid
    raise AssertionError(f"no {name} among {family}")


def _stop_together(nodes: list[Daemon], signum: int) -> None:
    """Signal every node, then wait for each (a shutdown takes seconds; several at once
    take no longer): each exits 0 and logged no traceback."""
    with ThreadPoolExecutor(len(nodes)) as pool:
        codes = list(pool.map(lambda node: node.stop(signum), nodes))
    for node, code in zip(nodes, codes, strict=True):
        assert code == 0, node.log()
        assert "Traceback" not in node.log(), node.log()


def _start_kv(walk: Walk, node_id: int, command: Command) -> Daemon:
    assert walk.operator is not None
    node = walk.daemon(walk.operator, command, f"kv-operated-{node_id}")
    walk.kv_nodes[node_id] = node
    walk.kv_starts[node_id] = command
    return node


def _admin(walk: Walk, node_id: int) -> AdminClient:
    """The walk's own look at a node through its admin socket, closer than the README's
    tables (in process: one more `nodehost` process each time would cost a second)."""
    return AdminClient(f"unix:{walk.checkout / 'kvstore-data' / str(node_id) / 'admin.sock'}")


def test_operating_online(walk: Walk) -> None:
    """The three kvstore nodes started again with admin sockets, and the online commands
    in order against node 1's: what info and members show is this cluster (node 4 removed
    in the kvstore section), the transfer returns once replica 2 leads, a replica added
    and removed stays removed, and the export is a snapshot directory."""
    readme, ports = walk.readme, walk.ports
    section = f"{OPERATING} / Online: a running NodeHost"
    assert (walk.checkout / "kvstore-data" / "4").is_dir(), "runs after test_kvstore"
    walk.operator = shell = walk.shell()
    assignment, *starts = commands(readme.take("sh", section))
    assert shell.assign(assignment)
    for node_id, command in enumerate(starts, 1):
        _start_kv(walk, node_id, command)
    for port in (11001, 11002, 11003):
        wait_until(f"node on {port}", lambda p=port: healthy(walk, p), 120)  # type: ignore[misc]
    _put(walk, 11001, "before-export", "kept")

    printed = {}
    for command in commands(readme.take("sh", section)):
        if not shell.assign(command):
            printed[command.line.split()[3]] = shell.check(command, retry_for=30)
    raft = {i: f"127.0.0.1:{ports[12000 + i]}" for i in (1, 2, 3)}
    members = ",".join(f"{i}={raft[i]}" for i in (1, 2, 3))
    assert f"raft address  {raft[1]}" in printed["info"], printed["info"]
    assert re.search(rf"^1 +1 +\w+ +\d+ +\d+ +\d+ +{re.escape(members)}$", printed["info"], re.M)
    assert [line.split() for line in printed["members"].splitlines()[1:4]] == [
        [str(i), "voter", raft[i]] for i in (1, 2, 3)
    ], printed["members"]
    assert printed["members"].splitlines()[-1].endswith("removed: 4"), printed["members"]
    with _admin(walk, 1) as admin:
        assert admin.members(1).removed == [4, 9]
    exported = [p for p in (walk.checkout / "backup" / "shard1").iterdir()]
    assert len(exported) == 1 and (exported[0] / "snapshot.metadata").is_file(), exported
    _put(walk, 11002, "after-export", "lost by the rebuild")


def test_operating_offline(walk: Walk) -> None:
    """inspect on the directory node 4 left (the kvstore section removed it), then its
    data removed: the shard's removal is in its own log, so no --force is needed."""
    section = f"{OPERATING} / Offline: a stopped host's directory"
    shell = walk.operator
    assert shell is not None, "runs after test_operating_online"
    inspect, remove_data = commands(walk.readme.take("sh", section))
    table = shell.check(inspect)
    assert re.search(r"^1 +4 +\d+ ", table, re.M), table  # shard 1, replica 4
    shell.check(remove_data)
    assert tools.inspect(str(walk.checkout / "kvstore-data" / "4" / "nodehost")).replicas == []


def test_operating_runbook_quorum_lost_for_good(walk: Walk) -> None:
    """Nodes 2 and 3 SIGKILLed and their data deleted; node 1, without a quorum, answers
    a write 503; stopped, inspected, recovered as the only member, started as before,
    it serves every key it held, and two new nodes join it: three nodes again."""
    readme, ports = walk.readme, walk.ports
    section = f"{OPERATING} / Runbook: a shard lost its quorum for good"
    shell = walk.operator
    assert shell is not None, "runs after test_operating_online"
    nodes = walk.kv_nodes
    values = {f"key-{i}": {"n": i} for i in range(KEYS)}
    for key, value in values.items():
        _put(walk, 11001, key, value)
    wait_until(
        "every node to hold every key",
        lambda: all(
            _request(walk, port, f"/key/key-{KEYS - 1}?stale=1")[0] == 200
            for port in (11001, 11002, 11003)
        ),
    )
    for node_id in (2, 3):  # lost for good: kill -9, their disks gone
        os.kill(_program_of(nodes[node_id], "example-kvstore"), signal.SIGKILL)
        nodes[node_id].process.wait(STEP)
        shutil.rmtree(walk.checkout / "kvstore-data" / str(node_id))
    status, answer = _request(walk, 11001, "/key/no-quorum?timeout=1", "PUT", 1)
    assert status == 503, answer
    assert nodes[1].stop(signal.SIGINT) == 0, nodes[1].log()  # 1. Ctrl-C

    inspect, recover, start_1, start_5, start_6, read = commands(readme.take("sh", section))
    table = shell.check(inspect)  # 2.
    old = ",".join(f"{i}=127.0.0.1:{ports[12000 + i]}" for i in (1, 2, 3))
    assert re.search(rf"^1 +1 .* {re.escape(old)}$", table, re.M), table
    recovered = shell.check(recover).splitlines()  # 3.
    one = f"1=127.0.0.1:{ports[12001]}"
    assert len(recovered) == 1 and f"members {old} -> {one} (term " in recovered[0], recovered
    assert start_1.line == walk.kv_starts[1].line, "4. as before"
    _start_kv(walk, 1, start_1)
    wait_until("node 1, recovered", lambda: healthy(walk, 11001), 120)
    for key, value in values.items():
        assert _request(walk, 11001, f"/key/{key}") == (200, value), key
    with _admin(walk, 1) as admin:
        (shard,) = admin.info().shards
    assert shard.membership.voters == {1: f"127.0.0.1:{ports[12001]}"}, shard
    assert shard.membership.removed == [2, 3, 4, 9], shard

    for node_id, command, port in ((5, start_5, 11005), (6, start_6, 11006)):  # 5.
        _start_kv(walk, node_id, command)
        wait_until(f"node {node_id}", lambda p=port: healthy(walk, p), 120)  # type: ignore[misc]
    shell.check(read, retry_for=60)
    wait_until("three voting members", lambda: _members(walk, 11001) == [1, 5, 6], 60)
    for port in (11005, 11006):
        for key, value in values.items():
            assert _request(walk, port, f"/key/{key}") == (200, value), (port, key)
    _put(walk, 11006, "after-recovery", True)
    wait_until(
        "every node to see the write made after the recovery",
        lambda: all(
            _request(walk, port, "/key/after-recovery?stale=1")[0] == 200
            for port in (11001, 11005, 11006)
        ),
    )


def test_operating_rebuild_from_the_exported_snapshot(walk: Walk) -> None:
    """The three nodes stopped, the snapshot exported by the online commands imported on
    each with the new membership, the nodes started as they were: they serve the keys as
    of the snapshot (a key written after it is gone), as members 1, 5 and 6."""
    section = f"{OPERATING} / Rebuilding a shard from an exported snapshot"
    shell = walk.operator
    assert shell is not None, "runs after test_operating_online"
    _stop_together([walk.kv_nodes[node_id] for node_id in (1, 5, 6)], signal.SIGINT)
    assignment, *imports = commands(walk.readme.take("sh", section))
    assert shell.assign(assignment)
    for command in imports:
        assert "imported the snapshot at index " in shell.check(command)
    for node_id in (1, 5, 6):
        _start_kv(walk, node_id, walk.kv_starts[node_id])
    for port in (11001, 11005, 11006):
        wait_until(f"node on {port}", lambda p=port: healthy(walk, p), 120)  # type: ignore[misc]
    for port in (11001, 11005, 11006):
        assert _request(walk, port, "/key/k") == (200, "v")
        assert _request(walk, port, "/key/before-export") == (200, "kept")
        for key in ("after-export", "key-0", "after-recovery"):
            assert _request(walk, port, f"/key/{key}")[0] == 404, (port, key)
    assert _members(walk, 11005) == [1, 5, 6]
    _stop_together([walk.kv_nodes[node_id] for node_id in (1, 5, 6)], signal.SIGTERM)


def test_operating_hosts_addressed_by_id(walk: Walk) -> None:
    """The section's program, below the API section's Counter as it says, run as a
    program: three hosts by id, a fourth added by its id that catches up."""
    readme = walk.readme
    block = readme.take("python", f"{OPERATING} / Hosts that change address")
    counter = next(b for b in readme.blocks if b.section == "The API by example")
    assert "class Counter(IStateMachine)" in counter.body
    assert block.body.startswith("# Below the API section's Counter")
    _run_python(
        walk, walk.shell(), "by_id_demo.py", counter.body + "\n" + block.body, shown_prints(block)
    )


# ---------------------------------------------------------------- nothing left out


def test_every_block_of_the_readme_was_walked(walk: Walk) -> None:
    take_cluster_section(walk.readme)  # test_readme_cluster.py walks that section
    left = [f"line {b.line} ({b.section}, {b.kind})" for b in walk.readme.untaken("")]
    assert not left, f"README blocks no test follows: {left}"
