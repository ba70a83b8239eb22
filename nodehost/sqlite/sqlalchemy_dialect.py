"""SQLAlchemy 2 dialect for nodehost (and dqlite) clusters, over the remote client.

    from nodehost.sqlite.sqlalchemy_dialect import create_engine
    engine = create_engine("nodehost+sqlite://127.0.0.1:9001,127.0.0.1:9002/demo")

Rules:
- It is SQLAlchemy's SQLite dialect (same SQL, types, DDL, reflection and `sqlite_`
  options) with `nodehost.sqlite.client` as its DBAPI; it is registered by the entry
  point `sqlalchemy.dialects: nodehost.sqlite`, so plain `sqlalchemy.create_engine`
  finds it too.
- URLs: SQLAlchemy's own parser reads one `host:port` only, so a list of members is
  written `nodehost+sqlite://h1:p1/demo?host=h2:p2&host=h3:p3`, or in brackets
  `nodehost+sqlite://[h1:p1,h2:p2]/demo` (as SQLAlchemy itself writes a URL built with
  `make_url`); this module's `create_engine` also takes the plain
  `nodehost+sqlite://h1:p1,h2:p2/demo`. One member
  is enough to start (the client learns the others), more survive that one being down.
  Query options: `timeout` (seconds), `consistency` (strong, weak, none),
  `max_message_size`, and `ca`, `cert`, `key` (PEM files) for mutual TLS.
- Transactions are real: SQLAlchemy's `begin()` sends BEGIN, so reads inside a
  transaction are part of it (validated at COMMIT by nodehost), unlike pysqlite's
  implicit transactions; isolation levels SERIALIZABLE (the default) and AUTOCOMMIT.
- RETURNING and multi-row VALUES are used when the server's SQLite supports them (asked
  once per engine with `sqlite_version()`).
"""

from __future__ import annotations

import weakref
from typing import Any

import sqlalchemy
from sqlalchemy.dialects.sqlite.base import SQLiteDialect
from sqlalchemy.engine import URL, Engine, reflection
from sqlalchemy.engine.interfaces import DBAPIConnection, DBAPIModule, IsolationLevel
from sqlalchemy.engine.url import make_url as sqlalchemy_make_url
from sqlalchemy.exc import ArgumentError

from nodehost.sqlite import client

SCHEME = "nodehost+sqlite"
INTERNAL_PREFIX = "_nodehost_"  # the tables nodehost keeps in every database


def make_url(addresses: str | list[str], database: str, **query: str) -> URL:
    """The URL of `database` on the members at `addresses` ("h1:p1,h2:p2" or a list)."""
    members = client.parse_addresses(addresses)
    return URL.create(SCHEME, host=",".join(members), database=database, query=query)


def create_engine(url: str | URL, **kwargs: Any) -> Engine:
    """`sqlalchemy.create_engine`, also taking "nodehost+sqlite://h1:p1,h2:p2/demo"."""
    if isinstance(url, str) and url.startswith(f"{SCHEME}://"):
        url = _parse_member_list(url)
    return sqlalchemy.create_engine(url, **kwargs)


def _parse_member_list(text: str) -> URL:
    rest = text[len(SCHEME) + 3 :]
    location, _, query_text = rest.partition("?")
    hosts, slash, database = location.partition("/")
    if not slash or "@" in hosts:
        return sqlalchemy_make_url(text)  # let SQLAlchemy report what is wrong
    query_url = sqlalchemy_make_url(
        f"{SCHEME}:///x?{query_text}" if query_text else f"{SCHEME}:///x"
    )
    return URL.create(SCHEME, host=hosts, database=database or None, query=query_url.query)


