"""Out-of-range results: one rule (``server.aiges.engine.normalise``) on both servers.

A wrapper that sets an error code outside int32, a data type outside 0..4 or a status
outside 0..3 gets 30003 with no items on ``communicate`` from the grpcio server and from
the C++ one alike; desc values that are not strings travel as strings.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from server.aiges.client import LoaderClient
from tests.integration.aiges_support import DATA, SERVERS, start

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module", params=SERVERS)
def plugin(request: pytest.FixtureRequest) -> Iterator[LoaderClient]:
    client = start(request.param, "--wrapper", str(DATA / "outofrange"), "--error-details")
    try:
        assert client.init() == 0
        yield client
    finally:
        client.close()


@pytest.mark.parametrize(
    ("bad", "named"),
    [
        ("ret_big", b"1099511627776"),
        ("ret_text", b"'oops'"),
        ("type_big", b"type 8589934592"),
        ("type_neg", b"type -1"),
        ("type_7", b"type 7"),
        ("status_9", b"status 9"),
    ],
)
def test_out_of_range_values_answer_30003_on_both_servers(
    plugin: LoaderClient, bad: str, named: bytes
) -> None:
    reply = plugin.once({"bad": bad}, [plugin.text("text", "x")], timeout=10)
    assert reply.ret == 30003
    # With --error-details the only item is the message naming the offending value.
    assert [d.key for d in reply.list] == ["gf.error"]
    assert named in reply.list[0].data


def test_desc_values_become_strings_and_a_good_result_follows(plugin: LoaderClient) -> None:
    mixed = plugin.once({"bad": "desc_mixed"}, [plugin.text("text", "x")], timeout=10)
    assert mixed.ret == 0
    assert dict(mixed.list[0].desc) == {"raw": "bytes", "n": "7"}
    ok = plugin.once({}, [plugin.text("text", "x")], timeout=10)
    assert (ok.ret, [(d.key, d.data, d.type, d.status) for d in ok.list]) == (
        0,
        [("result", b"ok", 0, 3)],
    )
