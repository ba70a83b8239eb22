"""nodehost-sql: a SQL console for a nodehost cluster (or a dqlite one: same protocol).

    nodehost-sql -s 127.0.0.1:9001,127.0.0.1:9002 demo          # interactive
    nodehost-sql -s 127.0.0.1:9001 demo -c "SELECT * FROM t"     # one-off
    nodehost-sql -s 127.0.0.1:9001 demo < script.sql             # a script

Rules:
- A statement runs once it is complete (it ends with ";", as SQLite decides, so a
  trigger body does not end it early; the last statement of -c or a script needs none);
  a dot command (.help) runs at once. Statements run in autocommit mode: each is its own
  transaction unless BEGIN opens one.
- A query prints an aligned table and its row count; a write prints "Rows affected: N".
- An error is one line on stderr, "Error: ...". Interactively the console goes on; in -c
  and in a script the first error stops it with exit status 1, so nothing after a failed
  statement runs unseen.
- Interactively: line editing and history (kept in ~/.nodehost_sql_history, or
  --history), Enter on an incomplete statement continues it on the next line, Ctrl-C
  drops the statement being typed, Ctrl-D leaves.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from prompt_toolkit import PromptSession
from prompt_toolkit.history import FileHistory, InMemoryHistory
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
from prompt_toolkit.utils import get_cwidth

from nodehost.sqlite import client
from nodehost.sqlite.errors import Error
from nodehost.sqlite.members import Role
from nodehost.sqlite.sqlscan import is_complete, scan, split

HELP = """\
Enter SQL ending with ";" to run it, or one of these commands:

  .cluster          the members, their addresses and roles
  .leader           the member that leads the cluster now
  .tables           the tables and views of the database
  .schema [NAME]    the CREATE statements (of NAME only, if given)
  .help             this text
  .quit             leave (Ctrl-D too)

Statements run in autocommit mode; BEGIN ... COMMIT groups them in a transaction."""

_ROLE_NAMES = {Role.VOTER: "voter", Role.STANDBY: "stand-by", Role.SPARE: "spare"}


class Quit(Exception):
    """.quit or .exit."""


def format_value(value: object) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bytes):
        return f"x'{value.hex()}'"
    if isinstance(value, float):
        return repr(value)
    return str(value).replace("\r", "\\r").replace("\n", "\\n")


def format_table(columns: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Columns padded to their widest cell (by display width); numbers right-aligned."""
    cells = [[format_value(value) for value in row] for row in rows]
    widths = [get_cwidth(name) for name in columns]
    for row in cells:
        for index, cell in enumerate(row):
            widths[index] = max(widths[index], get_cwidth(cell))
    numeric = [
        bool(rows) and all(isinstance(row[i], int | float) or row[i] is None for row in rows)
        for i in range(len(columns))
    ]

    def line(values: Sequence[str], right: Sequence[bool]) -> str:
        padded = []
        for value, width, to_right in zip(values, widths, right, strict=True):
            gap = " " * (width - get_cwidth(value))
            padded.append(gap + value if to_right else value + gap)
        return " | ".join(padded).rstrip()

    out = [line(columns, [False] * len(columns)), "-+-".join("-" * w for w in widths)]
    out += [line(row, numeric) for row in cells]
    return "\n".join(out)


def _count(rows: int) -> str:
    return f"({rows} row{'' if rows == 1 else 's'})"


