from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EntryType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    APPLICATION: _ClassVar[EntryType]
    CONFIG_CHANGE: _ClassVar[EntryType]
    METADATA: _ClassVar[EntryType]

class MessageType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INVALID: _ClassVar[MessageType]
    LOCAL_TICK: _ClassVar[MessageType]
    ELECTION: _ClassVar[MessageType]
    LEADER_HEARTBEAT: _ClassVar[MessageType]
    CHECK_QUORUM: _ClassVar[MessageType]
    PROPOSE: _ClassVar[MessageType]
    CONFIG_CHANGE_EVENT: _ClassVar[MessageType]
    SNAPSHOT_STATUS: _ClassVar[MessageType]
    UNREACHABLE: _ClassVar[MessageType]
    LEADER_TRANSFER: _ClassVar[MessageType]
    BATCHED_READ_INDEX: _ClassVar[MessageType]
    SNAPSHOT_RECEIVED: _ClassVar[MessageType]
    REPLICATE: _ClassVar[MessageType]
    REPLICATE_RESP: _ClassVar[MessageType]
    REQUEST_VOTE: _ClassVar[MessageType]
    REQUEST_VOTE_RESP: _ClassVar[MessageType]
    REQUEST_PRE_VOTE: _ClassVar[MessageType]
    REQUEST_PRE_VOTE_RESP: _ClassVar[MessageType]
    INSTALL_SNAPSHOT: _ClassVar[MessageType]
    HEARTBEAT: _ClassVar[MessageType]
    HEARTBEAT_RESP: _ClassVar[MessageType]
    READ_INDEX: _ClassVar[MessageType]
    READ_INDEX_RESP: _ClassVar[MessageType]
    TIMEOUT_NOW: _ClassVar[MessageType]
    QUIESCE: _ClassVar[MessageType]
    RATE_LIMIT: _ClassVar[MessageType]
    PROPOSE_FORWARD: _ClassVar[MessageType]

class StateMachineType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    UNKNOWN_STATE_MACHINE: _ClassVar[StateMachineType]
    REGULAR_STATE_MACHINE: _ClassVar[StateMachineType]
    CONCURRENT_STATE_MACHINE: _ClassVar[StateMachineType]
    ON_DISK_STATE_MACHINE: _ClassVar[StateMachineType]

class ConfigChangeType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ADD_NODE: _ClassVar[ConfigChangeType]
    REMOVE_NODE: _ClassVar[ConfigChangeType]
    ADD_NON_VOTING: _ClassVar[ConfigChangeType]
    ADD_WITNESS: _ClassVar[ConfigChangeType]
APPLICATION: EntryType
CONFIG_CHANGE: EntryType
METADATA: EntryType
INVALID: MessageType
LOCAL_TICK: MessageType
ELECTION: MessageType
LEADER_HEARTBEAT: MessageType
CHECK_QUORUM: MessageType
PROPOSE: MessageType
CONFIG_CHANGE_EVENT: MessageType
SNAPSHOT_STATUS: MessageType
UNREACHABLE: MessageType
LEADER_TRANSFER: MessageType
BATCHED_READ_INDEX: MessageType
SNAPSHOT_RECEIVED: MessageType
REPLICATE: MessageType
REPLICATE_RESP: MessageType
REQUEST_VOTE: MessageType
REQUEST_VOTE_RESP: MessageType
REQUEST_PRE_VOTE: MessageType
REQUEST_PRE_VOTE_RESP: MessageType
INSTALL_SNAPSHOT: MessageType
HEARTBEAT: MessageType
HEARTBEAT_RESP: MessageType
READ_INDEX: MessageType
READ_INDEX_RESP: MessageType
TIMEOUT_NOW: MessageType
QUIESCE: MessageType
RATE_LIMIT: MessageType
PROPOSE_FORWARD: MessageType
UNKNOWN_STATE_MACHINE: StateMachineType
REGULAR_STATE_MACHINE: StateMachineType
CONCURRENT_STATE_MACHINE: StateMachineType
ON_DISK_STATE_MACHINE: StateMachineType
ADD_NODE: ConfigChangeType
REMOVE_NODE: ConfigChangeType
ADD_NON_VOTING: ConfigChangeType
ADD_WITNESS: ConfigChangeType

