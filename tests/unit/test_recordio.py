"""meseta.api.recordio: framing, incremental decoding across any chunking, malformed streams."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meseta.api.recordio import MAX_RECORD_BYTES, Decoder, RecordIOError, encode

# The example stream from the API contract, section 1.3.
CONTRACT_STREAM = (
    b"107\n"
    b'{"type":"SUBSCRIBED","subscribed":{"framework_id":{"value":"6f1c-0000"},'
    b'"heartbeat_interval_seconds":15.0}}'
    b'20\n{"type":"HEARTBEAT"}'
)


def test_encode_prefixes_the_decimal_length() -> None:
    assert encode(b"hello") == b"5\nhello"
    assert encode(b"x" * 1234) == b"1234\n" + b"x" * 1234


def test_encode_refuses_an_empty_payload() -> None:
    with pytest.raises(ValueError, match="empty"):
        encode(b"")


def test_decodes_the_contract_example() -> None:
    decoder = Decoder()
    records = decoder.feed(CONTRACT_STREAM)
    assert records == [CONTRACT_STREAM[4:111], b'{"type":"HEARTBEAT"}']
    assert decoder.pending() == 0
    decoder.finish()


def test_decodes_byte_by_byte() -> None:
    decoder = Decoder()
    records = [record for byte in CONTRACT_STREAM for record in decoder.feed(bytes([byte]))]
    assert len(records) == 2
    assert records[1] == b'{"type":"HEARTBEAT"}'


def test_pending_counts_a_partial_header_then_the_partial_payload() -> None:
    decoder = Decoder()
    assert decoder.feed(b"1") == []
    assert decoder.pending() == 1
    assert decoder.feed(b"0\nabc") == []
    assert decoder.pending() == 3  # the parsed header is no longer held
    assert decoder.feed(b"defghij7\n") == [b"abcdefghij"]
    assert decoder.pending() == 0
    assert decoder.feed(b"pay") == []
    assert decoder.pending() == 3
    assert decoder.feed(b"load") == [b"payload"]
    assert decoder.pending() == 0


def test_leading_zeros_are_accepted_as_mesos_does() -> None:
    assert Decoder().feed(b"005\nhello") == [b"hello"]


def test_accepts_bytearray_and_memoryview_chunks() -> None:
    decoder = Decoder()
    assert decoder.feed(bytearray(b"3\nab")) == []
    assert decoder.feed(memoryview(b"c")) == [b"abc"]


def test_a_large_record_in_small_chunks() -> None:
    payload = bytes(range(256)) * 16384  # 4 MiB
    stream = encode(payload)
    decoder = Decoder()
    records: list[bytes] = []
    for start in range(0, len(stream), 1000):
        records += decoder.feed(stream[start : start + 1000])
    assert records == [payload]


@given(
    payloads=st.lists(st.binary(min_size=1, max_size=300), max_size=20),
    cuts=st.lists(st.integers(min_value=0, max_value=7000), max_size=30),
)
def test_round_trip_under_any_chunking(payloads: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(encode(payload) for payload in payloads)
    bounds = sorted({0, len(stream), *(cut for cut in cuts if cut < len(stream))})
    decoder = Decoder()
    records: list[bytes] = []
    for start, end in itertools.pairwise(bounds):
        records += decoder.feed(stream[start:end])
    assert records == payloads
    assert decoder.pending() == 0
    decoder.finish()


@given(
    payloads=st.lists(st.binary(min_size=1, max_size=100), min_size=1, max_size=5),
    data=st.data(),
)
def test_a_truncated_stream_fails_at_finish(payloads: list[bytes], data: st.DataObject) -> None:
    stream = b"".join(encode(payload) for payload in payloads)
    cut = data.draw(st.integers(min_value=1, max_value=len(stream) - 1))
    decoder = Decoder()
    records = decoder.feed(stream[:cut])
    assert records == payloads[: len(records)]
    rest = stream[sum(len(encode(record)) for record in records) : cut]
    header_end = rest.find(b"\n")
    assert decoder.pending() == len(rest) - (header_end + 1 if header_end >= 0 else 0)
    if not rest:  # the cut fell on a record boundary
        decoder.finish()
        return
    with pytest.raises(RecordIOError, match="stream ended inside"):
        decoder.finish()


@pytest.mark.parametrize(
    "header",
    [b"abc", b" 5", b"5 ", b"", b"+5", b"-5", b"5\r", b"0x5", b"1.5", b"\xd9\xa5"],
)
def test_malformed_length_headers_are_rejected(header: bytes) -> None:
    with pytest.raises(RecordIOError, match="malformed length header"):
        Decoder().feed(header + b"\nhello")


def test_zero_length_is_rejected() -> None:
    with pytest.raises(RecordIOError, match="length 0"):
        Decoder().feed(b"0\n")


def test_lengths_over_the_limit_are_rejected_before_buffering() -> None:
    with pytest.raises(RecordIOError, match="exceeds the limit of 10"):
        Decoder(max_record_bytes=10).feed(b"11\n")
    assert Decoder(max_record_bytes=10).feed(b"10\n0123456789") == [b"0123456789"]
    with pytest.raises(RecordIOError, match="exceeds the limit"):
        Decoder().feed(b"%d\n" % (MAX_RECORD_BYTES + 1))


def test_a_header_without_newline_is_rejected_once_too_long() -> None:
    decoder = Decoder()
    assert decoder.feed(b"1" * 20) == []  # 2**64 - 1 has 20 digits: still possible
    with pytest.raises(RecordIOError, match="too long"):
        decoder.feed(b"1")
    with pytest.raises(RecordIOError, match="too long"):
        Decoder().feed(b"{" + b"x" * 100)  # a JSON body without framing


def test_a_failed_decoder_stays_failed() -> None:
    decoder = Decoder()
    assert decoder.feed(b"2\nok") == [b"ok"]
    with pytest.raises(RecordIOError):
        decoder.feed(b"x\n")
    with pytest.raises(RecordIOError, match="failed earlier"):
        decoder.feed(b"2\nok")
    with pytest.raises(RecordIOError, match="failed earlier"):
        decoder.finish()


def test_finish_names_where_the_stream_stopped() -> None:
    decoder = Decoder()
    decoder.feed(b"12")
    with pytest.raises(RecordIOError, match="inside a length header: b'12'"):
        decoder.finish()
    decoder = Decoder()
    decoder.feed(b"5\nabc")
    with pytest.raises(RecordIOError, match=r"inside a record \(3 of 5 bytes\)"):
        decoder.finish()


def test_max_record_bytes_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Decoder(max_record_bytes=0)


def test_recordio_error_is_a_value_error() -> None:
    assert issubclass(RecordIOError, ValueError)
