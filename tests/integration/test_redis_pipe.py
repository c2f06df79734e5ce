"""``globalfunc.redis_pipe.RedisPipe`` against a real redis-server.

Replies of every type come back to the right caller, in order, when many are in flight
at once; the URL's database is selected; an error reply fails only its own command; a
server that goes away fails the waiting replies with ``redis.ConnectionError`` and the
next command connects to the server that took its place.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from globalfunc.redis_pipe import RedisPipe
from tests.servers import RedisServer

pytestmark = pytest.mark.integration


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    s = RedisServer(tmp_path / "redis")
    s.start()
    try:
        yield s
    finally:
        s.stop()


def test_replies_in_order_of_every_type(server: RedisServer) -> None:
    url = server.url.rsplit("/", 1)[0] + "/3"

    async def scenario() -> None:
        pipe = RedisPipe(url)
        try:
            answers = await asyncio.gather(
                *(pipe.execute("SET", f"k{i}", b"v\r\n%d" % i, "NX", "GET") for i in range(200))
            )
            assert answers == [None] * 200
            got = await asyncio.gather(*(pipe.execute("GET", f"k{i}") for i in range(200)))
            assert got == [b"v\r\n%d" % i for i in range(200)]  # bodies with CRLF inside
            assert await pipe.execute("INCR", "n") == 1
            assert await pipe.execute("PING") == b"PONG"
            assert await pipe.execute("EVAL", "return {1, 'a', {2}}", 0) == [1, b"a", [2]]
            bad, good = await pipe.send(["INCR", "k1"], ["GET", "k2"])
            with pytest.raises(redis.ResponseError, match="not an integer"):
                await bad
            assert await good == b"v\r\n2"
            big = b"x" * 300_000  # a reply that arrives in many pieces
            await pipe.execute("SET", "big", big)
            assert await pipe.execute("GET", "big") == big
        finally:
            pipe.close()

    asyncio.run(scenario())
    db3 = redis.Redis.from_url(url)
    try:
        assert db3.get("k5") == b"v\r\n5"  # the URL's database was selected
    finally:
        db3.close()


def test_a_lost_server_fails_the_waiting_and_the_next_connects(server: RedisServer) -> None:
    async def scenario() -> None:
        pipe = RedisPipe(server.url)
        try:
            assert await pipe.execute("SET", "a", 1) == b"OK"
            blocked = asyncio.ensure_future(pipe.execute("BLPOP", "nothing", 0))
            await asyncio.sleep(0.2)
            await asyncio.to_thread(server.stop)
            with pytest.raises(redis.ConnectionError, match="connection to Redis lost"):
                await asyncio.wait_for(blocked, 10)
            with pytest.raises(redis.ConnectionError, match="cannot connect"):
                await pipe.execute("GET", "a")
            await asyncio.to_thread(server.start)
            assert await pipe.execute("PING") == b"PONG"
        finally:
            pipe.close()

    asyncio.run(scenario())
