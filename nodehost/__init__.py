"""A multi-shard Raft host: replicate your own state machine across NodeHosts.

from nodehost import NodeHost, NodeHostConfig, Config
from statemachine import IStateMachine, Entry, Result
"""

from nodehost.config import CompressionType, Config, NodeHostConfig
from nodehost.errors import (
    Aborted,
    Closed,
    DirectoryLocked,
    InvalidConfig,
    InvalidOperation,
    InvalidSession,
    InvalidShardSettings,
    PayloadTooBig,
    RaftError,
    Rejected,
    ReplicaRemoved,
    ShardAlreadyExists,
    ShardClosed,
    ShardNotFound,
    ShardNotReady,
    ShardNotStopped,
    StateMachineFailed,
    SystemBusy,
    Timeout,
)
from nodehost.events import (
    ConnectionInfo,
    EntryInfo,
    FailureInfo,
    IRaftEventListener,
    ISystemEventListener,
    LeaderInfo,
    NodeInfo,
    SnapshotInfo,
)
from nodehost.nodehost import (
    Membership,
    NodeHost,
    NodeHostInfo,
    NodeHostInfoOption,
    ShardInfo,
    SnapshotOption,
)
from nodehost.request import RequestResult, RequestState, ResultCode
from nodehost.rsm import Session

__all__ = [
    "Aborted",
    "Closed",
    "CompressionType",
    "Config",
    "ConnectionInfo",
    "DirectoryLocked",
    "EntryInfo",
    "FailureInfo",
    "IRaftEventListener",
    "ISystemEventListener",
    "InvalidConfig",
    "InvalidOperation",
    "InvalidSession",
    "InvalidShardSettings",
    "LeaderInfo",
    "Membership",
    "NodeHost",
    "NodeHostConfig",
    "NodeHostInfo",
    "NodeHostInfoOption",
    "NodeInfo",
    "PayloadTooBig",
    "RaftError",
    "Rejected",
    "ReplicaRemoved",
    "RequestResult",
    "RequestState",
    "ResultCode",
    "Session",
    "ShardAlreadyExists",
    "ShardClosed",
    "ShardInfo",
    "ShardNotFound",
    "ShardNotReady",
    "ShardNotStopped",
    "SnapshotInfo",
    "SnapshotOption",
    "StateMachineFailed",
    "SystemBusy",
    "Timeout",
]
