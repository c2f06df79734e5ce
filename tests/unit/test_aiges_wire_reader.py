"""The C++ plugin server's reader of ``aiges.Request`` bodies (native/aiges/wire_reader.h).

The native server reads wrapperOnceExec's body from gRPC's slices itself instead of
through protobuf; these tests hold it to protobuf's own parser (``aiges_pb2``): the same
values for valid bodies cut into pieces anywhere, unknown fields of every wire type
skipped, and an error (never a crash or an out-of-bounds read) exactly where protobuf
refuses the body. Every piece is released once, after its last payload byte is copied.

The reader runs in a child process (``server.aiges._native._parse_request``): the native
module links the system gRPC, which must not meet grpcio's copy in the test process, and
a crash there fails the test instead of killing pytest.
"""

from __future__ import annotations

import itertools
import pickle
import random
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.message import DecodeError

from server.aiges.native import native_required, why_missing
from server.aiges.proto import aiges_pb2

REPO = Path(__file__).resolve().parents[2]

CHILD = r"""
import pickle, struct, sys
from server.aiges import _native
inp, out = sys.stdin.buffer, sys.stdout.buffer
while True:
    head = inp.read(4)
    if len(head) < 4:
        break
    chunks = pickle.loads(inp.read(struct.unpack("<I", head)[0]))
    try:
        answer = ("ok", _native._parse_request(chunks))
    except ValueError as exc:
        answer = ("error", str(exc))
    blob = pickle.dumps(answer)
    out.write(struct.pack("<I", len(blob)) + blob)
    out.flush()
"""


class Reader:
    """A child process running the native reader; :meth:`parse` sends it one body."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", CHILD],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=REPO,
        )

    def parse(self, chunks: list[bytes]) -> tuple[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        blob = pickle.dumps(chunks)
        self.proc.stdin.write(struct.pack("<I", len(blob)) + blob)
        self.proc.stdin.flush()
        head = self.proc.stdout.read(4)
        if len(head) < 4:
            raise AssertionError(f"the reader died (exit {self.proc.wait(5)}) on {chunks!r:.300}")
        answer: tuple[str, Any] = pickle.loads(self.proc.stdout.read(struct.unpack("<I", head)[0]))
        return answer

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(10)


@pytest.fixture(scope="module")
def reader() -> Iterator[Reader]:
    if not list((REPO / "server" / "aiges").glob("_native*.so")):
        if native_required():
            pytest.fail(why_missing("server.aiges._native"))
        pytest.skip(why_missing("server.aiges._native"))
    r = Reader()
    yield r
    r.close()


# -- building bodies ----------------------------------------------------------------------
def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def key(field: int, wire_type: int) -> bytes:
    return varint(field << 3 | wire_type)


def ld(field: int, payload: bytes) -> bytes:
    return key(field, 2) + varint(len(payload)) + payload


UNKNOWN = [
    key(15, 0) + varint(2**63 + 5),
    key(16, 1) + b"\x01" * 8,
    ld(17, b"ignored \xff bytes"),
    key(18, 5) + b"\x02" * 4,
    key(19, 3) + key(1, 0) + varint(7) + ld(2, b"x") + key(19, 4),
    key(20, 3) + key(21, 3) + key(21, 4) + key(20, 4),
]
"""Unknown fields of every wire type protobuf has, groups (nested) included."""


def expected(body: bytes) -> tuple[str, Any]:
    """What protobuf makes of ``body``, in the reader's shape, or ("error", ...)."""
    try:
        m = aiges_pb2.Request.FromString(body)
    except DecodeError as exc:
        return ("error", str(exc))
    items = [(d.key, d.data, d.type, d.status, dict(d.desc)) for d in m.list]
    return ("ok", (m.tag, dict(m.params), items))


def cut(body: bytes, rng: random.Random, pieces: int) -> list[bytes]:
    """``body`` in ``pieces`` chunks cut at random places (empty chunks possible)."""
    points = sorted(rng.randint(0, len(body)) for _ in range(pieces - 1))
    edges = [0, *points, len(body)]
    return [body[a:b] for a, b in itertools.pairwise(edges)]


def same(reader: Reader, chunks: list[bytes]) -> None:
    body = b"".join(chunks)
    want = expected(body)
    status, got = reader.parse(chunks)
    assert status == want[0], f"protobuf: {want}, reader: {status} {got!r:.300}"
    if status == "ok":
        tag, params, items, released = got
        assert (tag, params, items) == want[1]
        assert sorted(released) == list(range(len(chunks))), "every piece released once"
    else:
        assert " at byte " in got


