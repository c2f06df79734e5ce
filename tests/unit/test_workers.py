"""Worker names, port ranges and port choice: no Redis, no servers."""

from __future__ import annotations

import random
import socket
from collections.abc import Iterator

import pytest

from globalfunc.errors import ConfigError, InvalidName, StorageError
from globalfunc.workers import (
    WorkerInfo,
    WorkerName,
    memory_gb,
    parse_port_range,
    parse_worker_name,
    pick_port,
    worker_name,
)


def test_the_design_example() -> None:
    assert worker_name("m7", "v101", 30, 0, 26000) == "m7_v101_30G_0G_26000"
    assert parse_worker_name("m7_v101_30G_0G_26000") == WorkerName("m7", "v101", 30, 0, 26000)


@pytest.mark.parametrize(
    ("host", "version", "name"),
    [
        ("m7.lab.example", "v0.1.0", "m7-lab-example_v0.1.0_2G_1G_26001"),
        ("gpu_box_3", "0.1.0+dirty", "gpu-box-3_0.1.0-dirty_2G_1G_26001"),
        ("  m7 ", "v1_2", "m7_v1-2_2G_1G_26001"),
        ("Host-A", "rel-2.3", "Host-A_rel-2.3_2G_1G_26001"),
    ],
)
def test_labels_are_sanitized_and_parse_back(host: str, version: str, name: str) -> None:
    made = worker_name(host, version, 2, 1, 26001)
    assert made == name
    parts = parse_worker_name(made)
    assert (parts.memory_gb, parts.gpu_gb, parts.port) == (2, 1, 26001)
    assert "_" not in parts.host and "_" not in parts.version


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("", "v1", 1, 0, 26000), "no letters or digits"),
        (("m7", "...", 1, 0, 26000), "no letters or digits"),
        (("x" * 64, "v1", 1, 0, 26000), "longer than 63"),
        (("m7", "v1", -1, 0, 26000), "memory"),
        (("m7", "v1", 1, 1.5, 26000), "GPU"),
        (("m7", "v1", 1, 0, 0), "port"),
        (("m7", "v1", 1, 0, 70000), "port"),
        (("m7", "v1", True, 0, 26000), "memory"),
    ],
)
def test_names_that_cannot_be_made(args: tuple[object, ...], fragment: str) -> None:
    with pytest.raises(InvalidName, match=fragment):
        worker_name(*args)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "name",
    [
        "m7_v101_30G_0G",
        "m7_v101_30_0G_26000",
        "m_7_v101_30G_0G_26000",
        "m7_v101_30G_0G_99999",
        "m7_v1/01_30G_0G_26000",
        "",
    ],
)
def test_what_is_not_a_worker_name(name: str) -> None:
    with pytest.raises(InvalidName, match="not a worker name"):
        parse_worker_name(name)


def test_worker_info_round_trips_and_ignores_unknown_keys() -> None:
    info = WorkerInfo.new(
        host="m7.lab",
        version="v1",
        memory_gb=30,
        gpu_gb=0,
        port=26000,
        url="http://m7:26000/",
        packages=["Base"],
        now=100.0,
    )
    assert info.name == "m7-lab_v1_30G_0G_26000" and info.host == "m7-lab"
    assert info.started_at == info.last_seen == 100.0 and info.packages == ("Base",)
    assert WorkerInfo.from_json(info.to_json()) == info
    newer = info.to_json()[:-1] + b',"from_the_future":1}'
    assert WorkerInfo.from_json(newer) == info
    assert info.age(now=102.5) == 2.5 and info.seen(now=105.0).last_seen == 105.0
    with pytest.raises(StorageError, match="malformed"):
        WorkerInfo.from_json(b"{not json")
    with pytest.raises(StorageError, match="malformed"):
        WorkerInfo.from_json(b'{"name": "x"}')


def test_memory_is_whole_gib() -> None:
    assert memory_gb(2048) == 2 and memory_gb(30 * 1024 + 100) == 30
    assert memory_gb(300) == 1  # a cap is never shown as 0G
    assert memory_gb(None) == 0 and memory_gb(0) == 0


@pytest.mark.parametrize(
    ("text", "expected"), [("26000-27000", (26000, 27000)), (" 26000 ", (26000, 26000))]
)
def test_port_ranges(text: str, expected: tuple[int, int]) -> None:
    assert parse_port_range(text) == expected


@pytest.mark.parametrize("text", ["27000-26000", "a-b", "0-10", "26000-70000", "", "1-2-3"])
def test_bad_port_ranges(text: str) -> None:
    with pytest.raises(ConfigError, match="FIRST-LAST"):
        parse_port_range(text)


@pytest.fixture
def port_range() -> Iterator[tuple[int, int]]:
    """Three consecutive free loopback ports in a random high range (parallel runs differ)."""
    for _ in range(50):
        first = random.randrange(20000, 32000)
        if all(_free(p) for p in range(first, first + 3)):
            yield first, first + 2
            return
    pytest.fail("no three consecutive free ports found in 20000-32000")


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _listen(port: int) -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", port))
    sock.listen()
    return sock


def test_pick_port_skips_busy_ports_and_says_when_the_range_is_full(
    port_range: tuple[int, int],
) -> None:
    first, last = port_range
    assert pick_port("127.0.0.1", first, last) == first
    busy = [_listen(first)]
    try:
        assert pick_port("127.0.0.1", first, last) == first + 1
        busy += [_listen(first + 1), _listen(last)]
        with pytest.raises(ConfigError, match=rf"no free port in {first}-{last}.*GF_WORKER_PORTS"):
            pick_port("127.0.0.1", first, last)
    finally:
        for sock in busy:
            sock.close()


def test_the_advertised_url() -> None:
    from server.advertise import advertised_url as _advertised_url

    assert _advertised_url("http://127.0.0.1:26000/", None) == "http://127.0.0.1:26000/"
    assert _advertised_url("http://0.0.0.0:26000/", "m7") == "http://m7:26000/"
    assert _advertised_url("http://[::]:26001/", "fe80::1") == "http://[fe80::1]:26001/"


def test_a_wildcard_bind_never_advertises_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    import server.advertise as worker

    monkeypatch.setattr(worker.socket, "getfqdn", lambda: "m7.invalid")  # does not resolve
    assert worker.advertised_url("http://0.0.0.0:26002/", None) == "http://m7.invalid:26002/"
    monkeypatch.setattr(worker.socket, "getfqdn", lambda: "localhost")
    with pytest.raises(ConfigError, match="--advertise"):
        worker.advertised_url("http://0.0.0.0:26002/", None, "redis://127.0.0.1:6379/0")
    with pytest.raises(ConfigError, match="--advertise"):
        worker.advertised_url("http://0.0.0.0:26002/", None)
    # the address of the route to Redis (a UDP connect sends nothing)
    monkeypatch.setattr(worker, "_address_towards", lambda host, port: "10.1.2.3")
    assert (
        worker.advertised_url("http://[::]:26002/", None, "redis://10.0.0.5:6379/0")
        == "http://10.1.2.3:26002/"
    )
