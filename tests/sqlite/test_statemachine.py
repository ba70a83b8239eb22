"""The SQL state machine alone: replicas fed the same entries in different batches, with
restarts and snapshot transfers between them, end with identical files.

The workloads are random SQL using every source of non-determinism SQLite has
(random(), randomblob(), the clock in functions and column defaults, connection
counters), statements that fail, and transactions whose expectations conflict.
"""

from __future__ import annotations

import io
import random
from pathlib import Path

import pytest

from nodehost.sqlite.command import (
    Command,
    CommandKind,
    Observed,
    Outcome,
    Statement,
    StatementResult,
    decode_result,
    encode_command,
)
from nodehost.sqlite.database import outcome_digest
from nodehost.sqlite.statemachine import Read, Speculate, SQLStateMachine
from statemachine import Entry
from tests.conftest import IN_CI

SCHEMA = [
    "CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, k TEXT UNIQUE, v BLOB, "
    "created TEXT DEFAULT CURRENT_TIMESTAMP, stamp REAL DEFAULT (julianday('now')))",
    "CREATE TABLE IF NOT EXISTS log (n INTEGER, what TEXT)",
    "CREATE TRIGGER IF NOT EXISTS t_log AFTER INSERT ON t BEGIN "
    "INSERT INTO log VALUES (random(), datetime('now')); END",
]


def _statement(rng: random.Random) -> Statement:
    choice = rng.randrange(10)
    key = f"k{rng.randrange(40)}"
    if choice == 0:
        return Statement(
            "INSERT INTO t (k, v) VALUES (?, randomblob(?))", [(key, rng.randrange(1, 20))]
        )
    if choice == 1:
        return Statement("INSERT OR REPLACE INTO t (k, v) VALUES (?, random())", [(key,)])
    if choice == 2:
        return Statement(
            "UPDATE t SET v = hex(randomblob(4)) || ? WHERE k = ?", [(changes_text(rng), key)]
        )
    if choice == 3:
        return Statement("DELETE FROM t WHERE k = ?", [(key,)])
    if choice == 4:
        return Statement(
            "INSERT INTO log VALUES (changes(), total_changes() || last_insert_rowid())"
        )
    if choice == 5:
        return Statement(
            "INSERT INTO log VALUES (?, strftime('%s','now') || unixepoch())", [(rng.random(),)]
        )
    if choice == 6:
        return Statement("INSERT INTO t (id, k) VALUES (?, ?)", [(rng.randrange(1, 30), key)])
    if choice == 7:
        return Statement(
            "INSERT INTO t (k) VALUES (?) RETURNING id, created", [(key,), (key + "x",)]
        )
    if choice == 8:
        return Statement("SELEKT nonsense")
    return Statement("INSERT OR ROLLBACK INTO t (id, k) VALUES (1, ?)", [(key,)])


def changes_text(rng: random.Random) -> str:
    return "".join(rng.choice("abc") for _ in range(3))


def _workload(seed: int, size: int) -> list[bytes]:
    rng = random.Random(seed)
    commands = [
        encode_command(
            Command(
                CommandKind.EXECUTE, 1_700_000_000_000, 1, "main", [Statement(s) for s in SCHEMA]
            )
        )
    ]
    for i in range(size):
        count = 1 if rng.random() < 0.6 else rng.randrange(2, 5)
        statements = [_statement(rng) for _ in range(count)]
        if rng.random() < 0.2:
            # A transaction that claims to have seen a statement succeed with a rowcount:
            # it commits only where that still holds.
            statements[0].observed = Observed.ERROR | Observed.ROWCOUNT
            statements[0].expect = outcome_digest(
                statements[0].observed, StatementResult(rowcount=1), "INSERT"
            )
        database = "main" if rng.random() < 0.8 else "other"
        if database == "other":
            statements.insert(
                0, Statement("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, k, v)")
            )
        command = Command(
            CommandKind.EXECUTE,
            1_700_000_000_000 + i * 1_234 + rng.randrange(1000),
            rng.getrandbits(64),
            database,
            statements,
        )
        if rng.random() < 0.3:
            command.client_id, command.sequence = rng.randrange(1, 8), i + 1
        if rng.random() < 0.25:
            # Group commit: several clients' commands in one entry.
            parts = [command] + [
                Command(
                    CommandKind.EXECUTE,
                    1_700_000_000_000 + i,
                    rng.getrandbits(64),
                    "main",
                    [_statement(rng)],
                )
                for _ in range(rng.randrange(1, 4))
            ]
            command = Command(CommandKind.BATCH, 0, 0, batch=parts)
        commands.append(encode_command(command))
    return commands


