"""One client's conversation with one database: statements, transactions, consistency.

Shared by the embedded PEP 249 connection and the wire server, so both answer alike.

Rules:
- Outside a transaction a write is one replicated command (committed or failed whole,
  its result computed by the state machine); a read runs on this member's copy at the
  session's consistency level.
- A transaction (BEGIN ... COMMIT, or a SAVEPOINT outside one) is kept here and
  replicated at COMMIT as ONE command, so it applies atomically on every replica or not
  at all. Each statement also runs ahead on this member's copy, in a savepoint that is
  always rolled back ("speculation"), so reads inside the transaction see its own
  writes, errors are raised by the statement that causes them, and rowcount/lastrowid
  are known at once.
- Optimistic concurrency: what the client has seen of a statement's outcome (success or
  error, and the rowcount, lastrowid or rows it looked at) travels with the command; at
  COMMIT each replica checks it got the same outcome. If another client's write changed
  it meanwhile, the transaction is refused as a whole with OperationalError
  (SQLITE_BUSY_SNAPSHOT) and the client may retry. A transaction that only writes and
  looks at nothing but success never conflicts: concurrent inserts all commit, in one
  Raft entry batch, and none fails as busy.
- A transaction that reads without writing commits locally when all its reads came from
  one uninterrupted run ahead (one consistent state); otherwise it is validated through
  the log like a write.
- Consistency of reads outside a transaction: "strong" (linearizable: a ReadIndex round
  first), "weak" (this member's copy when it leads, no quorum round; from a follower it
  is served as "strong"), "none" (this member's copy as it is: it may lag the leader by
  what is not yet applied here, without bound while the member is cut off).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol, TypeVar

import apsw

from nodehost.sqlite import errors, policy
from nodehost.sqlite.command import (
    Command,
    CommandKind,
    CommandResult,
    Observed,
    Outcome,
    Parameters,
    Statement,
    StatementResult,
)
from nodehost.sqlite.database import outcome_digest
from nodehost.sqlite.statements import Control, StatementInfo, leading_keyword

SQLITE_BUSY_SNAPSHOT = 517
T = TypeVar("T")


class Consistency(StrEnum):
    STRONG = "strong"
    WEAK = "weak"
    NONE = "none"

    @classmethod
    def parse(cls, value: object) -> Consistency:
        try:
            return cls(str(value))
        except ValueError:
            raise errors.ProgrammingError(
                f"unknown consistency {value!r}: use 'strong', 'weak' or 'none'"
            ) from None


class Backend(Protocol):
    """What a session needs from the member that serves it (see App)."""

    def classify(self, database: str, sql: str, fresh: bool, timeout: float) -> StatementInfo: ...
    def read(
        self,
        database: str,
        statements: list[Statement],
        consistency: Consistency,
        timeout: float,
    ) -> list[StatementResult]: ...
    def write(self, command: Command, timeout: float) -> CommandResult: ...
    def speculate(
        self,
        owner: object,
        command: Command,
        fresh: bool,
        consistency: Consistency,
        timeout: float,
    ) -> tuple[list[StatementResult], bool]: ...
    def release(self, owner: object, database: str) -> None: ...


@dataclass(slots=True)
class Execution:
    """One execute() call's outcome; `observe` records what the client looked at."""

    result: StatementResult
    statement: Statement | None = None  # set inside a transaction
    keyword: str = ""

    def observe(self, bits: int) -> None:
        statement = self.statement
        if statement is None or statement.observed | bits == statement.observed:
            return
        statement.observed |= bits
        statement.expect = outcome_digest(statement.observed, self.result, self.keyword)


@dataclass
class _Transaction:
    owner: object
    timestamp_ms: int
    seed: int
    implicit: bool
    statements: list[Statement] = field(default_factory=list)
    executions: dict[int, Execution] = field(default_factory=dict)  # by statement position
    savepoints: list[str] = field(default_factory=list)
    started_by_savepoint: bool = False
    writes: bool = False
    runs: int = 0  # how many times speculation started from the beginning
    aborted: str = ""


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _seed() -> int:
    return int.from_bytes(os.urandom(8), "big")


