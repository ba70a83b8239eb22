"""The apply layer: state machine manager, client sessions, snapshot files and store."""

from nodehost.rsm.errors import (
    SnapshotCorrupt,
    SnapshotError,
    SnapshotOutOfDate,
    StateMachineError,
)
from nodehost.rsm.manager import ApplyKind, ApplyResult, StateMachineManager
from nodehost.rsm.session import (
    SERIES_ID_FIRST_PROPOSAL,
    SERIES_ID_NOOP,
    SERIES_ID_REGISTER,
    SERIES_ID_UNREGISTER,
    Session,
)
from nodehost.rsm.snapshotio import CompressionType
from nodehost.rsm.store import SnapshotStore

__all__ = [
    "SERIES_ID_FIRST_PROPOSAL",
    "SERIES_ID_NOOP",
    "SERIES_ID_REGISTER",
    "SERIES_ID_UNREGISTER",
    "ApplyKind",
    "ApplyResult",
    "CompressionType",
    "Session",
    "SnapshotCorrupt",
    "SnapshotError",
    "SnapshotOutOfDate",
    "SnapshotStore",
    "StateMachineError",
    "StateMachineManager",
]