def random_request(rng: random.Random) -> aiges_pb2.Request:
    def text() -> str:
        return "".join(rng.choice("ab\u00e9\u4e2d\U0001f600 ") for _ in range(rng.randint(0, 6)))

    return aiges_pb2.Request(
        tag=text(),
        params={text(): text() for _ in range(rng.randint(0, 3))},
        list=[
            aiges_pb2.RequestData(
                key=text(),
                len=rng.randint(0, 2**64 - 1),
                type=rng.randint(0, 2**32 - 1),
                status=rng.randint(0, 3),
                desc={text(): text() for _ in range(rng.randint(0, 2))},
                data=rng.randbytes(rng.choice([0, 1, 7, 300, 5000])),
            )
            for _ in range(rng.randint(0, 4))
        ],
    )


# -- valid bodies ---------------------------------------------------------------------------
def test_random_requests_cut_anywhere_read_as_protobuf_reads_them(reader: Reader) -> None:
    rng = random.Random(12)
    for _ in range(300):
        body = random_request(rng).SerializeToString()
        same(reader, cut(body, rng, rng.randint(1, 8)))


def test_empty_body_is_an_empty_request(reader: Reader) -> None:
    assert reader.parse([]) == ("ok", ("", {}, [], []))
    assert reader.parse([b"", b""]) == ("ok", ("", {}, [], [0, 1]))


def test_unknown_fields_of_every_wire_type_are_skipped_at_every_level(reader: Reader) -> None:
    rng = random.Random(5)
    entry = ld(1, b"k") + ld(2, b"v")
    data = ld(1, b"key") + b"".join(UNKNOWN) + ld(5, entry) + ld(6, b"payload") + key(3, 0)
    body = ld(1, b"tag") + b"".join(UNKNOWN) + ld(2, entry) + ld(3, data + varint(2))
    body += b"".join(UNKNOWN)
    assert expected(body) == ("ok", ("tag", {"k": "v"}, [("key", b"payload", 2, 0, {"k": "v"})]))
    for pieces in (1, 2, 5, 40):
        same(reader, cut(body, rng, pieces))


def test_a_map_entry_holding_an_unknown_field_is_dropped_as_upb_drops_it(reader: Reader) -> None:
    # upb (grpcio's parser) moves such an entry to the parent's unknown fields: it is not
    # in the map. Both servers must give the wrapper the same params and desc.
    for unknown in [*UNKNOWN, key(2, 0) + varint(1), key(1, 5) + b"abcd"]:
        entry = ld(1, b"k") + unknown + ld(2, b"v")
        good = ld(1, b"g") + ld(2, b"h")
        body = ld(2, entry) + ld(2, good) + ld(3, ld(5, entry) + ld(5, good))
        for pieces in (1, 3, 7):
            same(reader, cut(body, random.Random(pieces), pieces))
        assert reader.parse([body])[1][:3] == ("", {"g": "h"}, [("", b"", 0, 0, {"g": "h"})])


def test_field_number_0_inside_an_unknown_group_is_accepted_as_upb_does(reader: Reader) -> None:
    inside = [
        key(0, 0) + varint(1),
        ld(0, b"zero"),
        key(0, 3) + key(0, 4),
        key(0, 3) + key(0, 0) + varint(5) + key(0, 4),
    ]
    for content in inside:
        group = key(9, 3) + content + key(9, 4)
        for body in (group + ld(1, b"t"), ld(3, group + ld(1, b"k")), ld(2, ld(1, b"a") + group)):
            same(reader, [body])
            same(reader, [bytes([b]) for b in body])
        assert reader.parse([group + ld(1, b"t")])[0] == "ok"
    # outside a group it is still an error, as for upb
    same(reader, [key(0, 0) + varint(1)])


@pytest.mark.parametrize(
    ("where", "wrap"),
    [
        ("top", lambda g: g),
        ("RequestData", lambda g: ld(3, g)),
        ("params entry", lambda g: ld(2, g)),
        ("desc entry", lambda g: ld(3, ld(5, g))),
    ],
)
def test_the_depth_limit_counts_the_messages_around_a_group_as_upb_does(
    reader: Reader, where: str, wrap: Any
) -> None:
    # upb's limit (100) counts sub-messages and groups alike: a group inside a RequestData
    # has one level less than at the top, inside a desc entry two less.
    for n in range(96, 103):
        same(reader, [wrap(key(9, 3) * n + key(9, 4) * n)])


def test_a_known_field_with_another_wire_type_is_an_unknown_field(reader: Reader) -> None:
    body = key(1, 0) + varint(3) + ld(3, key(6, 0) + varint(9) + key(3, 2) + varint(0))
    same(reader, [body])
    assert reader.parse([body])[1][2] == [("", b"", 0, 0, {})]


