"""The `sql` control command: run a query (or several) on the cluster database.

Rules:
- The statements of one query run in one transaction: all apply, or, when one fails,
  none does and the error names the statement.
- A statement that returns rows answers {"type": "select", "columns", "rows"}; any other
  answers {"type": "exec", "rows_affected"}.
- ".schema" answers the CREATE statements; ".dump" the schema and every row as INSERTs
  (nodehost's own bookkeeping tables left out).
- Values travel as JSON: integers, floats, text and NULL as they are; BLOBs as
  {"blob": "<hex>"}.
"""

from __future__ import annotations

from typing import Any

from nodehost.cluster.database import Database
from nodehost.cluster.errors import BadRequest
from nodehost.cluster.members import Cursor
from nodehost.sqlite import errors as sql_errors
from nodehost.sqlite.statements import split

MAX_QUERY = 1024 * 1024


def run(database: Database, query: str) -> dict[str, Any]:
    text = query.strip()
    if not text:
        raise BadRequest("the query is empty")
    if len(text) > MAX_QUERY:
        raise BadRequest("the query is too long")
    if text in (".schema", ".dump"):
        return {"dump": database.read(lambda cursor: _dump(cursor, rows=text == ".dump"))}
    if text.startswith("."):
        raise BadRequest(f"unknown command {text.split()[0]!r} (use .schema or .dump)")
    statements = split(text)

    def work(cursor: Cursor) -> list[dict[str, Any]]:
        results: list[dict[str, Any]] = []
        for number, statement in enumerate(statements, start=1):
            try:
                cursor.execute(statement)
            except sql_errors.Error as exc:
                where = f" (statement {number})" if len(statements) > 1 else ""
                raise type(exc)(f"{exc}{where}", exc.code) from None
            if cursor.description is not None:
                columns = [str(column[0]) for column in cursor.description]
                rows = [[_value(v) for v in row] for row in cursor.fetchall()]
                results.append({"type": "select", "columns": columns, "rows": rows})
            else:
                results.append({"type": "exec", "rows_affected": max(cursor.rowcount, 0)})
        return results

    return {"results": database.transaction(work, attempts=3)}


def _value(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return {"blob": bytes(value).hex()}
    return value


def _dump(cursor: Cursor, *, rows: bool) -> str:
    cursor.execute(
        "SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL "
        "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name NOT LIKE '\\_nodehost\\_%' ESCAPE '\\' "
        "ORDER BY type = 'table' DESC, name"
    )
    objects = [(str(r[0]), str(r[1]), str(r[2])) for r in cursor.fetchall()]
    lines = ["BEGIN TRANSACTION;"] if rows else []
    for kind, name, sql in objects:
        lines.append(f"{sql};")
        if rows and kind == "table":
            quoted = '"' + name.replace('"', '""') + '"'
            cursor.execute(f"SELECT * FROM {quoted}")
            for row in cursor.fetchall():
                values = ", ".join(_literal(v) for v in row)
                lines.append(f"INSERT INTO {quoted} VALUES({values});")
    if rows:
        lines.append("COMMIT;")
    return "\n".join(lines) + "\n"


def _literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return f"X'{bytes(value).hex()}'"
    return "'" + str(value).replace("'", "''") + "'"
