"""GFClient against a real server: values round-trip, errors are the local classes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from globalfunc.client import GFClient
from globalfunc.errors import (
    BadArguments,
    ExecutionError,
    ExecutionTimeout,
    Forbidden,
    FunctionNotFound,
    ResultNotSerializable,
    Unauthorized,
    WorkerCrashed,
)
from tests.integration.serve_support import ServerProcess, build_registry

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ServerProcess]]:
    tmp = tmp_path_factory.mktemp("client")
    url = build_registry(tmp)
    common = {"storage_url": url, "branch": "master", "cache_dir": str(tmp / "cache")}
    iso = ServerProcess.serve_call(
        tmp, mode="isolated", workers=2, timeouts={"Misbehave.hang": 1.0}, **common
    ).start()
    secure = ServerProcess.serve_call(
        tmp, mode="inline", token="tok", allow_packages=["Base"], **common
    ).start()
    yield {"iso": iso, "secure": secure}
    iso.stop()
    secure.stop()


@pytest.fixture
def client(servers: dict[str, ServerProcess]) -> Iterator[GFClient]:
    with GFClient(servers["iso"].url) as c:
        yield c


def test_the_seed_call(client: GFClient) -> None:
    got = client.call("Base.inverse_time_str", time_str="2024-02-15 11:11:11", bias_hours=-8)
    assert got == 1707966671
    assert client.call_args("Base.inverse_time_str", "2024-02-15 11:11:11", -8) == 1707966671


ROUND_TRIP: list[Any] = [
    dt.datetime(2024, 2, 15, 11, 11, 11, 5, tzinfo=dt.UTC),
    dt.date(2024, 2, 15),
    Decimal("3.14159265358979323846"),
    b"\x00\xffbinary",
    {1, 2, 3},
    frozenset({"x"}),
    (1, ("nested", b"b")),
    Path("/data/a_data.pkl"),
    {"__gf__": "user data that looks like a tag"},
    [{"k": (1, 2)}, None, 1.5],
]


@pytest.mark.parametrize("value", ROUND_TRIP, ids=lambda v: type(v).__name__)
def test_values_round_trip_through_the_server(client: GFClient, value: Any) -> None:
    back = client.call("Codec.echo", value=value)
    assert back == value and type(back) is type(value)
    assert client.call_args("Codec.echo", value) == value


@pytest.mark.parametrize(
    ("value", "name"),
    [
        (b"x", "bytes"),
        (dt.date(2024, 1, 1), "date"),
        (Decimal(1), "Decimal"),
        ((1,), "tuple"),
        ({1}, "set"),
    ],
)
def test_the_function_receives_python_types(client: GFClient, value: Any, name: str) -> None:
    assert client.call("Codec.type_name", value=value) == name


def test_numpy_arrays_round_trip(client: GFClient) -> None:
    np = pytest.importorskip("numpy")
    arr = np.arange(6, dtype=np.int32).reshape(2, 3)
    back = client.call("Codec.echo", value=arr)
    assert isinstance(back, np.ndarray) and back.dtype == np.int32
    assert (back == arr).all()


def test_kwargs_and_extra_keywords(client: GFClient) -> None:
    assert client.call("Codec.echo", value=1, other=2) == (1, {"other": 2})


def test_errors_are_the_local_classes(client: GFClient) -> None:
    with pytest.raises(FunctionNotFound):
        client.call("Base.not_there")
    with pytest.raises(BadArguments, match=r"Base\.inverse_time_str\(time_str"):
        client.call("Base.inverse_time_str", when="x")
    with pytest.raises(ExecutionError) as info:
        client.call("Misbehave.raise_error", message="remote")
    assert info.value.details == {
        "function": "Misbehave.raise_error",
        "exc_type": "ValueError",
        "exc_message": "remote",
    }
    with pytest.raises(ExecutionTimeout):
        client.call("Misbehave.hang")
    with pytest.raises(WorkerCrashed):
        client.call("Misbehave.exit_now")
    with pytest.raises(ResultNotSerializable, match="generator"):
        client.call("Misbehave.unserializable")


def test_catalogue(client: GFClient) -> None:
    names = [f["name"] for f in client.functions()]
    assert "Base.inverse_time_str" in names
    assert next(f["name"] for f in client.functions("Codec")) == "Codec.echo"
    assert "Base.inverse_time_str" in [f["name"] for f in client.search("timestamp")]
    one = client.function("Base.inverse_time_str")
    assert one["versions"] and one["sha256"] == one["versions"][0]["sha256"]
    assert client.health()["mode"] == "isolated"


def test_token_and_allow_list(servers: dict[str, ServerProcess]) -> None:
    url = servers["secure"].url
    with pytest.raises(Unauthorized):
        GFClient(url).call("Base.slug", text="a b")
    with pytest.raises(Unauthorized):
        GFClient(url, token="nope").functions()
    good = GFClient(url, token="tok")
    assert good.call("Base.slug", text="Hello World") == "hello-world"
    with pytest.raises(Forbidden):
        good.call("Codec.echo", value=1)


def test_one_client_from_many_threads(client: GFClient) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda i: client.call("Codec.echo", value=i), range(200)))
    assert got == list(range(200))
