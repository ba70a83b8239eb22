"""scripts/hostile_peer.py's arguments. The script itself runs against three
example-kvstore processes in test_kvstore_cluster.py::test_a_hostile_peer_stops_nothing
(it shares that module's cluster rather than starting one of its own)."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

import pytest
from kvstore_cluster import REPO


def _script() -> ModuleType:
    """The script as a module (its main takes argv), loaded once."""
    loaded = sys.modules.get("hostile_peer")
    if loaded is not None:
        return loaded
    spec = importlib.util.spec_from_file_location(
        "hostile_peer", REPO / "scripts" / "hostile_peer.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["hostile_peer"] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--raft", "nowhere"], "host:port"),
        (["--raft", "127.0.0.1:1", "--rounds", "0"], "--rounds at least 1"),
        (["--raft", "127.0.0.1:1", "--replica-ids", "one"], "--replica-ids"),
        ([], "--raft"),
    ],
)
def test_bad_arguments_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        _script().main(argv)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err