class Shell:
    """Runs statements and dot commands against one connection, printing results."""

    def __init__(self, connection: client.Connection, out: TextIO, err: TextIO) -> None:
        self.connection = connection
        self.out = out
        self.err = err

    # ------------------------------------------------------------------ input

    def run_script(self, text: str) -> int:
        """Run every statement and dot command of `text`; stop at the first error."""
        pending = ""
        for line in text.splitlines():
            if not pending.strip() and line.strip().startswith("."):
                if not self.run_line(line.strip()):
                    return 1
                continue
            pending += line + "\n"
            if is_complete(pending):
                if not self.run_sql(pending):
                    return 1
                pending = ""
        if pending.strip() and not self.run_sql(pending):
            return 1
        return 0

    def run_line(self, text: str) -> bool:
        """One dot command or SQL text typed at the prompt; False when it failed."""
        stripped = text.strip()
        if stripped.startswith("."):
            try:
                self.command(stripped)
            except Error as error:
                self.error(error)
                return False
            return True
        return self.run_sql(text)

    def run_sql(self, text: str) -> bool:
        """Each statement of `text` in turn (a dot command among them too, as in
        `-c "SELECT 1; .tables"`); False at the first that failed."""
        for statement in split(text):
            if statement.startswith("."):
                if not self.run_line(statement.rstrip(";")):
                    return False
                continue
            try:
                self.statement(statement)
            except Error as error:
                self.error(error)
                return False
        return True

    def error(self, error: BaseException) -> None:
        message = " ".join(str(error).split()) or type(error).__name__
        print(f"Error: {message}", file=self.err, flush=True)

    # ------------------------------------------------------------------ actions

    def statement(self, sql: str) -> None:
        cursor = self.connection.cursor()
        try:
            cursor.execute(sql)
            if cursor.description is not None:
                columns = [entry[0] for entry in cursor.description]
                rows = cursor.fetchall()
                print(format_table(columns, rows), file=self.out)
                print(_count(len(rows)), file=self.out, flush=True)
            elif scan(sql).dml:
                print(f"Rows affected: {cursor.rowcount}", file=self.out, flush=True)
            else:
                print("OK", file=self.out, flush=True)
        finally:
            cursor.close()

    def command(self, line: str) -> None:
        name, _, argument = line.partition(" ")
        name, argument = name.lower(), argument.strip()
        if name in (".quit", ".exit"):
            raise Quit
        if name == ".help":
            print(HELP, file=self.out, flush=True)
        elif name == ".cluster":
            members = self.connection.cluster()
            rows = [(m.id, m.address, _ROLE_NAMES.get(m.role, str(m.role))) for m in members]
            print(format_table(["id", "address", "role"], rows), file=self.out, flush=True)
        elif name == ".leader":
            leader = self.connection.leader()
            text = f"{leader.address} (id {leader.id})" if leader else "no leader known now"
            print(text, file=self.out, flush=True)
        elif name == ".tables":
            cursor = self.connection.execute(
                "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') "
                "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' "
                "AND name NOT LIKE '\\_nodehost\\_%' ESCAPE '\\' ORDER BY name"
            )
            for (table,) in cursor.fetchall():
                print(table, file=self.out)
            self.out.flush()
        elif name == ".schema":
            sql = (
                "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL "
                "AND tbl_name NOT LIKE '\\_nodehost\\_%' ESCAPE '\\'"
            )
            parameters: tuple[str, ...] = ()
            if argument:
                sql += " AND tbl_name = ? COLLATE NOCASE"
                parameters = (argument,)
            cursor = self.connection.execute(sql + " ORDER BY rowid", parameters)
            for (statement,) in cursor.fetchall():
                print(f"{format_value(statement)};", file=self.out)
            self.out.flush()
        else:
            raise client.ProgrammingError(f"unknown command {name} (try .help)")

    # ------------------------------------------------------------------ interactive

    def interactive(self, history: Path | None) -> int:
        session: PromptSession[str] = PromptSession(
            multiline=True,
            prompt_continuation=lambda width, line, wrap: "...> ".rjust(width),
            history=FileHistory(str(history)) if history else InMemoryHistory(),
            key_bindings=_bindings(),
        )
        leader = self.connection.leader_address
        print(
            f"Connected to {self.connection.database!r} through {leader or 'a member'}. "
            "Enter .help for help.",
            file=self.out,
            flush=True,
        )
        if self._empty():
            print(
                f"The database {self.connection.database!r} has no tables yet "
                "(a database is created by its first write).",
                file=self.out,
                flush=True,
            )
        prompt = f"{self.connection.database}> "
        while True:
            try:
                text = session.prompt(prompt)
            except KeyboardInterrupt:
                continue
            except EOFError:
                return 0
            if not text.strip():
                continue
            try:
                self.run_line(text)
            except Quit:
                return 0

    def _empty(self) -> bool:
        try:
            cursor = self.connection.execute(
                "SELECT count(*) FROM sqlite_master "
                "WHERE name NOT LIKE '\\_nodehost\\_%' ESCAPE '\\'"
            )
            row = cursor.fetchone()
        except Error:
            return False  # the first statement will say what is wrong
        return row is not None and row[0] == 0


