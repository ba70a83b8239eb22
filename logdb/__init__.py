"""The durable Raft log: one store per NodeHost for all of its replicas.

(Findings are filled in below once measured.)
"""

from logdb.errors import (
    CompactedError,
    CorruptionError,
    DeploymentMismatchError,
    FormatError,
    InvalidRequestError,
    LogDBError,
    StoreClosedError,
    UnavailableError,
    WriteError,
)
from logdb.interface import ILogDB, RaftState, SaveRecord
from logdb.memory import MemoryLogDB
from logdb.rocks import RocksLogDB

__all__ = [
    "CompactedError",
    "CorruptionError",
    "DeploymentMismatchError",
    "FormatError",
    "ILogDB",
    "InvalidRequestError",
    "LogDBError",
    "MemoryLogDB",
    "RaftState",
    "RocksLogDB",
    "SaveRecord",
    "StoreClosedError",
    "UnavailableError",
    "WriteError",
]
