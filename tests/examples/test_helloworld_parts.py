"""example-helloworld's parts in one process: what a typed line means, the flags, the
state machine. The end-to-end test covers them together; these pin each rule."""

from __future__ import annotations

import io

import pytest

from examples.helloworld import main
from examples.helloworld.commands import (
    USAGE_ADD,
    USAGE_REMOVE,
    AddReplica,
    Exit,
    Propose,
    RemoveReplica,
    Usage,
    parse,
)
from examples.helloworld.main import DEFAULT_ADDRESSES, FlagError, options_from
from examples.helloworld.statemachine import ExampleStateMachine
from statemachine import Entry, SnapshotFileCollection


@pytest.mark.parametrize(
    ("line", "command"),
    [
        ("hello world", Propose("hello world")),
        ("  spaced  ", Propose("  spaced  ")),
        ("added milk", Propose("added milk")),
        ("", None),
        ("   ", None),
        ("exit", Exit()),
        (" exit ", Exit()),
        ("exit now", Propose("exit now")),
        ("add localhost:63100 4", AddReplica(4, "localhost:63100")),
        ("ADD localhost:63100 4", AddReplica(4, "localhost:63100")),
        ("add [::1]:5 7", AddReplica(7, "[::1]:5")),
        ("remove 4", RemoveReplica(4)),
        ("Remove  4 ", RemoveReplica(4)),
        # Malformed membership commands: a usage line, never a proposal.
        ("add", Usage(USAGE_ADD)),
        ("add x", Usage(USAGE_ADD)),
        ("add localhost:63100", Usage(USAGE_ADD)),
        ("add foo bar", Usage(USAGE_ADD)),
        ("add localhost:63100 four", Usage(USAGE_ADD)),
        ("add localhost:63100 0", Usage(USAGE_ADD)),
        ("add localhost:63100 -4", Usage(USAGE_ADD)),
        ("add localhost:63100 \uff14", Usage(USAGE_ADD)),  # a full-width 4
        ("add localhost:63100 18446744073709551616", Usage(USAGE_ADD)),
        ("add localhost 4", Usage(USAGE_ADD)),
        ("add localhost:0 4", Usage(USAGE_ADD)),
        ("add localhost:70000 4", Usage(USAGE_ADD)),
        ("add :5 4", Usage(USAGE_ADD)),
        ("add localhost:63100 4 5", Usage(USAGE_ADD)),
        ("remove", Usage(USAGE_REMOVE)),
        ("remove abc", Usage(USAGE_REMOVE)),
        ("remove 4 junk", Usage(USAGE_REMOVE)),
        ("remove 0", Usage(USAGE_REMOVE)),
    ],
)
def test_a_typed_line_means(line: str, command: object) -> None:
    assert parse(line) == command


def test_flags_single_and_double_dash_alike() -> None:
    for argv in (["-replicaid", "2"], ["--replicaid", "2"], ["--replicaid=2"]):
        options = options_from(argv, {})
        assert options.replica_id == 2
        assert options.address == "localhost:63002"
        assert options.members == DEFAULT_ADDRESSES
        assert not options.join
        assert options.data_dir == "example-data/helloworld-data/node2"
    assert options_from([], {}).replica_id == 1


def test_a_joining_replica_has_no_initial_members() -> None:
    options = options_from(["-replicaid", "4", "-addr", "localhost:63100", "-join"], {})
    assert (options.address, options.members, options.join) == ("localhost:63100", {}, True)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-replicaid", "5"], "node id must be 1, 2 or 3 when address is not specified"),
        (["-replicaid", "0"], "node id must be 1, 2 or 3 when address is not specified"),
        (["-replicaid", "0", "-addr", "localhost:1", "-join"], "positive"),
        (["-replicaid", "4", "-addr", "localhost:63100"], "then start this one with -join"),
        (["-replicaid", "1", "-addr", "localhost:7000"], "leave -addr out"),
    ],
)
def test_flag_errors_say_what_to_do(argv: list[str], message: str) -> None:
    with pytest.raises(FlagError, match=message):
        options_from(argv, {})


def test_run_prints_a_flag_error_and_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert main.run(["-replicaid", "5"]) == 1
    out, err = capsys.readouterr()
    assert (out, err) == ("", "node id must be 1, 2 or 3 when address is not specified\n")


def test_help_explains_the_flags_but_not_the_test_hook(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main.parse_flags(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for flag in ("-replicaid", "--replicaid", "-addr", "--addr", "-join", "--join", "-v"):
        assert flag in text
    assert "example-data" in text
    assert main.ADDRESSES_VARIABLE not in text


def test_the_address_variable_moves_the_three_builtin_addresses() -> None:
    env = {main.ADDRESSES_VARIABLE: "127.0.0.1:5001, 127.0.0.1:5002,127.0.0.1:5003"}
    options = options_from(["-replicaid", "3"], env)
    assert options.address == "127.0.0.1:5003"
    assert options.members == {1: "127.0.0.1:5001", 2: "127.0.0.1:5002", 3: "127.0.0.1:5003"}


@pytest.mark.parametrize("value", ["a:1,b:2", "a:1,b:2,c:3,d:4", "a:1,,c:3", "a:1,a:1,c:3"])
def test_a_bad_address_variable_is_refused(value: str) -> None:
    with pytest.raises(FlagError, match=main.ADDRESSES_VARIABLE):
        options_from([], {main.ADDRESSES_VARIABLE: value})


def test_state_machine_counts_prints_and_snapshots(capsys: pytest.CaptureFixture[str]) -> None:
    sm = ExampleStateMachine(128, 1)
    assert sm.update(Entry(index=5, cmd=b"hi there")).value == 8
    assert sm.update(Entry(index=6, cmd="héllo".encode())).value == 6
    assert capsys.readouterr().out == (
        "from ExampleStateMachine.Update(), msg: hi there, count:1\n"
        "from ExampleStateMachine.Update(), msg: héllo, count:2\n"
    )
    assert sm.lookup(b"") == (2).to_bytes(8, "little")
    snapshot = io.BytesIO()
    sm.save_snapshot(snapshot, SnapshotFileCollection(), lambda: False)
    assert snapshot.getvalue() == (2).to_bytes(8, "little")

    restored = ExampleStateMachine(128, 2)
    restored.recover_from_snapshot(io.BytesIO(snapshot.getvalue()), [], lambda: False)
    assert restored.count == 2
    restored.update(Entry(index=7, cmd=b"next"))
    assert capsys.readouterr().out.endswith("msg: next, count:3\n")


def test_a_snapshot_of_the_wrong_size_is_refused() -> None:
    sm = ExampleStateMachine(128, 1)
    with pytest.raises(ValueError, match="8 bytes"):
        sm.recover_from_snapshot(io.BytesIO(b"\x01\x02"), [], lambda: False)
    assert sm.count == 0
