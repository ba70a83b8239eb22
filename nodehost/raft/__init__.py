"""The Raft protocol core: pure, deterministic, no IO, no clock, no asyncio.

The engine drives one `Peer` per replica: inputs (`tick`, `step`, `propose`, ...),
then `get_update` / act on it / `commit_update`. See update.py for the contract.
"""

from .admission import Refusal
from .config import RaftConfig
from .describe import describe_entry, describe_message, describe_update
from .logreader import CompactedError, LogReader, UnavailableError
from .memorylog import MemoryLogReader
from .messages import MessageType, is_local
from .peer import Peer
from .raft import HANDLERS, ProposalResult, Raft, Role
from .update import LeaderInfo, ReadContext, ReadyToRead, Update

__all__ = [
    "HANDLERS",
    "CompactedError",
    "LeaderInfo",
    "LogReader",
    "MemoryLogReader",
    "MessageType",
    "Peer",
    "ProposalResult",
    "Raft",
    "RaftConfig",
    "ReadContext",
    "ReadyToRead",
    "Refusal",
    "Role",
    "UnavailableError",
    "Update",
    "describe_entry",
    "describe_message",
    "describe_update",
    "is_local",
]
