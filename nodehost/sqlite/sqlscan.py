"""SQL text as the remote client sees it: its parameters and what kind of statement it
is, known without a database (the client has none; the server prepares the statement).

Rules:
- Tokens follow SQLite's tokenizer: strings, quoted identifiers, comments and blob
  literals never hold parameters or keywords.
- Parameters are numbered as `sqlite3_bind_parameter_index` numbers them: `?` takes the
  next number, `?NNN` number NNN, and `:name`, `@name`, `$name` the next number the first
  time a name appears and the same number after. The wire protocol binds by position,
  so the client turns named parameters into positions with this numbering.
- The kind is what the client needs to choose a request and a retry: whether the
  statement yields rows (a query) and whether it is certainly read-only (so safe to resend
  after a lost answer). When in doubt a statement counts as a write.
- Scans are cached by SQL text; the cache is bounded.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from functools import lru_cache

from nodehost.sqlite import errors

#: SQLite's default SQLITE_MAX_VARIABLE_NUMBER: `?NNN` beyond it is an error there too.
MAX_PARAMETER_NUMBER = 32766

_QUERY_VERBS = frozenset({"SELECT", "VALUES", "PRAGMA", "EXPLAIN"})
_READ_VERBS = frozenset({"SELECT", "VALUES", "EXPLAIN"})
_DML_VERBS = frozenset({"INSERT", "UPDATE", "DELETE", "REPLACE"})
_WITH_VERBS = frozenset({"SELECT", "VALUES", "INSERT", "UPDATE", "DELETE", "REPLACE"})


@dataclass(frozen=True, slots=True)
class Scan:
    """What the client knows of one SQL text."""

    keyword: str  # the statement's verb, upper case; for WITH, the verb after the CTEs
    returns_rows: bool  # SELECT, VALUES, PRAGMA, EXPLAIN, or RETURNING at the top level
    read_only: bool  # certainly changes nothing: SELECT, VALUES, EXPLAIN without RETURNING
    parameter_count: int  # the highest parameter number
    parameter_names: tuple[str | None, ...]  # by number - 1: ":a", "?3", or None for `?`
    savepoint: str  # the name after SAVEPOINT, RELEASE or ROLLBACK TO
    rollback_to: bool  # ROLLBACK TO (keeps the transaction open)

    @property
    def dml(self) -> bool:
        return self.keyword in _DML_VERBS


def _is_identifier_char(char: str) -> bool:
    return char.isalnum() or char in "_$" or ord(char) > 0x7F


def _tokens(sql: str) -> list[tuple[str, str]]:
    """(kind, text) for words ("w", upper case), quoted identifiers ("i"), parameters
    ("p") and punctuation ("(", ")", ";"); everything else is skipped."""
    tokens: list[tuple[str, str]] = []
    index, size = 0, len(sql)
    while index < size:
        char = sql[index]
        if char.isspace():
            index += 1
        elif sql.startswith("--", index):
            newline = sql.find("\n", index)
            index = size if newline < 0 else newline + 1
        elif sql.startswith("/*", index):
            end = sql.find("*/", index + 2)
            index = size if end < 0 else end + 2
        elif char == "'":
            index = _skip_quoted(sql, index, char)
        elif char in '"`':
            end = _skip_quoted(sql, index, char)
            name = sql[index + 1 : end - 1].replace(char * 2, char)
            tokens.append(("i", name.upper()))  # a quoted identifier: only savepoints use it
            index = end
        elif char == "[":
            end = sql.find("]", index + 1)
            end = size if end < 0 else end + 1
            tokens.append(("i", sql[index + 1 : end - 1].upper()))
            index = end
        elif char == "?":
            end = index + 1
            while end < size and sql[end].isdigit():
                end += 1
            tokens.append(("p", sql[index:end]))
            index = end
        elif char in ":@$":
            end = index + 1
            while end < size and (_is_identifier_char(sql[end]) or sql.startswith("::", end)):
                end += 2 if sql.startswith("::", end) else 1
            if end > index + 1:
                tokens.append(("p", sql[index:end]))
            index = max(end, index + 1)
        elif char.isalpha() or char == "_" or ord(char) > 0x7F:
            end = index + 1
            while end < size and _is_identifier_char(sql[end]):
                end += 1
            if end < size and sql[end] == "'" and sql[index:end] in ("x", "X"):
                index = _skip_quoted(sql, end, "'")  # a blob literal x'..'
                continue
            tokens.append(("w", sql[index:end].upper()))
            index = end
        elif char.isdigit():
            end = index + 1
            while end < size and (_is_identifier_char(sql[end]) or sql[end] == "."):
                end += 1
            index = end
        else:
            if char in "();":
                tokens.append((char, char))
            index += 1
    return tokens


def _skip_quoted(sql: str, start: int, quote: str) -> int:
    """The index after the quoted token at `start` (a doubled quote is an escape)."""
    index = start + 1
    while True:
        end = sql.find(quote, index)
        if end < 0:
            return len(sql)
        if sql.startswith(quote * 2, end):
            index = end + 2
            continue
        return end + 1


def _number_parameters(parameters: list[str]) -> tuple[str | None, ...]:
    """The name of each parameter number (None for numbers only `?` reached): the first
    name given to a number, as `sqlite3_bind_parameter_name` reports."""
    names: dict[int, str] = {}
    by_name: dict[str, int] = {}
    highest = 0
    for text in parameters:
        if text == "?":
            highest += 1
            number = highest
        elif text.startswith("?"):
            number = int(text[1:])
            if not 1 <= number <= MAX_PARAMETER_NUMBER:
                raise errors.ProgrammingError(
                    f"variable number must be between ?1 and ?{MAX_PARAMETER_NUMBER}", 1
                )
            highest = max(highest, number)
            by_name.setdefault(text, number)
        else:
            number = by_name.get(text, 0)
            if number == 0:
                highest += 1
                number = by_name[text] = highest
        if highest > MAX_PARAMETER_NUMBER:
            raise errors.ProgrammingError("too many SQL variables", 1)
        if text != "?":
            names.setdefault(number, text)
    return tuple(names.get(number) for number in range(1, highest + 1))


@lru_cache(maxsize=1024)
def scan(sql: str) -> Scan:
    """The kind and the parameters of the first statement of `sql` (the parameters of the
    whole text, since the server refuses more than one statement where it matters)."""
    tokens = _tokens(sql)
    words = [text for kind, text in tokens if kind == "w"]
    keyword = words[0] if words else ""
    depth = 0
    returning = False
    verb = keyword
    after_with = keyword == "WITH"
    for kind, text in tokens[1:] if tokens else []:
        if kind == "(":
            depth += 1
        elif kind == ")":
            depth = max(depth - 1, 0)
        elif kind == "w" and depth == 0:
            if after_with and text in _WITH_VERBS:
                verb, after_with = text, False
            elif text == "RETURNING":
                returning = True
    if after_with:
        verb = "WITH"  # no verb found: let the server say what is wrong
    names = [text for kind, text in tokens if kind in ("w", "i")]
    savepoint = ""
    rollback_to = False
    if keyword in ("SAVEPOINT", "RELEASE"):
        rest = names[1:]
        if rest[:1] == ["SAVEPOINT"] and keyword == "RELEASE":
            rest = rest[1:]
        savepoint = rest[0] if rest else ""
    elif keyword == "ROLLBACK" and "TO" in names[1:3]:
        rollback_to = True
        rest = names[names.index("TO", 1) + 1 :]
        if rest[:1] == ["SAVEPOINT"]:
            rest = rest[1:]
        savepoint = rest[0] if rest else ""
    parameters = [text for kind, text in tokens if kind == "p"]
    numbered = _number_parameters(parameters)
    return Scan(
        keyword=verb,
        returns_rows=verb in _QUERY_VERBS or returning,
        read_only=verb in _READ_VERBS and not returning,
        parameter_count=len(numbered),
        parameter_names=numbered,
        savepoint=savepoint,
        rollback_to=rollback_to,
    )


def split(script: str) -> list[str]:
    """The statements of a script, each with its semicolon, split where SQLite's own
    `sqlite3_complete` says a statement ends (a trigger body's semicolons do not split
    it); blank and comment-only pieces are dropped, and a final statement without a
    semicolon is kept."""
    statements: list[str] = []
    start = 0
    position = script.find(";")
    while position >= 0:
        candidate = script[start : position + 1]
        if sqlite3.complete_statement(candidate):
            if _has_content(candidate):
                statements.append(candidate.strip())
            start = position + 1
        position = script.find(";", position + 1)
    rest = script[start:]
    if _has_content(rest):
        statements.append(rest.strip())
    return statements


def _has_content(sql: str) -> bool:
    """True when something other than blanks, comments and semicolons is left."""
    index, size = 0, len(sql)
    while index < size:
        char = sql[index]
        if char.isspace() or char == ";":
            index += 1
        elif sql.startswith("--", index):
            newline = sql.find("\n", index)
            index = size if newline < 0 else newline + 1
        elif sql.startswith("/*", index):
            end = sql.find("*/", index + 2)
            index = size if end < 0 else end + 2
        else:
            return True
    return False


def is_complete(sql: str) -> bool:
    """True when `sql` ends a statement (SQLite's `sqlite3_complete`): for the shell."""
    return sqlite3.complete_statement(sql)
