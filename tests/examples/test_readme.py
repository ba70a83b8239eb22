"""The README, followed top to bottom on a fresh copy of the repository, as a new user
follows it: every shell step it shows is run, in order, as the README writes it; every
transcript is checked against what the program printed; the API section's snippets run
as one program, pasted in order; the tutorial's code excerpts are found, line by line,
in the files they quote.

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
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pty_terminal import CTRL_C, CTRL_D, Terminal
from readme_walk import (
    REPO,
    STEP,
    Command,
    Daemon,
    Ports,
    Readme,
    Shell,
    commands,
    follow,
    kill_terminal,
    line_pattern,
    missing_from,
    wait_until,
)

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
    # uv's own lines, when this `uv run` is the one that installs the project.
    installer = re.compile(
        r"^(Using CPython|Creating virtual environment|\s*(Building|Built) nodehost|"
        r"Installed \d+ packages|Resolved \d+ packages|Prepared \d+ packages)"
    )
    stderr = [line for line in done.stderr.splitlines() if not installer.match(line)]
    assert stderr == [], done.stderr
    printed = done.stdout.splitlines()
    assert printed[:2] == ["1", "1"] and printed[2] in ("0", "1"), printed
    assert printed[3:7] == ["True 1", "1 1", "2", "[1, 2, 3, 4]"], printed
    assert re.fullmatch(r"a snapshot at index \d+ already exists", printed[7]), printed


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


# ---------------------------------------------------------------- nothing left out


def test_every_block_of_the_readme_was_walked(walk: Walk) -> None:
    left = [f"line {b.line} ({b.section}, {b.kind})" for b in walk.readme.untaken("")]
    assert not left, f"README blocks no test follows: {left}"