class Entry(_message.Message):
    __slots__ = ("term", "index", "type", "key", "client_id", "series_id", "responded_to", "cmd")
    TERM_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    SERIES_ID_FIELD_NUMBER: _ClassVar[int]
    RESPONDED_TO_FIELD_NUMBER: _ClassVar[int]
    CMD_FIELD_NUMBER: _ClassVar[int]
    term: int
    index: int
    type: EntryType
    key: int
    client_id: int
    series_id: int
    responded_to: int
    cmd: bytes
    def __init__(self, term: _Optional[int] = ..., index: _Optional[int] = ..., type: _Optional[_Union[EntryType, str]] = ..., key: _Optional[int] = ..., client_id: _Optional[int] = ..., series_id: _Optional[int] = ..., responded_to: _Optional[int] = ..., cmd: _Optional[bytes] = ...) -> None: ...

class Message(_message.Message):
    __slots__ = ("type", "to", "from_id", "shard_id", "term", "log_term", "log_index", "commit", "reject", "hint", "hint_high", "entries", "snapshot")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    TO_FIELD_NUMBER: _ClassVar[int]
    FROM_ID_FIELD_NUMBER: _ClassVar[int]
    SHARD_ID_FIELD_NUMBER: _ClassVar[int]
    TERM_FIELD_NUMBER: _ClassVar[int]
    LOG_TERM_FIELD_NUMBER: _ClassVar[int]
    LOG_INDEX_FIELD_NUMBER: _ClassVar[int]
    COMMIT_FIELD_NUMBER: _ClassVar[int]
    REJECT_FIELD_NUMBER: _ClassVar[int]
    HINT_FIELD_NUMBER: _ClassVar[int]
    HINT_HIGH_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    type: MessageType
    to: int
    from_id: int
    shard_id: int
    term: int
    log_term: int
    log_index: int
    commit: int
    reject: bool
    hint: int
    hint_high: int
    entries: _containers.RepeatedCompositeFieldContainer[Entry]
    snapshot: Snapshot
    def __init__(self, type: _Optional[_Union[MessageType, str]] = ..., to: _Optional[int] = ..., from_id: _Optional[int] = ..., shard_id: _Optional[int] = ..., term: _Optional[int] = ..., log_term: _Optional[int] = ..., log_index: _Optional[int] = ..., commit: _Optional[int] = ..., reject: _Optional[bool] = ..., hint: _Optional[int] = ..., hint_high: _Optional[int] = ..., entries: _Optional[_Iterable[_Union[Entry, _Mapping]]] = ..., snapshot: _Optional[_Union[Snapshot, _Mapping]] = ...) -> None: ...

class MessageBatch(_message.Message):
    __slots__ = ("deployment_id", "source_address", "bin_ver", "requests")
    DEPLOYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    BIN_VER_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    deployment_id: int
    source_address: str
    bin_ver: int
    requests: _containers.RepeatedCompositeFieldContainer[Message]
    def __init__(self, deployment_id: _Optional[int] = ..., source_address: _Optional[str] = ..., bin_ver: _Optional[int] = ..., requests: _Optional[_Iterable[_Union[Message, _Mapping]]] = ...) -> None: ...

class State(_message.Message):
    __slots__ = ("term", "vote", "commit")
    TERM_FIELD_NUMBER: _ClassVar[int]
    VOTE_FIELD_NUMBER: _ClassVar[int]
    COMMIT_FIELD_NUMBER: _ClassVar[int]
    term: int
    vote: int
    commit: int
    def __init__(self, term: _Optional[int] = ..., vote: _Optional[int] = ..., commit: _Optional[int] = ...) -> None: ...

class Membership(_message.Message):
    __slots__ = ("config_change_id", "addresses", "non_votings", "witnesses", "removed")
    class AddressesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: int
        value: str
        def __init__(self, key: _Optional[int] = ..., value: _Optional[str] = ...) -> None: ...
    class NonVotingsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: int
        value: str
        def __init__(self, key: _Optional[int] = ..., value: _Optional[str] = ...) -> None: ...
    class WitnessesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: int
        value: str
        def __init__(self, key: _Optional[int] = ..., value: _Optional[str] = ...) -> None: ...
    class RemovedEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: int
        value: bool
        def __init__(self, key: _Optional[int] = ..., value: _Optional[bool] = ...) -> None: ...
    CONFIG_CHANGE_ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESSES_FIELD_NUMBER: _ClassVar[int]
    NON_VOTINGS_FIELD_NUMBER: _ClassVar[int]
    WITNESSES_FIELD_NUMBER: _ClassVar[int]
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    config_change_id: int
    addresses: _containers.ScalarMap[int, str]
    non_votings: _containers.ScalarMap[int, str]
    witnesses: _containers.ScalarMap[int, str]
    removed: _containers.ScalarMap[int, bool]
    def __init__(self, config_change_id: _Optional[int] = ..., addresses: _Optional[_Mapping[int, str]] = ..., non_votings: _Optional[_Mapping[int, str]] = ..., witnesses: _Optional[_Mapping[int, str]] = ..., removed: _Optional[_Mapping[int, bool]] = ...) -> None: ...

