"""Cluster tests: the `daemons` fixture starts daemon processes and stops them all (by
PID) when the test ends, `module_daemons` when the module's last test ends (for the
modules whose tests take one cluster through several steps); a failing test shows the
logs of its daemons."""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.processes import DaemonProcess, microd, program


class Daemons:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.started: list[DaemonProcess] = []

    def microd(self, name: str, *flags: str, heartbeat: str = "1s") -> DaemonProcess:
        return self._start(microd(self.root / name, "--heartbeat", heartbeat, "--verbose", *flags))

    def program(self, name: str, *flags: str) -> DaemonProcess:
        return self._start(program(self.root / name, *flags))

    def _start(self, daemon: DaemonProcess) -> DaemonProcess:
        self.started.append(daemon)
        return daemon.start()

    def stop_all(self) -> None:
        for daemon in self.started:
            daemon.kill()

    def logs(self) -> str:
        return "\n".join(f"===== {d.state_dir.name} =====\n{d.logs()}" for d in self.started)


@pytest.fixture
def daemons(tmp_path: Path) -> Generator[Daemons, None, None]:
    group = Daemons(tmp_path)
    try:
        yield group
    finally:
        group.stop_all()


@pytest.fixture(scope="module")
def module_daemons(tmp_path_factory: pytest.TempPathFactory) -> Generator[Daemons, None, None]:
    group = Daemons(tmp_path_factory.mktemp("daemons"))
    try:
        yield group
    finally:
        group.stop_all()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, None]:
    outcome = yield
    report = outcome.get_result()
    if report.failed and report.when in ("setup", "call"):
        groups: list[Daemons] = []
        for value in getattr(item, "funcargs", {}).values():
            group = value if isinstance(value, Daemons) else getattr(value, "daemons", None)
            if isinstance(group, Daemons) and group not in groups:
                groups.append(group)
                report.sections.append(("daemon logs", group.logs()))