def _ready(text: str) -> bool:
    stripped = text.strip()
    return not stripped or stripped.startswith(".") or is_complete(text)


def _bindings() -> KeyBindings:
    bindings = KeyBindings()

    @bindings.add("enter")
    def _enter(event: KeyPressEvent) -> None:
        buffer = event.current_buffer
        if _ready(buffer.text):
            buffer.validate_and_handle()
        else:
            buffer.insert_text("\n")

    return bindings


# -- the command line -----------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nodehost-sql",
        description="A SQL console for a nodehost (or dqlite) cluster.",
    )
    parser.add_argument(
        "-s",
        "--servers",
        required=True,
        help="members to reach the cluster through: host:port[,host:port...]",
    )
    parser.add_argument("database", help="the database to use")
    parser.add_argument(
        "sql", nargs="?", help="run this SQL, then exit (as -c; the dqlite shell's form)"
    )
    parser.add_argument("-c", "--command", help="run this SQL (and dot commands), then exit")
    parser.add_argument(
        "--timeout", type=float, default=10.0, help="seconds one statement may take (10)"
    )
    parser.add_argument(
        "--consistency",
        choices=["strong", "weak", "none"],
        default="strong",
        help="read consistency (strong)",
    )
    parser.add_argument("--ca", help="CA certificate (PEM) of a cluster using mutual TLS")
    parser.add_argument("--cert", help="this client's certificate (PEM)")
    parser.add_argument("--key", help="this client's private key (PEM)")
    parser.add_argument(
        "--history",
        help="history file (default ~/.nodehost_sql_history; '' keeps none)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.sql is not None:
        if args.command is not None:
            parser.error("give the SQL once: as -c or after the database")
        args.command = args.sql
    stderr = sys.stderr
    tls = None
    tls_files = (args.ca, args.cert, args.key)
    if any(tls_files):
        if not all(tls_files):
            print("Error: --ca, --cert and --key go together", file=stderr)
            return 2
        try:
            tls = client.client_tls(args.ca, args.cert, args.key)
        except (OSError, ValueError) as error:
            print(f"Error: cannot load the TLS files: {error}", file=stderr)
            return 2
    try:
        connection = client.connect(
            args.servers,
            database=args.database,
            timeout=args.timeout,
            consistency=args.consistency,
            isolation_level=None,
            tls=tls,
        )
    except Error as error:
        print(f"Error: {' '.join(str(error).split())}", file=stderr)
        return 1
    shell = Shell(connection, sys.stdout, stderr)
    try:
        if args.command is not None:
            return _script(shell, args.command)
        if not sys.stdin.isatty():
            return _script(shell, sys.stdin.read())
        history = args.history
        if history is None:
            history = os.environ.get("NODEHOST_SQL_HISTORY") or str(
                Path.home() / ".nodehost_sql_history"
            )
        return shell.interactive(Path(history) if history else None)
    finally:
        connection.close()


def _script(shell: Shell, text: str) -> int:
    try:
        return shell.run_script(text)
    except Quit:
        return 0


if __name__ == "__main__":
    sys.exit(main())
