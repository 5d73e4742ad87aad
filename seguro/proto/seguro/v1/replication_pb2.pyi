from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Record(_message.Message):
    __slots__ = ("event", "data", "chunks", "size", "key")
    EVENT_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    event: int
    data: bytes
    chunks: int
    size: int
    key: int
    def __init__(self, event: _Optional[int] = ..., data: _Optional[bytes] = ..., chunks: _Optional[int] = ..., size: _Optional[int] = ..., key: _Optional[int] = ...) -> None: ...

class Batch(_message.Message):
    __slots__ = ("epoch", "first_event", "records")
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    FIRST_EVENT_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    epoch: int
    first_event: int
    records: _containers.RepeatedCompositeFieldContainer[Record]
    def __init__(self, epoch: _Optional[int] = ..., first_event: _Optional[int] = ..., records: _Optional[_Iterable[_Union[Record, _Mapping]]] = ...) -> None: ...

class PushMessage(_message.Message):
    __slots__ = ("hello", "batch")
    HELLO_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    hello: Hello
    batch: Batch
    def __init__(self, hello: _Optional[_Union[Hello, _Mapping]] = ..., batch: _Optional[_Union[Batch, _Mapping]] = ...) -> None: ...

class Hello(_message.Message):
    __slots__ = ("master_id", "epoch", "ship", "genesis")
    MASTER_ID_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    SHIP_FIELD_NUMBER: _ClassVar[int]
    GENESIS_FIELD_NUMBER: _ClassVar[int]
    master_id: str
    epoch: int
    ship: str
    genesis: str
    def __init__(self, master_id: _Optional[str] = ..., epoch: _Optional[int] = ..., ship: _Optional[str] = ..., genesis: _Optional[str] = ...) -> None: ...

class Ack(_message.Message):
    __slots__ = ("replica_id", "durable_event", "applied_event", "highest_epoch", "error", "ship", "genesis")
    REPLICA_ID_FIELD_NUMBER: _ClassVar[int]
    DURABLE_EVENT_FIELD_NUMBER: _ClassVar[int]
    APPLIED_EVENT_FIELD_NUMBER: _ClassVar[int]
    HIGHEST_EPOCH_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    SHIP_FIELD_NUMBER: _ClassVar[int]
    GENESIS_FIELD_NUMBER: _ClassVar[int]
    replica_id: str
    durable_event: int
    applied_event: int
    highest_epoch: int
    error: str
    ship: str
    genesis: str
    def __init__(self, replica_id: _Optional[str] = ..., durable_event: _Optional[int] = ..., applied_event: _Optional[int] = ..., highest_epoch: _Optional[int] = ..., error: _Optional[str] = ..., ship: _Optional[str] = ..., genesis: _Optional[str] = ...) -> None: ...

class FetchRequest(_message.Message):
    __slots__ = ("from_event", "to_event", "ship", "genesis", "replica_id")
    FROM_EVENT_FIELD_NUMBER: _ClassVar[int]
    TO_EVENT_FIELD_NUMBER: _ClassVar[int]
    SHIP_FIELD_NUMBER: _ClassVar[int]
    GENESIS_FIELD_NUMBER: _ClassVar[int]
    REPLICA_ID_FIELD_NUMBER: _ClassVar[int]
    from_event: int
    to_event: int
    ship: str
    genesis: str
    replica_id: str
    def __init__(self, from_event: _Optional[int] = ..., to_event: _Optional[int] = ..., ship: _Optional[str] = ..., genesis: _Optional[str] = ..., replica_id: _Optional[str] = ...) -> None: ...

class StatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class NodeStatus(_message.Message):
    __slots__ = ("id", "role", "epoch", "durable_event", "applied_event", "committed_event", "effects_sent", "datagrams_dropped", "error", "genesis")
    ID_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    DURABLE_EVENT_FIELD_NUMBER: _ClassVar[int]
    APPLIED_EVENT_FIELD_NUMBER: _ClassVar[int]
    COMMITTED_EVENT_FIELD_NUMBER: _ClassVar[int]
    EFFECTS_SENT_FIELD_NUMBER: _ClassVar[int]
    DATAGRAMS_DROPPED_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    GENESIS_FIELD_NUMBER: _ClassVar[int]
    id: str
    role: str
    epoch: int
    durable_event: int
    applied_event: int
    committed_event: int
    effects_sent: int
    datagrams_dropped: int
    error: str
    genesis: str
    def __init__(self, id: _Optional[str] = ..., role: _Optional[str] = ..., epoch: _Optional[int] = ..., durable_event: _Optional[int] = ..., applied_event: _Optional[int] = ..., committed_event: _Optional[int] = ..., effects_sent: _Optional[int] = ..., datagrams_dropped: _Optional[int] = ..., error: _Optional[str] = ..., genesis: _Optional[str] = ...) -> None: ...

class PokeRequest(_message.Message):
    __slots__ = ("jam",)
    JAM_FIELD_NUMBER: _ClassVar[int]
    jam: bytes
    def __init__(self, jam: _Optional[bytes] = ...) -> None: ...

class PokeReply(_message.Message):
    __slots__ = ("accepted", "error", "event")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    accepted: bool
    error: str
    event: int
    def __init__(self, accepted: _Optional[bool] = ..., error: _Optional[str] = ..., event: _Optional[int] = ...) -> None: ...

class StepDownRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class StepDownReply(_message.Message):
    __slots__ = ("was_master",)
    WAS_MASTER_FIELD_NUMBER: _ClassVar[int]
    was_master: bool
    def __init__(self, was_master: _Optional[bool] = ...) -> None: ...

class ReloadRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ReloadReply(_message.Message):
    __slots__ = ("applied", "restart_needed", "error")
    class AppliedEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    APPLIED_FIELD_NUMBER: _ClassVar[int]
    RESTART_NEEDED_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    applied: _containers.ScalarMap[str, str]
    restart_needed: _containers.RepeatedScalarFieldContainer[str]
    error: str
    def __init__(self, applied: _Optional[_Mapping[str, str]] = ..., restart_needed: _Optional[_Iterable[str]] = ..., error: _Optional[str] = ...) -> None: ...

class ReinitRequest(_message.Message):
    __slots__ = ("by",)
    BY_FIELD_NUMBER: _ClassVar[int]
    by: str
    def __init__(self, by: _Optional[str] = ...) -> None: ...

class ReinitReply(_message.Message):
    __slots__ = ("accepted", "error", "aside")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ASIDE_FIELD_NUMBER: _ClassVar[int]
    accepted: bool
    error: str
    aside: str
    def __init__(self, accepted: _Optional[bool] = ..., error: _Optional[str] = ..., aside: _Optional[str] = ...) -> None: ...

class SnapshotRequest(_message.Message):
    __slots__ = ("ship", "genesis", "replica_id", "manifest_only")
    SHIP_FIELD_NUMBER: _ClassVar[int]
    GENESIS_FIELD_NUMBER: _ClassVar[int]
    REPLICA_ID_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_ONLY_FIELD_NUMBER: _ClassVar[int]
    ship: str
    genesis: str
    replica_id: str
    manifest_only: bool
    def __init__(self, ship: _Optional[str] = ..., genesis: _Optional[str] = ..., replica_id: _Optional[str] = ..., manifest_only: _Optional[bool] = ...) -> None: ...

class SnapshotChunk(_message.Message):
    __slots__ = ("event", "mug", "format", "name", "offset", "data")
    EVENT_FIELD_NUMBER: _ClassVar[int]
    MUG_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    event: int
    mug: int
    format: str
    name: str
    offset: int
    data: bytes
    def __init__(self, event: _Optional[int] = ..., mug: _Optional[int] = ..., format: _Optional[str] = ..., name: _Optional[str] = ..., offset: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...