class SnapshotFile(_message.Message):
    __slots__ = ("file_id", "filepath", "file_size", "metadata", "checksum")
    FILE_ID_FIELD_NUMBER: _ClassVar[int]
    FILEPATH_FIELD_NUMBER: _ClassVar[int]
    FILE_SIZE_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    CHECKSUM_FIELD_NUMBER: _ClassVar[int]
    file_id: int
    filepath: str
    file_size: int
    metadata: bytes
    checksum: bytes
    def __init__(self, file_id: _Optional[int] = ..., filepath: _Optional[str] = ..., file_size: _Optional[int] = ..., metadata: _Optional[bytes] = ..., checksum: _Optional[bytes] = ...) -> None: ...

class Snapshot(_message.Message):
    __slots__ = ("shard_id", "index", "term", "membership", "filepath", "file_size", "checksum", "files", "type", "on_disk_index", "dummy", "witness", "imported")
    SHARD_ID_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    TERM_FIELD_NUMBER: _ClassVar[int]
    MEMBERSHIP_FIELD_NUMBER: _ClassVar[int]
    FILEPATH_FIELD_NUMBER: _ClassVar[int]
    FILE_SIZE_FIELD_NUMBER: _ClassVar[int]
    CHECKSUM_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    ON_DISK_INDEX_FIELD_NUMBER: _ClassVar[int]
    DUMMY_FIELD_NUMBER: _ClassVar[int]
    WITNESS_FIELD_NUMBER: _ClassVar[int]
    IMPORTED_FIELD_NUMBER: _ClassVar[int]
    shard_id: int
    index: int
    term: int
    membership: Membership
    filepath: str
    file_size: int
    checksum: bytes
    files: _containers.RepeatedCompositeFieldContainer[SnapshotFile]
    type: StateMachineType
    on_disk_index: int
    dummy: bool
    witness: bool
    imported: bool
    def __init__(self, shard_id: _Optional[int] = ..., index: _Optional[int] = ..., term: _Optional[int] = ..., membership: _Optional[_Union[Membership, _Mapping]] = ..., filepath: _Optional[str] = ..., file_size: _Optional[int] = ..., checksum: _Optional[bytes] = ..., files: _Optional[_Iterable[_Union[SnapshotFile, _Mapping]]] = ..., type: _Optional[_Union[StateMachineType, str]] = ..., on_disk_index: _Optional[int] = ..., dummy: _Optional[bool] = ..., witness: _Optional[bool] = ..., imported: _Optional[bool] = ...) -> None: ...

class ConfigChange(_message.Message):
    __slots__ = ("config_change_id", "type", "replica_id", "address", "initialize")
    CONFIG_CHANGE_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    REPLICA_ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    INITIALIZE_FIELD_NUMBER: _ClassVar[int]
    config_change_id: int
    type: ConfigChangeType
    replica_id: int
    address: str
    initialize: bool
    def __init__(self, config_change_id: _Optional[int] = ..., type: _Optional[_Union[ConfigChangeType, str]] = ..., replica_id: _Optional[int] = ..., address: _Optional[str] = ..., initialize: _Optional[bool] = ...) -> None: ...

class Bootstrap(_message.Message):
    __slots__ = ("addresses", "join", "type")
    class AddressesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: int
        value: str
        def __init__(self, key: _Optional[int] = ..., value: _Optional[str] = ...) -> None: ...
    ADDRESSES_FIELD_NUMBER: _ClassVar[int]
    JOIN_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    addresses: _containers.ScalarMap[int, str]
    join: bool
    type: StateMachineType
    def __init__(self, addresses: _Optional[_Mapping[int, str]] = ..., join: _Optional[bool] = ..., type: _Optional[_Union[StateMachineType, str]] = ...) -> None: ...

class SnapshotHeader(_message.Message):
    __slots__ = ("version", "session_size", "data_size", "compression", "payload_checksum")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SESSION_SIZE_FIELD_NUMBER: _ClassVar[int]
    DATA_SIZE_FIELD_NUMBER: _ClassVar[int]
    COMPRESSION_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_CHECKSUM_FIELD_NUMBER: _ClassVar[int]
    version: int
    session_size: int
    data_size: int
    compression: int
    payload_checksum: bytes
    def __init__(self, version: _Optional[int] = ..., session_size: _Optional[int] = ..., data_size: _Optional[int] = ..., compression: _Optional[int] = ..., payload_checksum: _Optional[bytes] = ...) -> None: ...