class NodehostSQLiteDialect(SQLiteDialect):
    """SQLite's dialect over nodehost's remote client."""

    driver = "nodehost"
    supports_statement_cache = True
    returns_native_bytes = True
    default_paramstyle = "qmark"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._autocommit: weakref.WeakSet[Any] = weakref.WeakSet()

    @classmethod
    def import_dbapi(cls) -> DBAPIModule:
        return client  # type: ignore[return-value]

    def create_connect_args(self, url: URL) -> tuple[list[Any], dict[str, Any]]:
        addresses = self._addresses(url)
        if not url.database:
            raise ArgumentError(f"{url.render_as_string()} names no database (…/NAME)")
        options: dict[str, Any] = {"database": url.database, "isolation_level": None}
        query = dict(url.query)
        for key, convert in (("timeout", float), ("max_message_size", int)):
            if key in query:
                value = query.pop(key)
                try:
                    options[key] = convert(value if isinstance(value, str) else value[-1])
                except ValueError:
                    raise ArgumentError(f"URL option {key}={value!r} is not a number") from None
        if "consistency" in query:
            value = query.pop("consistency")
            options["consistency"] = value if isinstance(value, str) else value[-1]
        tls_files = [query.pop(key, None) for key in ("ca", "cert", "key")]
        query.pop("host", None)
        if any(tls_files):
            if not all(isinstance(f, str) for f in tls_files):
                raise ArgumentError("the URL options ca, cert and key go together")
            options["tls"] = client.client_tls(*tls_files)  # type: ignore[arg-type]
        if query:
            raise ArgumentError(f"unknown URL options for {SCHEME}: {', '.join(sorted(query))}")
        return [addresses], options

    @staticmethod
    def _addresses(url: URL) -> list[str]:
        members: list[str] = []
        host = url.host or ""
        if "," in host or (host.count(":") == 1 and not host.startswith("[")):
            members += client.parse_addresses(host)  # "h:p,h:p" (a URL object, or brackets)
        elif host:
            if url.port is None:
                raise ArgumentError(f"{url.render_as_string()}: a member is host:port")
            members.append(f"{host}:{url.port}" if ":" not in host else f"[{host}]:{url.port}")
        extra = url.query.get("host", ())
        for item in (extra,) if isinstance(extra, str) else extra:
            members += client.parse_addresses(item)
        if not members:
            raise ArgumentError(f"{url.render_as_string()} names no member (host:port)")
        return list(dict.fromkeys(members))

    # ------------------------------------------------------------------ server

    def _get_server_version_info(self, connection: Any) -> tuple[int, ...]:
        version = connection.exec_driver_sql("SELECT sqlite_version()").scalar()
        return tuple(int(part) for part in str(version).split(".") if part.isdigit())

    def initialize(self, connection: Any) -> None:
        super().initialize(connection)
        version = self.server_version_info or (0,)
        if version < (3, 35):
            self.insert_returning = self.update_returning = self.delete_returning = False
        self.supports_multivalues_insert = version >= (3, 7, 11)
        if version < (3, 32):
            self.insertmanyvalues_max_parameters = 999

    # ------------------------------------------------------------------ transactions

    def get_isolation_level_values(self, dbapi_connection: DBAPIConnection) -> list[IsolationLevel]:
        return ["SERIALIZABLE", "AUTOCOMMIT"]

    def set_isolation_level(self, dbapi_connection: DBAPIConnection, level: IsolationLevel) -> None:
        if level == "AUTOCOMMIT":
            self._autocommit.add(dbapi_connection)
        elif level == "SERIALIZABLE":
            self._autocommit.discard(dbapi_connection)
        else:
            raise ArgumentError(f"isolation level {level!r}: use SERIALIZABLE or AUTOCOMMIT")

    def get_isolation_level(self, dbapi_connection: DBAPIConnection) -> IsolationLevel:
        return "AUTOCOMMIT" if dbapi_connection in self._autocommit else "SERIALIZABLE"

    def get_default_isolation_level(self, dbapi_conn: DBAPIConnection) -> IsolationLevel:
        return "SERIALIZABLE"

    def detect_autocommit_setting(self, dbapi_conn: DBAPIConnection) -> bool:
        return dbapi_conn in self._autocommit

    def do_begin(self, dbapi_connection: Any) -> None:
        # SQLAlchemy hands the pool's proxy here, the DBAPI connection to the isolation calls.
        connection = getattr(dbapi_connection, "dbapi_connection", dbapi_connection)
        if connection not in self._autocommit and not connection.in_transaction:
            connection.execute("BEGIN")

    def do_commit(self, dbapi_connection: Any) -> None:
        dbapi_connection.commit()

    def do_rollback(self, dbapi_connection: Any) -> None:
        dbapi_connection.rollback()

    # ------------------------------------------------------------------ reflection

    @reflection.cache
    def get_table_names(
        self,
        connection: Any,
        schema: str | None = None,
        sqlite_include_internal: bool = False,
        **kw: Any,
    ) -> list[str]:
        """SQLite's list without nodehost's own tables (`_nodehost_applied`,
        `_nodehost_sessions`), so that schema tools (Alembic) never try to drop them."""
        names: list[str] = super().get_table_names(  # type: ignore[no-untyped-call]
            connection, schema, sqlite_include_internal=sqlite_include_internal, **kw
        )
        return [name for name in names if not name.startswith(INTERNAL_PREFIX)]

    def is_disconnect(self, e: Any, connection: Any, cursor: Any) -> bool:
        # The client finds the leader again by itself; only a closed connection is gone.
        return isinstance(e, client.ProgrammingError) and "closed database" in str(e)


dialect = NodehostSQLiteDialect