def test_the_last_value_of_a_repeated_singular_field_wins(reader: Reader) -> None:
    data = ld(6, b"first") + key(4, 0) + varint(1) + ld(6, b"second") + key(4, 0) + varint(2)
    body = ld(1, b"a") + ld(2, ld(1, b"k") + ld(2, b"1")) + ld(2, ld(1, b"k") + ld(2, b"2"))
    body += ld(1, b"b") + ld(3, data)
    same(reader, cut(body, random.Random(1), 4))
    assert reader.parse([body])[1][:3] == ("b", {"k": "2"}, [("", b"second", 0, 2, {})])


def test_32_bit_fields_keep_the_low_bits_of_a_wide_varint(reader: Reader) -> None:
    body = ld(3, key(3, 0) + varint(2**40 + 4) + key(4, 0) + varint(2**33 + 1))
    same(reader, [body])


def test_a_payload_is_one_copy_and_its_pieces_go_as_soon_as_it_is_copied(reader: Reader) -> None:
    small = ld(1, b"tag")
    first = ld(3, ld(6, b"A" * 1000))
    second = ld(3, ld(6, b"B" * 1000))
    chunks = [small, first[:500], first[500:], second[:10], second[10:]]
    status, (_, _, items, released) = reader.parse(chunks)
    assert status == "ok" and [i[1] for i in items] == [b"A" * 1000, b"B" * 1000]
    # The tag's piece holds no payload: released before any copy; then in copy order.
    assert released == [0, 1, 2, 3, 4]
    # A piece shared by both payloads goes only after the second one's copy.
    shared = [small + first[:-10], first[-10:] + second[:20], second[20:]]
    assert reader.parse(shared)[1][3] == [0, 1, 2]


# -- malformed bodies -----------------------------------------------------------------------
def test_every_truncation_errs_exactly_where_protobuf_does(reader: Reader) -> None:
    rng = random.Random(7)
    body = ld(1, "t\u00e9g".encode()) + b"".join(UNKNOWN)
    body += ld(2, ld(1, b"k") + ld(2, b"v")) + ld(3, ld(1, b"d") + ld(6, b"x" * 200))
    for end in range(len(body)):
        same(reader, cut(body[:end], rng, rng.randint(1, 4)))


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (ld(1, b"\xff\xfe"), "not valid UTF-8"),
        (ld(1, b"\xed\xa0\x80"), "not valid UTF-8"),  # a surrogate
        (ld(1, b"\xc0\xaf"), "not valid UTF-8"),  # an overlong '/'
        (ld(2, ld(2, b"\x80")), "not valid UTF-8"),
        (ld(3, ld(5, ld(1, b"\xe4\xb8"))), "not valid UTF-8"),
        (key(1, 0) + b"\xff" * 11, "varint"),
        # a key in 6 bytes (protobuf allows 5): it was read as field 16, then list=[]
        (bytes.fromhex("8081808080008080808080011a00"), "a field key of 6 bytes"),
        (b"\x88\x80\x80\x80\x80\x80\x80\x80\x80\x00" + varint(1), "a field key of 10 bytes"),
        (key(0, 0) + varint(1), "field number 0"),
        (key(9, 6), "wire type 6"),
        (key(9, 7), "wire type 7"),
        (key(9, 4), "end-group"),
        (key(9, 3) + key(8, 4), "end-group for another field"),
        (key(9, 3) + key(1, 0) + varint(1), "group without its end"),
        (key(9, 3) * 101 + key(9, 4) * 101, "nested deeper"),
        (key(1, 2) + varint(2**40), "remain"),
        (ld(3, key(6, 2) + varint(5) + b"abc"), "remain"),
        (key(9, 1) + b"\x00" * 7, "truncated"),
    ],
)
def test_malformed_bodies_are_a_clear_error(reader: Reader, body: bytes, words: str) -> None:
    for chunks in ([body], [body[:1], body[1:]], [bytes([b]) for b in body]):
        status, message = reader.parse(chunks)
        assert status == "error", f"{body!r} was accepted: {message!r}"
        assert words in message and " at byte " in message
    assert expected(body)[0] == "error", f"protobuf accepts {body!r}"


def test_random_garbage_never_crashes_it(reader: Reader) -> None:
    rng = random.Random(99)
    valid = random_request(random.Random(3)).SerializeToString()
    for _ in range(400):
        body = bytearray(valid)
        for _ in range(rng.randint(1, 4)):
            body[rng.randrange(len(body))] = rng.randrange(256)
        status, message = reader.parse(cut(bytes(body), rng, rng.randint(1, 5)))
        assert status in ("ok", "error")
        if status == "error":
            assert " at byte " in message
