"""The dqlite wire codec: golden bytes, round trips, and hostile input.

The response fixtures are bytes dqlite's C server (libdqlite 1.11) sent to a raw socket;
the request fixtures are what go-dqlite's encoder produces for the same fields, and the
ones marked "accepted" were answered by that server as shown.
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nodehost.sqlite.wire.codec import (
    DEFAULT_MAX_BODY,
    PROTOCOL_VERSION,
    PROTOCOL_VERSION_LEGACY,
    AddRequest,
    AssignRequest,
    ClientRequest,
    ClusterFormat,
    ClusterRequest,
    Consistency,
    DbResponse,
    DecodeError,
    DescribeRequest,
    DumpRequest,
    EmptyResponse,
    EncodeError,
    ExecRequest,
    ExecSqlRequest,
    FailureResponse,
    File,
    FilesResponse,
    FinalizeRequest,
    FrameReader,
    Header,
    HeartbeatRequest,
    InterruptRequest,
    Iso8601,
    LeaderRequest,
    MetadataResponse,
    NodeInfo,
    OpenRequest,
    PrepareRequest,
    QueryRequest,
    QuerySqlRequest,
    RemoveRequest,
    Request,
    RequestTag,
    RequestType,
    Response,
    ResponseType,
    ResultResponse,
    Role,
    RowsResponse,
    ServerLegacyResponse,
    ServerResponse,
    ServersResponse,
    StmtResponse,
    TransferRequest,
    UnixTime,
    Value,
    WeightRequest,
    WelcomeResponse,
    batch_rows,
    decode_handshake,
    decode_request,
    decode_response,
    encode_handshake,
    encode_request,
    encode_response,
    encoded_row_size,
)


def split(data: bytes) -> tuple[Header, bytes]:
    return Header.decode(data[:8]), data[8:]


def request_of(data: bytes) -> Request:
    return decode_request(*split(data))


def response_of(data: bytes, **options: object) -> Response:
    header, body = split(data)
    return decode_response(header, body, **options)  # type: ignore[arg-type]


# -- golden bytes: what dqlite's C server sent ------------------------------------------

LEADER_ID = 0x2DC171858C3155BE
SERVER_GOLDEN = bytes.fromhex("0300000001000000be5531 8c8571c12d".replace(" ", "")) + (
    b"127.0.0.1:19001\x00"
)
CLUSTER_GOLDEN = bytes.fromhex(
    "0d00000003000000"
    "0300000000000000"
    "be55318c8571c12d" + b"127.0.0.1:19001\x00".hex() + "0000000000000000"
    "83d2ac932a4ac7f9" + b"127.0.0.1:19002\x00".hex() + "0000000000000000"
    "d856092ae8a3c298" + b"127.0.0.1:19003\x00".hex() + "0000000000000000"
)
# SELECT 1, 2.5, 'x', x'0102', null, 'k' AS kk
ROWS_GOLDEN = bytes.fromhex(
    "100000000700000006000000000000003100000000000000322e3500000000002778270000000000"
    "78273031303227006e756c6c000000006b6b00000000000021433500000000000100000000000000"
    "00000000000004407800000000000000020000000000000001020000000000000000000000000000"
    "6b00000000000000ffffffffffffffff"
)
# SELECT * FROM t: columns a INTEGER, d DATETIME (text), b BOOLEAN, ts TIMESTAMP (integer)
TIME_ROWS_GOLDEN = bytes.fromhex(
    "0d000000070000000400000000000000610000000000000064000000000000006200000000000000"
    "7473000000000000a19b0000000000000100000000000000323032302d30312d30322030333a3034"
    "3a3035000000000001000000000000001100000000000000ffffffffffffffff"
)
# SELECT ?,?,?,?,?,?,? bound to -5, 1.5, 'hé', x'616263', NULL, ISO8601, true
PARAMS_ROWS_GOLDEN = bytes.fromhex(
    "1400000007000000070000000000000"
    "03f000000000000003f000000000000003f000000000000003f000000000000003f00000000000000"
    "3f000000000000003f000000000000002143350100000000fbffffffffffffff000000000000f83f"
    "68c3a900000000000300000000000000616263000000000000000000000000003230323 42d30322d"
    "30332030343a30353a303600000000000100000000000000ffffffffffffffff".replace(" ", "")
)
PARAMS_ROWS_REQUEST = b"".join(  # accepted: answered with PARAMS_ROWS_GOLDEN
    [
        bytes.fromhex("0f000000090000000000000000000000"),
        b"select ?,?,?,?,?,?,?\x00".ljust(24, b"\x00"),
        bytes.fromhex("0701020304050a0b"),
        bytes.fromhex("fbffffffffffffff000000000000f83f"),
        b"h\xc3\xa9".ljust(8, b"\x00"),
        bytes.fromhex("0300000000000000") + b"abc".ljust(8, b"\x00"),
        bytes(8),
        b"2024-02-03 04:05:06\x00".ljust(24, b"\x00"),
        bytes.fromhex("0100000000000000"),
    ]
)

RESPONSE_GOLDEN: list[tuple[str, bytes, Response]] = [
    ("server", SERVER_GOLDEN, ServerResponse(LEADER_ID, "127.0.0.1:19001")),
    ("welcome", bytes.fromhex("0100000002000000983a000000000000"), WelcomeResponse(15000)),
    (
        "cluster",
        CLUSTER_GOLDEN,
        ServersResponse(
            (
                NodeInfo(LEADER_ID, "127.0.0.1:19001", Role.VOTER),
                NodeInfo(0xF9C74A2A93ACD283, "127.0.0.1:19002", Role.VOTER),
                NodeInfo(0x98C2A3E82A0956D8, "127.0.0.1:19003", Role.VOTER),
            )
        ),
    ),
    (
        "metadata",
        bytes.fromhex("02000000 0a000000".replace(" ", "") + "00" * 16),
        MetadataResponse(0, 0),
    ),
    ("db", bytes.fromhex("01000000040000000000000000000000"), DbResponse(0)),
    (
        "result",
        bytes.fromhex("020000000600000058020000000000005802000000000000"),
        ResultResponse(600, 600),
    ),
    (
        "stmt",
        bytes.fromhex("020000000500000000000000000000000100000000000000"),
        StmtResponse(0, 0, 1),
    ),
    ("empty", bytes.fromhex("01000000080000000000000000000000"), EmptyResponse()),
    (
        "syntax error",
        bytes.fromhex(
            "04000000000000000100000000000000696e636f6d706c65746520696e7075740000000000000000"
        ),
        FailureResponse(1, "incomplete input"),
    ),
    (
        "unique",
        bytes.fromhex(
            "05000000000000001308000000000000"
            "554e4951554520636f6e73747261696e74206661696c65643a20672e6e000000"
        ),
        FailureResponse(2067, "UNIQUE constraint failed: g.n"),
    ),
    (
        "not leader",
        bytes.fromhex("03000000000000000a28000000000000") + b"not leader".ljust(16, b"\x00"),
        FailureResponse(10250, "not leader"),
    ),
    (
        "rows",
        ROWS_GOLDEN,
        RowsResponse(
            ("1", "2.5", "'x'", "x'0102'", "null", "kk"),
            ((1, 2.5, "x", b"\x01\x02", None, "k"),),
        ),
    ),
    (
        "time rows",
        TIME_ROWS_GOLDEN,
        RowsResponse(
            ("a", "d", "b", "ts"), ((1, Iso8601("2020-01-02 03:04:05"), True, UnixTime(17)),)
        ),
    ),
    (
        "bound rows",
        PARAMS_ROWS_GOLDEN,
        RowsResponse(("?",) * 7, ((-5, 1.5, "hé", b"abc", None, "2024-02-03 04:05:06", 1),)),
    ),
]


@pytest.mark.parametrize(
    ("data", "message"),
    [(data, message) for _, data, message in RESPONSE_GOLDEN],
    ids=[name for name, _, _ in RESPONSE_GOLDEN],
)
def test_golden_responses_decode_and_encode_byte_exact(data: bytes, message: Response) -> None:
    assert response_of(data) == message
    assert encode_response(message) == data


def test_rows_batches_end_in_part_then_done() -> None:
    """A long result is several ROWS messages; each repeats the columns (as dqlite does)."""
    part = bytes.fromhex(
        "0500000007000000"
        "0100000000000000" + b"n".ljust(8, b"\x00").hex() + "0100000000000000"
        "0700000000000000"
        "eeeeeeeeeeeeeeee"
    )
    assert response_of(part) == RowsResponse(("n",), ((7,),), done=False)
    assert encode_response(RowsResponse(("n",), ((7,),), done=False)) == part


def test_legacy_server_and_v0_cluster_layouts() -> None:
    legacy = encode_response(ServerLegacyResponse("10.0.0.1:9001"))
    assert legacy == bytes.fromhex("0200000001000000") + b"10.0.0.1:9001".ljust(16, b"\x00")
    assert response_of(legacy, legacy=True) == ServerLegacyResponse("10.0.0.1:9001")
    v0 = ServersResponse((NodeInfo(1, "a:1", None),), ClusterFormat.V0)
    data = encode_response(v0)
    assert data == bytes.fromhex("030000000300000001000000000000000100000000000000") + (
        b"a:1".ljust(8, b"\x00")
    )
    assert response_of(data, cluster_format=ClusterFormat.V0) == v0


def test_files_response_layout() -> None:
    files = FilesResponse((File("demo", b"\x01" * 16), File("demo-wal", b"")))
    data = encode_response(files)
    assert data[:16] == bytes.fromhex("08000000090000000200000000000000")
    assert data[16:24] == b"demo\x00\x00\x00\x00"
    assert data[24:32] == struct.pack("<Q", 16)
    assert response_of(data) == files


# -- golden bytes: requests as go-dqlite encodes them ----------------------------------

REQUEST_GOLDEN: list[tuple[str, bytes, Request]] = [
    ("leader", bytes.fromhex("01000000000000000000000000000000"), LeaderRequest()),
    ("client", bytes.fromhex("01000000010000002a00000000000000"), ClientRequest(42)),
    ("heartbeat", bytes.fromhex("01000000020000000500000000000000"), HeartbeatRequest(5)),
    (
        "open",  # accepted
        bytes.fromhex("0400000003000000")
        + b"demo\x00\x00\x00\x00"
        + bytes(8)
        + b"volatile".ljust(16, b"\x00"),
        OpenRequest("demo"),
    ),
    (
        "prepare",  # accepted
        bytes.fromhex("03000000040000000000000000000000") + b"select ?, ?".ljust(16, b"\x00"),
        PrepareRequest(0, "select ?, ?"),
    ),
    (
        "prepare v1",
        bytes.fromhex("02000000040100000000000000000000") + b"x;".ljust(8, b"\x00"),
        PrepareRequest(0, "x;", schema=1),
    ),
    (
        "exec",
        bytes.fromhex("0300000005000000010000000200000001010000000000000900000000000000"),
        ExecRequest(1, 2, (9,)),
    ),
    ("exec no params", bytes.fromhex("01000000050000000100000002000000"), ExecRequest(1, 2)),
    (
        "query",
        bytes.fromhex("0300000006000000000000000300000001050000000000000000000000000000"),
        QueryRequest(0, 3, (None,)),
    ),
    (
        "finalize",  # accepted
        bytes.fromhex("01000000070000000000000000000000"),
        FinalizeRequest(0, 0),
    ),
    (
        "exec sql",  # accepted
        bytes.fromhex("05000000080000000000000000000000")
        + b"insert into g values (5)".ljust(32, b"\x00"),
        ExecSqlRequest(0, "insert into g values (5)"),
    ),
    (
        "query sql with parameters",  # accepted
        PARAMS_ROWS_REQUEST,
        QuerySqlRequest(
            0,
            "select ?,?,?,?,?,?,?",
            (-5, 1.5, "hé", b"abc", None, Iso8601("2024-02-03 04:05:06"), True),
        ),
    ),
    ("interrupt", bytes.fromhex("010000000a0000000000000000000000"), InterruptRequest(0)),
    (
        "add",
        bytes.fromhex("020000000c0000000700000000000000") + b"h:1".ljust(8, b"\x00"),
        AddRequest(7, "h:1"),
    ),
    (
        "assign",
        bytes.fromhex("020000000d00000007000000000000000100000000000000"),
        AssignRequest(7, Role.STANDBY),
    ),
    (
        "promote",
        bytes.fromhex("010000000d0000000700000000000000"),
        AssignRequest(7, None),
    ),
    ("remove", bytes.fromhex("010000000e0000000700000000000000"), RemoveRequest(7)),
    (
        "dump",
        bytes.fromhex("010000000f000000") + b"demo".ljust(8, b"\x00"),
        DumpRequest("demo"),
    ),
    ("cluster", bytes.fromhex("01000000100000000100000000000000"), ClusterRequest()),
    ("transfer", bytes.fromhex("01000000110000000700000000000000"), TransferRequest(7)),
    ("describe", bytes.fromhex("01000000120000000000000000000000"), DescribeRequest()),
    ("weight", bytes.fromhex("01000000130000000300000000000000"), WeightRequest(3)),
]


@pytest.mark.parametrize(
    ("data", "message"),
    [(data, message) for _, data, message in REQUEST_GOLDEN],
    ids=[name for name, _, _ in REQUEST_GOLDEN],
)
def test_golden_requests_decode_and_encode_byte_exact(data: bytes, message: Request) -> None:
    assert encode_request(message) == data
    assert request_of(data) == message


def test_more_than_255_parameters_use_schema_1_with_a_four_byte_count() -> None:
    params = tuple(range(256))
    data = encode_request(ExecSqlRequest(0, "x", params))
    header, body = split(data)
    assert header.schema == 1
    assert body[16:20] == struct.pack("<I", 256)
    # 4 count bytes + 256 type bytes, padded to 264, then 256 integer words
    assert len(body) == 16 + 264 + 256 * 8
    assert request_of(data) == ExecSqlRequest(0, "x", params)


def test_the_handshake_is_one_little_endian_word() -> None:
    assert encode_handshake() == bytes.fromhex("0100000000000000")
    assert decode_handshake(encode_handshake(PROTOCOL_VERSION_LEGACY)) == PROTOCOL_VERSION_LEGACY
    with pytest.raises(DecodeError, match="unsupported protocol version"):
        decode_handshake(encode_handshake(2))


# -- nodehost's extension: the request tag ----------------------------------------------


def test_a_tagged_request_carries_consistency_in_extra_and_its_sequence_after_the_params() -> None:
    tag = RequestTag(Consistency.WEAK, sequence=9)
    data = encode_request(QuerySqlRequest(0, "select 1", (), tag))
    header, body = split(data)
    assert header.extra == 0b101
    # db id, sql, an explicit empty tuple (so the sequence is not read as a count), sequence
    assert body == bytes(8) + b"select 1\x00".ljust(16, b"\x00") + bytes(8) + struct.pack("<Q", 9)
    assert request_of(data) == QuerySqlRequest(0, "select 1", (), tag)
    untagged_read = encode_request(QuerySqlRequest(0, "select 1", (), RequestTag(Consistency.NONE)))
    assert split(untagged_read)[0].extra == 2
    assert len(split(untagged_read)[1]) == 24


def test_unknown_tag_bits_are_refused() -> None:
    data = bytearray(encode_request(ExecSqlRequest(0, "x")))
    data[6] = 0x08
    with pytest.raises(DecodeError, match="unknown request tag bits"):
        request_of(bytes(data))
    data[6] = 0x03
    with pytest.raises(DecodeError, match="unknown read consistency"):
        request_of(bytes(data))


def test_the_failure_class_travels_in_extra() -> None:
    data = encode_response(FailureResponse(1, "You can only execute one statement", 7))
    assert split(data)[0].extra == 7
    assert response_of(data) == FailureResponse(1, "You can only execute one statement", 7)
    assert response_of(encode_response(FailureResponse(1, "x"))) == FailureResponse(1, "x", 0)


def test_welcome_features_travel_in_extra() -> None:
    data = encode_response(WelcomeResponse(15000, features=1))
    assert split(data)[0].extra == 1
    assert response_of(data) == WelcomeResponse(15000, 1)


# -- round trips ------------------------------------------------------------------------

u32 = st.integers(0, 2**32 - 1)
u64 = st.integers(0, 2**64 - 1)
i64 = st.integers(-(2**63), 2**63 - 1)
texts = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)))
values: st.SearchStrategy[Value] = st.one_of(
    i64,
    st.floats(allow_nan=False),
    texts,
    st.binary(),
    st.none(),
    st.booleans(),
    texts.map(Iso8601),
    i64.map(UnixTime),
)
params = st.lists(values, max_size=20).map(tuple) | st.lists(
    st.integers(0, 1), min_size=256, max_size=300
).map(tuple)
tags = st.builds(RequestTag, st.sampled_from(Consistency), st.none() | u64)

requests: st.SearchStrategy[Request] = st.one_of(
    st.just(LeaderRequest()),
    st.builds(ClientRequest, u64),
    st.builds(HeartbeatRequest, u64),
    st.builds(OpenRequest, texts, u64, texts),
    st.builds(PrepareRequest, u64, texts, st.sampled_from([0, 1])),
    st.builds(ExecRequest, u32, u32, params, tags),
    st.builds(QueryRequest, u32, u32, params, tags),
    st.builds(FinalizeRequest, u32, u32),
    st.builds(ExecSqlRequest, u64, texts, params, tags),
    st.builds(QuerySqlRequest, u64, texts, params, tags),
    st.builds(InterruptRequest, u64),
    st.builds(AddRequest, u64, texts),
    st.builds(AssignRequest, u64, st.none() | u64),
    st.builds(RemoveRequest, u64),
    st.builds(DumpRequest, texts),
    st.builds(ClusterRequest, u64),
    st.builds(TransferRequest, u64),
    st.builds(DescribeRequest, u64),
    st.builds(WeightRequest, u64),
)


@st.composite
def rows_responses(draw: st.DrawFn) -> RowsResponse:
    columns = draw(st.lists(texts, max_size=20).map(tuple))
    rows = (
        draw(st.lists(st.lists(values, min_size=len(columns), max_size=len(columns)).map(tuple)))
        if columns
        else []
    )
    return RowsResponse(columns, tuple(rows), draw(st.booleans()))


@st.composite
def servers_responses(draw: st.DrawFn) -> ServersResponse:
    cluster_format = draw(st.sampled_from(ClusterFormat))
    role = st.none() if cluster_format == ClusterFormat.V0 else u64
    servers = draw(st.lists(st.builds(NodeInfo, u64, texts, role), max_size=10))
    return ServersResponse(tuple(servers), cluster_format)


responses: st.SearchStrategy[Response] = st.one_of(
    st.builds(FailureResponse, u64, texts, st.integers(0, 2**16 - 1)),
    st.builds(ServerResponse, u64, texts),
    st.builds(WelcomeResponse, u64, st.integers(0, 2**16 - 1)),
    servers_responses(),
    st.builds(DbResponse, u32),
    st.builds(StmtResponse, u32, u32, u64, st.none() | u64),
    st.builds(ResultResponse, i64, u64),
    rows_responses(),
    st.just(EmptyResponse()),
    st.builds(FilesResponse, st.lists(st.builds(File, texts, st.binary()), max_size=4).map(tuple)),
    st.builds(MetadataResponse, u64, u64),
)


@given(requests)
def test_every_request_round_trips(request: Request) -> None:
    data = encode_request(request)
    assert len(data) % 8 == 0
    assert Header.decode(data[:8]).body_size == len(data) - 8
    assert request_of(data) == request


@given(responses)
def test_every_response_round_trips(response: Response) -> None:
    data = encode_response(response)
    assert len(data) % 8 == 0
    options: dict[str, object] = {}
    if isinstance(response, ServersResponse):
        options["cluster_format"] = response.format
    assert response_of(data, **options) == response


@given(st.lists(st.lists(values, min_size=3, max_size=3), max_size=50), st.integers(1, 512))
def test_batched_rows_reassemble_the_result(rows: list[list[Value]], limit: int) -> None:
    batches = list(batch_rows(("a", "b", "c"), rows, limit))
    assert [batch.done for batch in batches] == [False] * (len(batches) - 1) + [True]
    assert [row for batch in batches for row in batch.rows] == [tuple(row) for row in rows]
    for batch in batches[:-1]:
        assert sum(encoded_row_size(row) for row in batch.rows) >= limit


# -- hostile input -----------------------------------------------------------------------


@given(responses)
@settings(max_examples=60)
def test_every_truncation_of_a_response_is_a_clean_decode_error(response: Response) -> None:
    data = encode_response(response)
    header = Header.decode(data[:8])
    body = data[8:]
    for size in range(0, len(body), 8):
        truncated = Header(size // 8, header.type, header.schema, header.extra)
        try:
            decode_response(truncated, body[:size], cluster_format=ClusterFormat.V1)
        except DecodeError:
            pass


@given(st.sampled_from(ResponseType), st.binary(max_size=200).map(lambda b: b + bytes(-len(b) % 8)))
def test_random_response_bodies_decode_or_raise_decode_error(kind: int, body: bytes) -> None:
    try:
        decode_response(Header(len(body) // 8, kind), body)
    except DecodeError:
        pass


@given(
    st.sampled_from([t for t in RequestType if t is not RequestType.CONNECT]),
    st.integers(0, 1),
    st.integers(0, 7),
    st.binary(max_size=200).map(lambda b: b + bytes(-len(b) % 8)),
)
def test_random_request_bodies_decode_or_raise_decode_error(
    kind: int, schema: int, extra: int, body: bytes
) -> None:
    try:
        decode_request(Header(len(body) // 8, kind, schema, extra), body)
    except DecodeError:
        pass


def test_a_huge_count_is_refused_before_anything_is_allocated() -> None:
    body = struct.pack("<Q", 2**62) + bytes(8)
    with pytest.raises(DecodeError, match="column count"):
        decode_response(Header(2, ResponseType.ROWS), body)
    with pytest.raises(DecodeError, match="member count"):
        decode_response(Header(2, ResponseType.SERVERS), body)
    with pytest.raises(DecodeError, match="file count"):
        decode_response(Header(2, ResponseType.FILES), body)
    blob = struct.pack("<Q", 2**63) + bytes(8)
    rows = struct.pack("<Q", 1) + b"c".ljust(8, b"\x00") + bytes([4]) + bytes(7) + blob
    with pytest.raises(DecodeError, match="column 1"):
        decode_response(Header(len(rows) // 8, ResponseType.ROWS), rows)
    count = struct.pack("<Q", 0) + b"x".ljust(8, b"\x00") + struct.pack("<I", 2**32 - 1) + bytes(4)
    with pytest.raises(DecodeError, match="parameters do not fit"):
        decode_request(Header(len(count) // 8, RequestType.EXEC_SQL, schema=1), count)


def test_malformed_fields_are_named_in_the_error() -> None:
    with pytest.raises(DecodeError, match="no terminating NUL"):
        decode_response(Header(2, ResponseType.FAILURE), bytes(8) + b"abcdefgh")
    with pytest.raises(DecodeError, match="not valid UTF-8"):
        decode_response(Header(2, ResponseType.FAILURE), bytes(8) + b"\xff\xfe\x00" + bytes(5))
    bad_type = struct.pack("<Q", 1) + b"c".ljust(8, b"\x00") + bytes([7]) + bytes(7) + bytes(8)
    with pytest.raises(DecodeError, match="unknown value type 7"):
        decode_response(Header(5, ResponseType.ROWS), bad_type + b"\xff" * 8)
    with pytest.raises(DecodeError, match="bad end of rows marker"):
        decode_response(Header(2, ResponseType.ROWS), bytes(8) + b"\xff" * 7 + b"\x00")
    with pytest.raises(DecodeError, match="unexpected bytes"):
        decode_response(Header(3, ResponseType.ROWS), bytes(8) + b"\xff" * 8 + bytes(8))
    with pytest.raises(DecodeError, match="unknown response type 42"):
        decode_response(Header(1, 42), bytes(8))
    with pytest.raises(DecodeError, match="unknown request type 200"):
        decode_request(Header(1, 200), bytes(8))
    with pytest.raises(DecodeError, match="between dqlite nodes"):
        decode_request(Header(1, RequestType.CONNECT), bytes(8))
    with pytest.raises(DecodeError, match="unknown schema 3"):
        decode_request(Header(1, RequestType.LEADER, schema=3), bytes(8))
    with pytest.raises(DecodeError, match="header says"):
        decode_request(Header(2, RequestType.LEADER), bytes(8))


def test_a_header_announcing_an_oversized_body_is_refused() -> None:
    header = Header(2**32 - 1, ResponseType.ROWS).encode()
    with pytest.raises(DecodeError, match="more than the limit"):
        Header.decode(header)
    with pytest.raises(DecodeError, match="more than the limit"):
        Header.decode(Header(3, ResponseType.ROWS).encode(), max_body=16)
    assert Header.decode(Header(DEFAULT_MAX_BODY // 8, 7).encode()).body_size == DEFAULT_MAX_BODY


def test_the_frame_reader_refuses_an_oversized_body_before_it_arrives() -> None:
    reader = FrameReader(max_body=1024)
    reader.feed(Header(1000, ResponseType.ROWS).encode())
    with pytest.raises(DecodeError, match="more than the limit"):
        reader.next_frame()


def test_the_frame_reader_splits_a_stream_fed_byte_by_byte() -> None:
    stream = (
        encode_handshake()
        + encode_request(LeaderRequest())
        + encode_request(ExecSqlRequest(0, "x", (1, "two")))
    )
    reader = FrameReader(handshake=True)
    frames = []
    for byte in stream:
        reader.feed(bytes([byte]))
        while (frame := reader.next_frame()) is not None:
            frames.append(decode_request(frame.header, frame.body))
    assert reader.protocol_version == PROTOCOL_VERSION
    assert frames == [LeaderRequest(), ExecSqlRequest(0, "x", (1, "two"))]
    assert reader.buffered == 0


def test_a_frame_reader_refuses_an_unknown_protocol_version() -> None:
    reader = FrameReader(handshake=True)
    reader.feed(encode_handshake(7))
    with pytest.raises(DecodeError, match="unsupported protocol version"):
        reader.next_frame()


# -- what encoding refuses ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_", "reason"),
    [
        (ExecSqlRequest(0, "x", (2**63,)), "signed 64-bit"),
        (ExecSqlRequest(0, "x", (-(2**63) - 1,)), "signed 64-bit"),
        (ExecSqlRequest(0, "x", ("a\x00b",)), "NUL"),
        (ExecSqlRequest(0, "a\x00b"), "NUL"),
        (ExecSqlRequest(0, "x", ("\ud800",)), "UTF-8"),
        (ExecSqlRequest(0, "x", ([1],)), "type list cannot be sent"),  # type: ignore[arg-type]
        (ExecRequest(2**32, 0), "unsigned 32-bit"),
        (ClientRequest(-1), "unsigned 64-bit"),
        (PrepareRequest(0, "x", schema=2), "schemas 0 and 1"),
    ],
)
def test_values_the_wire_cannot_carry_are_refused(request_: Request, reason: str) -> None:
    with pytest.raises(EncodeError, match=reason):
        encode_request(request_)


def test_rows_must_match_their_columns() -> None:
    with pytest.raises(EncodeError, match="a row of 2 values in a result of 1 columns"):
        encode_response(RowsResponse(("a",), ((1, 2),)))
    with pytest.raises(EncodeError, match="without columns"):
        encode_response(RowsResponse((), ((),)))
    with pytest.raises(EncodeError, match="role"):
        encode_response(ServersResponse((NodeInfo(1, "a", None),)))
