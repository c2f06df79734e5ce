"""Unit checks for the worker fixes: ``--advertise`` forms, entry validation, and the
error of a call sent several times (routing's wording)."""

from __future__ import annotations

import orjson
import pytest

from globalfunc.client.routing import Workers
from globalfunc.client.transport import Endpoint
from globalfunc.errors import ConfigError, StorageError
from globalfunc.workers import WorkerInfo
from server.advertise import advertised_url, parse_advertise


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ("m7.lab", (None, "m7.lab", None)),
        ("10.0.0.7:8080", (None, "10.0.0.7", 8080)),
        ("fd00::7", (None, "fd00::7", None)),
        ("[fd00::7]:81", (None, "fd00::7", 81)),
        ("https://gw.example.com/", ("https", "gw.example.com", 443)),
        ("http://x.y:9000", ("http", "x.y", 9000)),
    ],
)
def test_advertise_forms(value: str, parsed: tuple[object, ...]) -> None:
    assert parse_advertise(value) == parsed


@pytest.mark.parametrize("value", ["evil host", "[::1", "", "http://x.y/p", "a:0", "-a", "ftp://x"])
def test_bad_advertise_names_the_value(value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_advertise(value)
    assert f"--advertise {value!r}" in caught.value.message


def test_advertised_url_uses_the_given_port_and_scheme() -> None:
    assert advertised_url("http://10.0.0.7:26000/", "m7.lab:8080") == "http://m7.lab:8080/"
    assert advertised_url("http://10.0.0.7:26000/", "https://gw.lab/") == "https://gw.lab:443/"
    with pytest.raises(ConfigError, match="loopback"):
        advertised_url("http://0.0.0.0:26000/", "127.0.0.1")


def entry(**change: object) -> bytes:
    info = WorkerInfo.new(
        host="m7", version="v1", memory_gb=1, gpu_gb=0, port=26000, url="http://h:1/"
    )
    return orjson.dumps({**orjson.loads(info.to_json()), **change})


@pytest.mark.parametrize(
    "change",
    [
        {"inflight": -1000},
        {"inflight": 10**9},
        {"inflight": True},
        {"url": "http://evil host:1/"},
        {"url": "gopher://h/"},
        {"url": "http://:1/"},
        {"name": "other_v1_1G_0G_26000"},
        {"packages": "Base"},
    ],
)
def test_bad_entries_are_refused(change: dict[str, object]) -> None:
    with pytest.raises(StorageError, match="malformed"):
        WorkerInfo.from_json(entry(**change), "m7_v1_1G_0G_26000")
    assert WorkerInfo.from_json(entry(), "m7_v1_1G_0G_26000").inflight == 0


class _Directory:
    url = "redis://r:6379/0"

    def __init__(self, infos: list[WorkerInfo]) -> None:
        self.infos = infos

    def live(self) -> list[WorkerInfo]:
        return self.infos


def test_a_call_sent_three_times_says_so() -> None:
    infos = [
        WorkerInfo.new(host=h, version="v1", memory_gb=1, gpu_gb=0, port=1, url=f"http://{h}:1/")
        for h in "efg"
    ]
    route = Workers(_Directory(infos), prefer=None, refresh=60, owned=False)  # type: ignore[arg-type]
    tried = [Endpoint(i.url, i) for i in infos]
    reasons = [f"{i.name}: connection lost" for i in infos]
    error = route.unavailable("POST", "/call/Atk.crash", tried, reasons, safe=False, sent=True)
    assert "was sent 3 times (e_v1_1G_0G_1, f_v1_1G_0G_1, g_v1_1G_0G_1)" in error.message
    assert "not sent again" in error.message


def test_no_worker_allowing_the_package_is_a_clear_error() -> None:
    infos = [
        WorkerInfo.new(
            host="a",
            version="v1",
            memory_gb=1,
            gpu_gb=0,
            port=1,
            url="http://a:1/",
            packages=["Base"],
        )
    ]
    route = Workers(_Directory(infos), prefer=None, refresh=60, owned=False)  # type: ignore[arg-type]
    assert list(route.candidates("/call/Atk.f")) == []
    assert [e.url for e in route.candidates("/call/Base.sub.f")] == ["http://a:1/"]
    error = route.unavailable("POST", "/call/Atk.f", [], [], safe=False, sent=False)
    assert "no live worker serves package 'Atk'" in error.message and "'Base'" in error.message
