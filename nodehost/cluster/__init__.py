"""Clustered daemons on nodehost, as Canonical's Microcluster: a control socket, member
identity and mutual TLS, join tokens, a replicated member table with heartbeats and
roles, schema updates, user endpoints and hooks.

    from nodehost import cluster

    daemon = cluster.Daemon("/var/lib/myd", schema_updates=[...], endpoints=[...],
                            hooks=cluster.Hooks(on_start=...))
    daemon.run()

    client = cluster.Client.local("/var/lib/myd")
    client.bootstrap("node1", "10.0.0.1:9001")

See the README's "Clustered daemons" section.
"""

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nodehost.cluster.client import Client, WrongCluster
    from nodehost.cluster.daemon import Daemon
    from nodehost.cluster.database import Database, DatabaseOptions, DatabaseStatus
    from nodehost.cluster.errors import (
        BadRequest,
        ClusterError,
        Conflict,
        Forbidden,
        NotFound,
        Unavailable,
        Unreachable,
    )
    from nodehost.cluster.hooks import Hooks, RoleChange
    from nodehost.cluster.members import Member, Role, Status
    from nodehost.cluster.rest import Caller, CallerKind, Endpoint, Request
    from nodehost.cluster.schema import SchemaUpdate, Versions
    from nodehost.cluster.state import State
    from nodehost.cluster.tokens import JoinToken
    from nodehost.cluster.truststore import Remote

# Loaded on first use, so a command-line client that needs only `Client` does not pay for
# the daemon's imports (the database, the HTTP server).
_WHERE = {
    "Client": "client",
    "WrongCluster": "client",
    "Daemon": "daemon",
    "Database": "database",
    "DatabaseOptions": "database",
    "DatabaseStatus": "database",
    "BadRequest": "errors",
    "ClusterError": "errors",
    "Conflict": "errors",
    "Forbidden": "errors",
    "NotFound": "errors",
    "Unavailable": "errors",
    "Unreachable": "errors",
    "Hooks": "hooks",
    "RoleChange": "hooks",
    "Member": "members",
    "Role": "members",
    "Status": "members",
    "Caller": "rest",
    "CallerKind": "rest",
    "Endpoint": "rest",
    "Request": "rest",
    "SchemaUpdate": "schema",
    "Versions": "schema",
    "State": "state",
    "JoinToken": "tokens",
    "Remote": "truststore",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'nodehost.cluster' has no attribute {name!r}")
    return getattr(importlib.import_module(f"nodehost.cluster.{module}"), name)


__all__ = [
    "BadRequest",
    "Caller",
    "CallerKind",
    "Client",
    "ClusterError",
    "Conflict",
    "Daemon",
    "Database",
    "DatabaseOptions",
    "DatabaseStatus",
    "Endpoint",
    "Forbidden",
    "Hooks",
    "JoinToken",
    "Member",
    "NotFound",
    "Remote",
    "Request",
    "Role",
    "RoleChange",
    "SchemaUpdate",
    "State",
    "Status",
    "Unavailable",
    "Unreachable",
    "Versions",
    "WrongCluster",
]