class SnapshotChunk(_message.Message):
    __slots__ = ("shard_id", "replica_id", "from_id", "deployment_id", "bin_ver", "index", "term", "message_term", "chunk_id", "chunk_count", "file_size", "filepath", "data", "chunk_checksum", "file_checksum", "membership", "witness", "dummy", "on_disk_index", "type", "source_address", "files", "file_index", "file_offset", "snapshot_checksum", "imported")
    SHARD_ID_FIELD_NUMBER: _ClassVar[int]
    REPLICA_ID_FIELD_NUMBER: _ClassVar[int]
    FROM_ID_FIELD_NUMBER: _ClassVar[int]
    DEPLOYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    BIN_VER_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    TERM_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_TERM_FIELD_NUMBER: _ClassVar[int]
    CHUNK_ID_FIELD_NUMBER: _ClassVar[int]
    CHUNK_COUNT_FIELD_NUMBER: _ClassVar[int]
    FILE_SIZE_FIELD_NUMBER: _ClassVar[int]
    FILEPATH_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    CHUNK_CHECKSUM_FIELD_NUMBER: _ClassVar[int]
    FILE_CHECKSUM_FIELD_NUMBER: _ClassVar[int]
    MEMBERSHIP_FIELD_NUMBER: _ClassVar[int]
    WITNESS_FIELD_NUMBER: _ClassVar[int]
    DUMMY_FIELD_NUMBER: _ClassVar[int]
    ON_DISK_INDEX_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    FILE_INDEX_FIELD_NUMBER: _ClassVar[int]
    FILE_OFFSET_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_CHECKSUM_FIELD_NUMBER: _ClassVar[int]
    IMPORTED_FIELD_NUMBER: _ClassVar[int]
    shard_id: int
    replica_id: int
    from_id: int
    deployment_id: int
    bin_ver: int
    index: int
    term: int
    message_term: int
    chunk_id: int
    chunk_count: int
    file_size: int
    filepath: str
    data: bytes
    chunk_checksum: int
    file_checksum: bytes
    membership: Membership
    witness: bool
    dummy: bool
    on_disk_index: int
    type: StateMachineType
    source_address: str
    files: _containers.RepeatedCompositeFieldContainer[SnapshotFile]
    file_index: int
    file_offset: int
    snapshot_checksum: bytes
    imported: bool
    def __init__(self, shard_id: _Optional[int] = ..., replica_id: _Optional[int] = ..., from_id: _Optional[int] = ..., deployment_id: _Optional[int] = ..., bin_ver: _Optional[int] = ..., index: _Optional[int] = ..., term: _Optional[int] = ..., message_term: _Optional[int] = ..., chunk_id: _Optional[int] = ..., chunk_count: _Optional[int] = ..., file_size: _Optional[int] = ..., filepath: _Optional[str] = ..., data: _Optional[bytes] = ..., chunk_checksum: _Optional[int] = ..., file_checksum: _Optional[bytes] = ..., membership: _Optional[_Union[Membership, _Mapping]] = ..., witness: _Optional[bool] = ..., dummy: _Optional[bool] = ..., on_disk_index: _Optional[int] = ..., type: _Optional[_Union[StateMachineType, str]] = ..., source_address: _Optional[str] = ..., files: _Optional[_Iterable[_Union[SnapshotFile, _Mapping]]] = ..., file_index: _Optional[int] = ..., file_offset: _Optional[int] = ..., snapshot_checksum: _Optional[bytes] = ..., imported: _Optional[bool] = ...) -> None: ...

class Ack(_message.Message):
    __slots__ = ("received",)
    RECEIVED_FIELD_NUMBER: _ClassVar[int]
    received: int
    def __init__(self, received: _Optional[int] = ...) -> None: ...

class HostAddress(_message.Message):
    __slots__ = ("node_host_id", "address")
    NODE_HOST_ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    node_host_id: str
    address: str
    def __init__(self, node_host_id: _Optional[str] = ..., address: _Optional[str] = ...) -> None: ...

class HostHello(_message.Message):
    __slots__ = ("deployment_id", "bin_ver", "node_host_id", "address", "known")
    DEPLOYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    BIN_VER_FIELD_NUMBER: _ClassVar[int]
    NODE_HOST_ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    KNOWN_FIELD_NUMBER: _ClassVar[int]
    deployment_id: int
    bin_ver: int
    node_host_id: str
    address: str
    known: _containers.RepeatedCompositeFieldContainer[HostAddress]
    def __init__(self, deployment_id: _Optional[int] = ..., bin_ver: _Optional[int] = ..., node_host_id: _Optional[str] = ..., address: _Optional[str] = ..., known: _Optional[_Iterable[_Union[HostAddress, _Mapping]]] = ...) -> None: ...
