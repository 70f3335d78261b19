from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Header(_message.Message):
    __slots__ = ("schema_version", "timestamp_ns", "proposal_id", "proposer_term", "ignorable_if_unknown")
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_NS_FIELD_NUMBER: _ClassVar[int]
    PROPOSAL_ID_FIELD_NUMBER: _ClassVar[int]
    PROPOSER_TERM_FIELD_NUMBER: _ClassVar[int]
    IGNORABLE_IF_UNKNOWN_FIELD_NUMBER: _ClassVar[int]
    schema_version: int
    timestamp_ns: int
    proposal_id: bytes
    proposer_term: int
    ignorable_if_unknown: bool
    def __init__(self, schema_version: _Optional[int] = ..., timestamp_ns: _Optional[int] = ..., proposal_id: _Optional[bytes] = ..., proposer_term: _Optional[int] = ..., ignorable_if_unknown: _Optional[bool] = ...) -> None: ...

class Entry(_message.Message):
    __slots__ = ("header", "events")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    header: Header
    events: bytes
    def __init__(self, header: _Optional[_Union[Header, _Mapping]] = ..., events: _Optional[bytes] = ...) -> None: ...