def _apply_all(sm: SQLStateMachine, commands: list[bytes], start: int, rng: random.Random) -> None:
    """Apply commands[start:] (entry index = position + 1) in random batch sizes."""
    position = start
    while position < len(commands):
        size = rng.randrange(1, 12)
        batch = [
            Entry(i + 1, commands[i]) for i in range(position, min(position + size, len(commands)))
        ]
        sm.update(batch)
        position += len(batch)


def _open(path: Path) -> tuple[SQLStateMachine, int]:
    sm = SQLStateMachine(path)
    return sm, sm.open(lambda: False)


@pytest.mark.parametrize("seed", range(2 if IN_CI else 4))
def test_replicas_are_identical_after_random_workloads_with_restarts_and_snapshots(
    tmp_path: Path, seed: int
) -> None:
    commands = _workload(seed, 120 if IN_CI else 300)
    rng = random.Random(seed)
    # Replica A applies everything in one go.
    a, applied = _open(tmp_path / "a")
    assert applied == 0
    _apply_all(a, commands, 0, rng)
    # Replica B is stopped twice on the way (once after a sync) and replays what its files lack.
    b, _ = _open(tmp_path / "b")
    third = len(commands) // 3
    _apply_all(b, commands[:third], 0, rng)
    b.close()
    b, applied = _open(tmp_path / "b")
    assert applied <= third
    _apply_all(b, commands[: 2 * third], applied, rng)
    b.sync()
    b.close()
    b, applied = _open(tmp_path / "b")
    assert applied == 2 * third
    _apply_all(b, commands, applied, rng)
    # Replica C starts from A's snapshot taken half-way (a fresh A' replays to there).
    half = len(commands) // 2
    source, _ = _open(tmp_path / "source")
    _apply_all(source, commands[:half], 0, rng)
    stream = io.BytesIO()
    source.save_snapshot(source.prepare_snapshot(), stream, lambda: False)
    c, _ = _open(tmp_path / "c")
    _apply_all(c, commands[:5], 0, rng)  # some state that the snapshot replaces
    stream.seek(0)
    c.recover_from_snapshot(stream, lambda: False)
    assert c.applied_index == half
    _apply_all(c, commands, half, rng)
    c.close()
    c, applied = _open(tmp_path / "c")
    _apply_all(c, commands, applied, rng)

    assert a.get_hash() == b.get_hash() == c.get_hash()
    rows = a.lookup(Read("main", [Statement("SELECT count(*), count(DISTINCT created) FROM t")]))
    assert rows[0].rows[0][0] > 0
    for sm in (a, b, c, source):
        sm.close()


def _command(*sql: str, timestamp: int = 1_700_000_000_000, seed: int = 7) -> bytes:
    return encode_command(
        Command(CommandKind.EXECUTE, timestamp, seed, "db", [Statement(s) for s in sql])
    )


def test_clock_and_randomness_come_from_the_command(tmp_path: Path) -> None:
    sm, _ = _open(tmp_path / "sm")
    sm.update([Entry(1, _command("CREATE TABLE x (a, b DEFAULT CURRENT_TIMESTAMP)"))])
    entries = sm.update(
        [
            Entry(
                2,
                _command(
                    "INSERT INTO x (a) VALUES (datetime('now')) RETURNING a, b, random(), hex(randomblob(4))",
                    timestamp=86_400_000,
                    seed=42,
                ),
            )
        ]
    )
    assert entries[0].result is not None
    result = decode_result(entries[0].result.data)
    assert result.outcome is Outcome.COMMITTED
    row = result.results[0].rows[0]
    assert row[0] == row[1] == "1970-01-02 00:00:00"
    again = sm.update(
        [Entry(3, _command("SELECT random(), hex(randomblob(4))", timestamp=86_400_000, seed=42))]
    )
    assert again[0].result is not None
    assert decode_result(again[0].result.data).results[0].rows[0] == row[2:]
    sm.close()


def test_a_failing_statement_takes_its_whole_command_back_and_nothing_else(tmp_path: Path) -> None:
    sm, _ = _open(tmp_path / "sm")
    sm.update([Entry(1, _command("CREATE TABLE u (id INTEGER PRIMARY KEY)"))])
    entries = sm.update(
        [
            Entry(2, _command("INSERT INTO u VALUES (1)")),
            Entry(3, _command("INSERT INTO u VALUES (2)", "INSERT INTO u VALUES (1)")),
            Entry(4, _command("INSERT OR ROLLBACK INTO u VALUES (1)")),
            Entry(5, _command("INSERT INTO u VALUES (3)")),
        ]
    )
    outcomes = [decode_result(e.result.data) for e in entries if e.result is not None]
    assert [o.outcome for o in outcomes] == [
        Outcome.COMMITTED,
        Outcome.FAILED,
        Outcome.FAILED,
        Outcome.COMMITTED,
    ]
    assert "UNIQUE constraint failed" in outcomes[1].message
    rows = sm.lookup(Read("db", [Statement("SELECT id FROM u ORDER BY id")]))[0].rows
    assert rows == [(1,), (3,)]
    sm.close()


