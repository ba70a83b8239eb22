"""Replicated SQLite on nodehost: an embedded member (`App`) with PEP 249 connections,
and `connect`, the remote client over dqlite's wire protocol.

See the README's SQL section. The module is also a PEP 249 module: `apilevel`,
`threadsafety`, `paramstyle` and the exception classes are here.
"""

from nodehost.sqlite import dbapi
from nodehost.sqlite.app import App, TLSOptions
from nodehost.sqlite.client import ClusterClient, client_tls, connect
from nodehost.sqlite.dbapi import Connection, Cursor, apilevel, paramstyle, threadsafety
from nodehost.sqlite.errors import (
    DatabaseError,
    DataError,
    Error,
    IntegrityError,
    InterfaceError,
    InternalError,
    NotSupportedError,
    OperationalError,
    ProgrammingError,
    Warning,
)
from nodehost.sqlite.members import NodeInfo, Role

__all__ = [
    "App",
    "ClusterClient",
    "Connection",
    "Cursor",
    "DataError",
    "DatabaseError",
    "Error",
    "IntegrityError",
    "InterfaceError",
    "InternalError",
    "NodeInfo",
    "NotSupportedError",
    "OperationalError",
    "ProgrammingError",
    "Role",
    "TLSOptions",
    "Warning",
    "apilevel",
    "client_tls",
    "connect",
    "dbapi",
    "paramstyle",
    "threadsafety",
]
