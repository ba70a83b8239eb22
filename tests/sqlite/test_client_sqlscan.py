"""The client's SQL scanner: parameters numbered exactly as SQLite numbers them (checked
against SQLite itself through apsw), and statement kinds."""

from __future__ import annotations

import apsw
import pytest
from hypothesis import given
from hypothesis import strategies as st

from nodehost.sqlite import errors
from nodehost.sqlite.sqlscan import is_complete, scan, split


def sqlite_parameters(sql: str) -> tuple[str | None, ...]:
    """What SQLite says (apsw gives the names without their prefix character)."""
    seen: list[tuple[str | None, ...]] = []

    def trace(cursor: apsw.Cursor, text: str, bindings: object) -> bool:
        seen.append(tuple(cursor.bindings_names))
        return False

    cursor = apsw.Connection(":memory:").cursor()
    cursor.exec_trace = trace
    for bindings in range(40):
        try:
            cursor.execute(sql, (None,) * bindings, can_cache=False)
        except apsw.ExecTraceAbort:
            return seen[0]
        except apsw.BindingsError:
            continue
    raise AssertionError(f"SQLite never prepared {sql!r}")


parameter = st.one_of(
    st.just("?"),
    st.integers(1, 12).map(lambda n: f"?{n}"),
    st.sampled_from([":a", ":b", "@a", "$a", ":x1", "@long_name", "$t::u"]),
)
# Text where a scanner that ignores quoting or comments would see parameters.
decoy = st.sampled_from(["", "'?:a'", "x'00'", "/* ?5 :q */", "-- :z ?\n"])
alias = st.sampled_from(["", ' AS "?"', " AS [:b]", " AS `@c`"])


@given(st.lists(st.tuples(decoy, parameter, alias), min_size=1, max_size=8))
def test_parameters_are_numbered_as_sqlite_numbers_them(
    parts: list[tuple[str, str, str]],
) -> None:
    columns = []
    for index, (text, placeholder, name) in enumerate(parts):
        if text.startswith(("'", "x")):
            columns.append(f"{text} AS literal{index}")
        columns.append(f"{text if text.startswith(('/*', '--')) else ''}{placeholder}{name}")
    sql = "SELECT " + ", ".join(columns)
    names = scan(sql).parameter_names
    assert tuple(n[1:] if n else None for n in names) == sqlite_parameters(sql)
    assert scan(sql).parameter_count == len(names)


@pytest.mark.parametrize(
    ("sql", "keyword", "rows", "read_only"),
    [
        ("select 1", "SELECT", True, True),
        ("  /* c */ VALUES (1)", "VALUES", True, True),
        ("explain query plan select 1", "EXPLAIN", True, True),
        ("with c(x) as (select 1) select x from c", "SELECT", True, True),
        ("WITH c AS MATERIALIZED (SELECT 1) INSERT INTO t SELECT * FROM c", "INSERT", False, False),
        ("insert into t values (1) returning id", "INSERT", True, False),
        ("delete from t returning *", "DELETE", True, False),
        ("update t set a = 'returning'", "UPDATE", False, False),
        ("pragma table_info(t)", "PRAGMA", True, False),
        ("create table returning_x (a)", "CREATE", False, False),
        ("begin immediate", "BEGIN", False, False),
        ("", "", False, False),
    ],
)
def test_statement_kinds(sql: str, keyword: str, rows: bool, read_only: bool) -> None:
    info = scan(sql)
    assert (info.keyword, info.returns_rows, info.read_only) == (keyword, rows, read_only)


def test_savepoint_names() -> None:
    assert scan('SAVEPOINT "Outer"').savepoint == "OUTER"
    assert scan("release savepoint a").savepoint == "A"
    assert scan("RELEASE a").savepoint == "A"
    info = scan("ROLLBACK TRANSACTION TO SAVEPOINT b")
    assert (info.rollback_to, info.savepoint) == (True, "B")
    assert not scan("ROLLBACK").rollback_to


def test_parameter_numbers_beyond_sqlite_limit_are_refused() -> None:
    with pytest.raises(errors.ProgrammingError, match="between \\?1 and \\?32766"):
        scan("SELECT ?40000")


def test_scripts_split_where_sqlite_says_statements_end() -> None:
    script = (
        "CREATE TABLE a (x);\n"
        "CREATE TRIGGER t AFTER INSERT ON a BEGIN INSERT INTO a VALUES (1); END;\n"
        "/* only a comment; */ ;\n"
        "INSERT INTO a VALUES ('x;y'); ;\n"
        "SELECT 1"
    )
    assert split(script) == [
        "CREATE TABLE a (x);",
        "CREATE TRIGGER t AFTER INSERT ON a BEGIN INSERT INTO a VALUES (1); END;",
        "INSERT INTO a VALUES ('x;y');",
        "SELECT 1",
    ]
    assert is_complete("select 1;")
    assert not is_complete("select ';")