def test_speculation_sees_own_writes_and_leaves_no_trace(tmp_path: Path) -> None:
    sm, _ = _open(tmp_path / "sm")
    sm.update([Entry(1, _command("CREATE TABLE s (a)"))])
    before = sm.get_hash()
    owner = object()
    statements = [Statement("INSERT INTO s VALUES (1)")]
    results, ended = sm.lookup(
        Speculate(owner, Command(CommandKind.EXECUTE, 1, 1, "db", statements))
    )
    assert not ended and results[0].rowcount == 1
    statements.append(Statement("SELECT count(*) FROM s"))
    results, _ = sm.lookup(Speculate(owner, Command(CommandKind.EXECUTE, 1, 1, "db", statements)))
    assert len(results) == 1 and results[0].rows == [(1,)]  # ran only the new statement
    assert sm.get_hash() == before
    assert sm.lookup(Read("db", [Statement("SELECT count(*) FROM s")]))[0].rows == [(0,)]
    sm.close()


def test_malformed_commands_are_refused_without_effect(tmp_path: Path) -> None:
    sm, _ = _open(tmp_path / "sm")
    entries = sm.update([Entry(1, b"\x01\x01garbage"), Entry(2, b""), Entry(3, _command())])
    for entry in entries:
        assert entry.result is not None
        assert decode_result(entry.result.data).outcome is Outcome.REJECTED
    assert sm.database_names() == []
    sm.close()


def _session_command(sequence: int, *sql: str) -> bytes:
    return encode_command(
        Command(
            CommandKind.EXECUTE,
            1,
            1,
            "db",
            [Statement(s) for s in sql],
            client_id=77,
            sequence=sequence,
        )
    )


def test_a_retried_session_write_is_applied_once(tmp_path: Path) -> None:
    sm, _ = _open(tmp_path / "sm")
    sm.update([Entry(1, _command("CREATE TABLE r (id INTEGER PRIMARY KEY, v)"))])
    entries = sm.update(
        [
            Entry(2, _session_command(1, "INSERT INTO r (v) VALUES ('once')")),
            Entry(3, _session_command(1, "INSERT INTO r (v) VALUES ('once')")),  # the retry
            Entry(4, _session_command(2)),  # a COMMIT probe for a sequence never applied
            Entry(5, _session_command(3, "INSERT INTO r (v) VALUES ('next')")),
            Entry(6, _session_command(2, "INSERT INTO r (v) VALUES ('stale')")),
            Entry(7, _session_command(9)),  # a COMMIT whose transaction was lost
        ]
    )
    outcomes = [decode_result(e.result.data) for e in entries if e.result is not None]
    assert outcomes[0].outcome is Outcome.COMMITTED and outcomes[1] == outcomes[0]
    assert outcomes[2].outcome is Outcome.FAILED  # sequence 2 was never applied before
    assert outcomes[3].outcome is Outcome.COMMITTED
    assert outcomes[4].message == "stale request"
    assert outcomes[5].message == "cannot commit - no transaction is active"
    rows = sm.lookup(Read("db", [Statement("SELECT v FROM r ORDER BY id")]))[0].rows
    assert rows == [("once",), ("next",)]
    sm.close()


def test_results_and_commands_round_trip_and_hostile_bytes_are_refused() -> None:
    from nodehost.sqlite.command import CommandError, CommandResult, decode_command, encode_result

    plain = CommandResult(Outcome.COMMITTED, [StatementResult(1, 5)])
    rich = CommandResult(
        Outcome.FAILED,
        [StatementResult(-1, 0, ["a"], ["TEXT"], [("x",), (None,)], 19, "no")],
        0,
        "why",
        19,
    )
    for result in (plain, rich):
        assert decode_result(encode_result(result)) == result
    command = Command(
        CommandKind.EXECUTE,
        5,
        6,
        "db",
        [
            Statement("SELECT ?, ?", [(1, "t"), (2.5, b"\x00")], Observed.ROWS, b"e"),
            Statement("SELECT :a", [(("a", None),)]),
        ],
        client_id=9,
        sequence=10,
    )
    data = encode_command(command)
    assert decode_command(data) == command
    rng = random.Random(3)
    for _ in range(2000):
        broken = bytearray(data)
        cut = rng.randrange(len(broken))
        if rng.random() < 0.5:
            del broken[cut:]
        else:
            broken[cut] = rng.randrange(256)
        try:
            decode_command(bytes(broken))
        except CommandError:
            pass