class Session:
    def __init__(
        self,
        backend: Backend,
        database: str,
        *,
        consistency: Consistency = Consistency.STRONG,
        timeout: float = 10.0,
    ) -> None:
        self.backend = backend
        self.database = database
        self.consistency = consistency
        self.timeout = timeout
        self._transaction: _Transaction | None = None
        # Exactly-once: writes carry this session and a sequence, so the backend may
        # retry one whose answer was lost (a leader change) and it still applies once.
        # A remote client may name its own session and sequences (the wire protocol's
        # CLIENT id and request tags): `execute(..., sequence=S)` then uses S.
        self.client_id = int.from_bytes(os.urandom(8), "big") >> 1 or 1
        self._sequence = 0
        self._given_sequence: int | None = None

    @property
    def in_transaction(self) -> bool:
        return self._transaction is not None

    # ------------------------------------------------------------------ statements

    def execute(
        self,
        sql: str,
        parameter_sets: Sequence[Parameters],
        *,
        consistency: Consistency | None = None,
        single: bool = True,
        sequence: int | None = None,
    ) -> Execution:
        """Run one statement (with one or more parameter sets). `sequence` numbers a
        remote client's request in its session (exactly-once, see wire/README.md)."""
        self._given_sequence = sequence
        try:
            return self._execute(sql, parameter_sets, consistency, single)
        finally:
            self._given_sequence = None

    def autocommit_command(self, sql: str, parameters: Parameters, sequence: int | None) -> Command:
        """The command of one write outside a transaction, numbered in the session
        (for callers that propose it themselves, asynchronously)."""
        command = Command(
            CommandKind.EXECUTE, _now_ms(), _seed(), self.database, [Statement(sql, [parameters])]
        )
        if sequence is not None:
            command.client_id, command.sequence = self.client_id, sequence
        else:
            self._sequence += 1
            command.client_id, command.sequence = self.client_id, self._sequence
        return command

    def check_parameters(self, info: StatementInfo, parameters: object) -> Parameters:
        return self._check_parameters(info, parameters)

    @staticmethod
    def failure(outcome: CommandResult) -> errors.Error:
        return Session._failure(outcome)

    def prepare(self, sql: str) -> StatementInfo:
        """Classify the first statement of `sql` (errors as `execute` raises them)."""
        return self._classify(sql)

    def _execute(
        self,
        sql: str,
        parameter_sets: Sequence[Parameters],
        consistency: Consistency | None,
        single: bool,
    ) -> Execution:
        if not isinstance(sql, str):
            raise errors.ProgrammingError(f"SQL must be a str, not {type(sql).__name__}")
        if "\x00" in sql:
            raise errors.ProgrammingError("the SQL statement contains a null character")
        info = self._classify(sql)
        if info.has_tail and single:
            raise errors.ProgrammingError("You can only execute one statement at a time.")
        parameter_sets = [self._check_parameters(info, p) for p in parameter_sets] or [()]
        if info.control is not Control.NONE:
            return self._control(info, sql)
        statement = Statement(sql, list(parameter_sets))
        keyword = leading_keyword(sql)
        transaction = self._transaction
        if transaction is not None:
            return self._in_transaction(transaction, statement, keyword, info.readonly)
        if info.readonly:
            level = consistency or self.consistency
            result = self._call(
                lambda: self.backend.read(self.database, [statement], level, self.timeout)
            )[0]
            return Execution(result, None, keyword)
        command = Command(CommandKind.EXECUTE, _now_ms(), _seed(), self.database, [statement])
        outcome = self._write(command)
        if outcome.outcome is not Outcome.COMMITTED:
            raise self._failure(outcome)
        return Execution(outcome.results[0], None, keyword)

    def _classify(self, sql: str) -> StatementInfo:
        try:
            return self.backend.classify(self.database, sql, False, self.timeout)
        except apsw.Error as exc:
            if _is_syntax_error(exc):
                raise policy.error_for(policy.result_code(exc), policy.message_of(exc)) from None
            if self._transaction is not None:
                # It may name a table the transaction created: speculation will tell.
                keyword = leading_keyword(sql)
                return StatementInfo(
                    sql, keyword in ("SELECT", "VALUES"), Control.NONE, "", -1, (), False, False
                )
        try:
            return self.backend.classify(
                self.database, sql, True, self.timeout
            )  # after catching up
        except apsw.Error as exc:
            raise policy.error_for(policy.result_code(exc), policy.message_of(exc)) from None

    @staticmethod
    def _check_parameters(info: StatementInfo, parameters: object) -> Parameters:
        if isinstance(parameters, dict):
            names = [n for n in info.parameter_names if n is not None]
            if info.parameter_count >= 0 and len(names) != info.parameter_count:
                raise errors.ProgrammingError(
                    "named parameters given for a statement with positional placeholders"
                )
            missing = [n for n in names if n not in parameters]
            if missing:
                raise errors.ProgrammingError(
                    f"You did not supply a value for binding parameter :{missing[0]}."
                )
            return tuple((n, parameters[n]) for n in dict.fromkeys(names))
        if isinstance(parameters, str | bytes) or not isinstance(parameters, Sequence):
            raise errors.ProgrammingError(
                f"parameters are a sequence or a dict, not {type(parameters).__name__}"
            )
        values = tuple(parameters)
        if info.parameter_count >= 0 and len(values) != info.parameter_count:
            raise errors.ProgrammingError(
                f"Incorrect number of bindings supplied. The current statement uses "
                f"{info.parameter_count}, and there are {len(values)} supplied."
            )
        for value in values:
            if value is not None and not isinstance(
                value, int | float | str | bytes | bytearray | memoryview
            ):
                raise errors.InterfaceError(
                    f"Error binding parameter: type {type(value).__name__} is not supported"
                )
            if isinstance(value, int) and not -(2**63) <= value < 2**63:
                raise errors.DataError(
                    f"Python int too large to convert to SQLite INTEGER: {value}"
                )
        return values

    # ------------------------------------------------------------------ transactions

    def begin(self, *, implicit: bool = False) -> None:
        if self._transaction is not None:
            raise errors.OperationalError("cannot start a transaction within a transaction")
        self._transaction = _Transaction(object(), _now_ms(), _seed(), implicit)

    def commit(self) -> list[StatementResult]:
        """Commit the open transaction (nothing to do without one)."""
        transaction = self._transaction
        if transaction is None:
            return []
        try:
            if transaction.aborted:
                raise errors.OperationalError(transaction.aborted)
            if not transaction.writes and transaction.runs <= 1:
                return [e.result for e in transaction.executions.values()]
            command = Command(
                CommandKind.EXECUTE,
                transaction.timestamp_ms,
                transaction.seed,
                self.database,
                transaction.statements,
            )
            outcome = self._write(command)
            if outcome.outcome is not Outcome.COMMITTED:
                raise self._failure(outcome)
            for position, execution in transaction.executions.items():
                if position < len(outcome.results):
                    execution.result = outcome.results[position]
                execution.statement = None
            return outcome.results
        finally:
            self._end(transaction)

    def rollback(self) -> None:
        transaction = self._transaction
        if transaction is not None:
            self._end(transaction)

    def _end(self, transaction: _Transaction) -> None:
        self._transaction = None
        try:
            self.backend.release(transaction.owner, self.database)
        except Exception:
            pass  # the member is closing: nothing left to release

    def _control(self, info: StatementInfo, sql: str) -> Execution:
        transaction = self._transaction
        control = info.control
        done = Execution(StatementResult())
        if control is Control.BEGIN:
            self.begin()
            return done
        if control is Control.COMMIT:
            if transaction is None and self._given_sequence is not None:
                # A retried COMMIT whose transaction's leader failed: did it commit?
                probe = Command(CommandKind.EXECUTE, _now_ms(), 0, self.database, [])
                outcome = self._write(probe)
                if outcome.outcome is not Outcome.COMMITTED:
                    raise self._failure(outcome)
                return done
            if transaction is None:
                raise errors.OperationalError("cannot commit - no transaction is active")
            self.commit()
            return done
        if control is Control.ROLLBACK:
            if transaction is None:
                raise errors.OperationalError("cannot rollback - no transaction is active")
            self.rollback()
            return done
        name = info.savepoint.lower()
        if control is Control.SAVEPOINT:
            if name.startswith("nodehost_"):
                raise errors.NotSupportedError(
                    "savepoint names starting with nodehost_ are reserved"
                )
            if transaction is None:
                self.begin()
                transaction = self._transaction
                assert transaction is not None
                transaction.started_by_savepoint = True
            transaction.savepoints.append(name)
            transaction.statements.append(Statement(sql))
            return done
        if transaction is None or name not in transaction.savepoints:
            raise errors.OperationalError(f"no such savepoint: {info.savepoint}")
        position = len(transaction.savepoints) - 1 - transaction.savepoints[::-1].index(name)
        if control is Control.RELEASE:
            del transaction.savepoints[position:]
            if not transaction.savepoints and transaction.started_by_savepoint:
                self.commit()
                return done
            transaction.statements.append(Statement(sql))
        else:  # ROLLBACK TO: the savepoint stays
            del transaction.savepoints[position + 1 :]
            transaction.statements.append(Statement(sql))
            self._speculate(transaction, observe=False)
        return done

    def _in_transaction(
        self, transaction: _Transaction, statement: Statement, keyword: str, readonly: bool
    ) -> Execution:
        if transaction.aborted:
            raise errors.OperationalError(transaction.aborted)
        transaction.statements.append(statement)
        if not readonly:
            transaction.writes = True
        result = self._speculate(transaction, observe=True)
        execution = Execution(result, statement, keyword)
        transaction.executions[len(transaction.statements) - 1] = execution
        execution.observe(Observed.ERROR | (Observed.ROWS if readonly else 0))
        if result.failed:
            raise policy.error_for(result.error_code, result.error_message)
        return execution

    def _speculate(self, transaction: _Transaction, *, observe: bool) -> StatementResult:
        command = Command(
            CommandKind.EXECUTE,
            transaction.timestamp_ms,
            transaction.seed,
            self.database,
            transaction.statements,
        )
        fresh = transaction.runs == 0
        results, ended = self._call(
            lambda: self.backend.speculate(
                transaction.owner, command, fresh, self.consistency, self.timeout
            )
        )
        if len(results) != 1 or len(transaction.statements) == 1:
            transaction.runs += 1
            self._recheck(transaction, results)
        result = results[-1] if results else StatementResult()
        if ended:
            transaction.aborted = (
                f"the transaction was rolled back by an earlier error ({result.error_message}); "
                "call rollback()"
            )
        return result

    def _recheck(self, transaction: _Transaction, results: list[StatementResult]) -> None:
        """A run from the beginning: what the client saw earlier must still hold."""
        for position, result in enumerate(results):
            execution = transaction.executions.get(position)
            if execution is None:
                continue
            statement = execution.statement
            if statement is None or not statement.observed:
                continue
            if outcome_digest(statement.observed, result, execution.keyword) != statement.expect:
                transaction.aborted = (
                    "the transaction read data that changed before it committed; "
                    "roll back and retry it"
                )
                raise errors.OperationalError(transaction.aborted, SQLITE_BUSY_SNAPSHOT)
            execution.result = result

    # ------------------------------------------------------------------ plumbing

    def _write(self, command: Command) -> CommandResult:
        if self._given_sequence is not None:
            command.client_id, command.sequence = self.client_id, self._given_sequence
        else:
            self._sequence += 1
            command.client_id, command.sequence = self.client_id, self._sequence
        return self._call(lambda: self.backend.write(command, self.timeout))

    def _call(self, work: Callable[[], T]) -> T:
        try:
            return work()
        except errors.Error:
            raise
        except apsw.Error as exc:
            raise policy.error_for(policy.result_code(exc), policy.message_of(exc)) from None

    @staticmethod
    def _failure(outcome: CommandResult) -> errors.Error:
        if outcome.outcome is Outcome.CONFLICT:
            return errors.OperationalError(outcome.message, SQLITE_BUSY_SNAPSHOT)
        if outcome.outcome is Outcome.REJECTED:
            return errors.InterfaceError(outcome.message)
        return policy.error_for(outcome.error_code, outcome.message)


def _is_syntax_error(exc: apsw.Error) -> bool:
    text = str(exc)
    return any(
        hint in text for hint in ("syntax error", "incomplete input", "unrecognized token")
    ) or isinstance(exc, apsw.AuthError | apsw.RangeError | apsw.TooBigError)
