"""The AIGES plugin end to end: real subprocesses started as the loader starts them, real gRPC.

Every test drives ``python -m server.aiges`` through :class:`LoaderClient` (the loader's
start-up sequence, results read from ``communicate``) and asserts what the loader relies on.
Every test runs twice: on the Python gRPC server and on the C++ one (``--native``), which
must behave the same.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest

from server.aiges.client import LoaderClient, PluginStartError, loader_env, wait_until
from tests.integration.aiges_support import native_not_built

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data" / "aiges"
SERVING = 1


FLAVOURS: dict[str, tuple[str, ...]] = {
    "python": ("--server", "python"),
    "native": ("--server", "native"),
}
_flavour: tuple[str, ...] = ()


@pytest.fixture(autouse=True, params=list(FLAVOURS))
def server_flavour(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run the test on one of the two servers; the native one must be built (by the install)."""
    global _flavour
    if request.param == "native" and not list((REPO / "server" / "aiges").glob("_native*.so")):
        pytest.fail(native_not_built())
    _flavour = FLAVOURS[request.param]
    try:
        yield request.param
    finally:
        _flavour = ()


def plugin_command(*args: str) -> str:
    parts = [sys.executable, "-m", "server.aiges", *_flavour, *args]
    return " ".join(map(shlex.quote, parts))


def env(**extra: str) -> dict[str, str]:
    base = loader_env(PYTHONPATH=str(REPO), TZ="UTC")
    base.update(extra)
    return base


def start(*args: str, **extra_env: str) -> LoaderClient:
    return LoaderClient.start(plugin_command(*args), env=env(**extra_env), cwd=REPO, timeout=30)


@pytest.fixture
def echo() -> Iterator[LoaderClient]:
    client = start("--wrapper", str(DATA / "echo"), "--workers", "2")
    try:
        assert client.init({"prefix": ""}) == 0
        yield client
    finally:
        client.close()


def test_handshake_health_and_go_plugin_services() -> None:
    client = start("--wrapper", str(DATA / "echo"))
    with client:
        hs = client.handshake
        assert (hs.core_protocol, hs.app_protocol, hs.network, hs.protocol) == (1, 1, "tcp", "grpc")
        assert hs.address.startswith("127.0.0.1:")
        assert 10000 <= hs.port <= 25000
        assert client.health("plugin") == SERVING
        codes = client.probe_go_plugin_services(timeout=1.5)
        assert codes["broker"] == grpc.StatusCode.UNIMPLEMENTED
        # stdio is implemented: an open stream that the deadline ends
        assert codes["stdio"] in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.OK)
        assert client.stdout_lines == []  # nothing but the handshake on stdout
        assert client.shutdown(timeout=5) == 0


def test_port_comes_from_the_env_range_and_two_plugins_do_not_share_it() -> None:
    with (
        start(
            "--wrapper", str(DATA / "echo"), PLUGIN_MIN_PORT="23450", PLUGIN_MAX_PORT="23460"
        ) as a,
        start(
            "--wrapper", str(DATA / "echo"), PLUGIN_MIN_PORT="23450", PLUGIN_MAX_PORT="23460"
        ) as b,
    ):
        assert 23450 <= a.handshake.port <= 23460
        assert 23450 <= b.handshake.port <= 23460
        assert a.handshake.port != b.handshake.port


def test_without_magic_cookie_it_explains_and_exits_1() -> None:
    plain = {k: v for k, v in env().items() if k != "BASIC_PLUGIN"}
    proc = subprocess.run(
        ["bash", "-c", plugin_command("--wrapper", str(DATA / "echo"))],
        env=plain,
        cwd=REPO,
        capture_output=True,
        timeout=30,
    )
    assert proc.returncode == 1
    assert proc.stdout == b""
    assert b"BASIC_PLUGIN" in proc.stderr and b"--no-cookie" in proc.stderr


def test_no_cookie_flag_starts_anyway() -> None:
    plain = {k: v for k, v in env().items() if k != "BASIC_PLUGIN"}
    with LoaderClient.start(
        plugin_command("--wrapper", str(DATA / "echo"), "--no-cookie"), env=plain, cwd=REPO
    ) as client:
        assert client.health() == SERVING


def test_init_schema_and_once_exec(echo: LoaderClient) -> None:
    schema = echo.schema("echo")
    assert schema["meta"]["route"] == "/v1/private/echo"
    assert schema["meta"]["echo"] == {
        "input": {"text": {"dataType": "text"}},
        "accept": {"result": {"dataType": "text"}},
    }
    params = schema["schemainput"]["properties"]["parameter"]["properties"]["echo"]["properties"]
    assert params["mode"]["enum"] == ["upper", "lower"]
    assert params["result"]["type"] == "object"  # declared output
    assert "text" in schema["schemainput"]["properties"]["payload"]["properties"]
    assert "result" in schema["schemaoutput"]["properties"]["payload"]["properties"]

    reply = echo.once({"mode": "upper"}, [echo.text("text", "hello aiges")])
    assert reply.ret == 0
    assert [(d.key, d.data, d.len, d.type, d.status) for d in reply.list] == [
        ("result", b"HELLO AIGES", 11, 0, 3)
    ]
    lower = echo.once({"mode": "lower"}, [echo.text("text", "MiXeD")])
    assert lower.list[0].data == b"mixed"


def test_init_config_reaches_the_wrapper() -> None:
    with start("--wrapper", str(DATA / "echo" / "wrapper.py")) as client:
        assert client.init({"prefix": ">"}) == 0
        assert client.once({}, [client.text("text", "x")]).list[0].data == b">X"


def test_exactly_one_result_per_tag_and_the_unary_reply_is_an_ack(echo: LoaderClient) -> None:
    echo.open_communicate()
    request = echo.request({}, [echo.text("text", "one")])
    ack = echo.send_once(request)
    assert ack.tag == request.tag
    assert echo.next_result(request.tag).list[0].data == b"ONE"
    time.sleep(0.3)
    assert echo.pending(request.tag) == 0


@pytest.mark.parametrize(
    ("mode", "ret", "keys"),
    [("raise", 30003, []), ("none", 30003, []), ("empty", 30003, []), ("code", 7001, ["partial"])],
)
def test_failing_wrappers_still_answer_on_communicate(mode: str, ret: int, keys: list[str]) -> None:
    with start("--wrapper", str(DATA / "failing")) as client:
        assert client.init() == 0
        reply = client.once({"fail": mode}, [client.text("text", "x")], timeout=10)
        assert reply.ret == ret
        assert [d.key for d in reply.list] == keys
        ok = client.once({}, [client.text("text", "x")], timeout=10)  # still healthy afterwards
        assert (ok.ret, ok.list[0].data) == (0, b"ok")


def test_error_details_only_when_asked() -> None:
    with start("--wrapper", str(DATA / "failing"), "--error-details") as client:
        assert client.init() == 0
        reply = client.once({"fail": "raise"}, [client.text("text", "x")], timeout=10)
        assert reply.ret == 30003
        assert [(d.key, d.data) for d in reply.list] == [
            ("gf.error", b"wrapperOnceExec raised RuntimeError: the model fell over")
        ]
        code = client.once({"fail": "code"}, [client.text("text", "x")], timeout=10)
        assert [d.key for d in code.list] == ["partial", "gf.error"]
        ok = client.once({}, [client.text("text", "x")], timeout=10)
        assert [d.key for d in ok.list] == ["result"]


def test_type_and_desc_are_carried_and_the_tag_reaches_usrtag() -> None:
    with start("--wrapper", str(DATA / "failing")) as client:
        assert client.init() == 0
        client.open_communicate()
        request = client.request({"fail": "typed"}, [client.text("text", "x")])
        client.send_once(request)
        reply = client.next_result(request.tag)
        item = reply.list[0]
        assert (item.type, item.data, item.len) == (2, b"\x89PNG", 4)
        assert dict(item.desc) == {"encoding": "png", "tag": request.tag}


def test_broken_wrapper_fails_init_with_30001() -> None:
    with start("--wrapper", str(DATA / "broken")) as client:
        assert client.init() == 30001
        reply = client.once({}, [client.text("text", "x")], timeout=10)
        assert reply.ret == 30001  # answered, not left hanging


@pytest.mark.parametrize("workers", [1, 8])
def test_many_in_flight_never_deadlock(workers: int) -> None:
    with start("--wrapper", str(DATA / "echo"), "--workers", str(workers)) as client:
        assert client.init() == 0
        client.open_communicate()
        requests = [
            client.request({"sleep": "0.1"}, [client.text("text", f"req{i}")]) for i in range(8)
        ]
        began = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(client.send_once, requests))
        results = {r.tag: client.next_result(r.tag, timeout=20) for r in requests}
        elapsed = time.monotonic() - began
        assert all(
            results[r.tag].list[0].data == f"REQ{i}".encode() for i, r in enumerate(requests)
        )
        if workers == 8:
            assert elapsed < 0.7, f"8 workers ran 8 x 0.1 s calls in {elapsed:.2f}s: not parallel"
        else:
            assert elapsed >= 0.75, f"1 worker finished 8 x 0.1 s calls in {elapsed:.2f}s"


def test_sessions_results_come_back_tagged_with_the_create_tag() -> None:
    with start("--wrapper", str(DATA / "stream")) as client:
        assert client.init({"pool": "2"}) == 0
        tag_a, handle_a = client.create({"lang": "en"}, sid="sid-a")
        tag_b, handle_b = client.create({"lang": "fr"}, sid="sid-b")
        assert handle_a.err_code == 0 and handle_b.err_code == 0
        assert handle_a.handle and handle_a.handle != handle_b.handle
        _third_tag, third = client.create({"lang": "de"}, sid="sid-c")
        assert third.err_code == 10012  # the pool of 2 is busy: the wrapper's own code

        assert client.write(handle_a.handle, [client.text("text", "hello", status=0)]) == 0
        assert client.write(handle_b.handle, [client.text("text", "salut", status=0)]) == 0
        assert client.write(handle_a.handle, [client.text("text", "bye", status=2)]) == 0
        first = client.next_result(tag_a, timeout=10)
        last = client.next_result(tag_a, timeout=10)
        other = client.next_result(tag_b, timeout=10)
        assert [(d.data, d.status) for d in first.list] == [(b"en:HELLO", 0)]
        assert [(d.data, d.status) for d in last.list] == [(b"en:BYE", 2)]
        assert [d.data for d in other.list] == [b"fr:SALUT"]
        assert client.pending(handle_a.handle) == 0  # nothing tagged with the pool handle

        assert client.destroy(handle_a.handle) == 0
        again_tag, again = client.create({"lang": "it"}, sid="sid-d")
        assert again.err_code == 0 and again.handle == handle_a.handle  # slot reused
        assert client.write(again.handle, [client.text("text", "ciao", status=2)]) == 0
        assert client.next_result(again_tag, timeout=10).list[0].data == b"it:CIAO"
        assert client.pending(tag_a) == 0


def test_registry_function_once_exec_and_schema() -> None:
    with start("--function", "Base.inverse_time_str", "--root", str(REPO / "packages")) as client:
        assert client.init() == 0
        schema = client.schema()
        svc = schema["meta"]["serviceId"]
        assert svc == "Base.inverse_time_str"
        params = schema["schemainput"]["properties"]["parameter"]["properties"][svc]["properties"]
        assert params["bias_hours"]["type"] == "number"
        assert params["time_str"]["type"] == "string"
        assert schema["meta"][svc]["accept"] == {"result": {"dataType": "text"}}

        reply = client.once({"time_str": "2024-02-15 11:11:11", "bias_hours": "-8"})
        assert reply.ret == 0
        assert [(d.key, json.loads(d.data)) for d in reply.list] == [("result", 1707966671)]

        payload = client.text("kwargs", json.dumps({"time_str": "2024-02-15 11:11:11"}))
        assert json.loads(client.once({}, [payload]).list[0].data) == 1707995471

        bad = client.once({"time_str": "2024-02-15 11:11:11", "bias_hours": "soon"})
        assert bad.ret == 10106 and not bad.list
        raised = client.once({"time_str": "not a time"})
        assert raised.ret == 30003


def test_unknown_function_fails_init() -> None:
    with start("--function", "Base.no_such_function", "--root", str(REPO / "packages")) as client:
        assert client.init() == 30001


def test_shutdown_exits_the_process(echo: LoaderClient) -> None:
    assert echo.shutdown(timeout=5) == 0


def test_plugin_exits_within_2s_when_its_parent_dies(tmp_path: Path) -> None:
    pid_file = tmp_path / "plugin.pid"
    parent_code = (
        "import subprocess, sys, time\n"
        f"p = subprocess.Popen(['bash', '-c', {plugin_command('--wrapper', str(DATA / 'echo'))!r}])\n"
        f"open({str(pid_file)!r}, 'w').write(str(p.pid))\n"
        "time.sleep(600)\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", parent_code], env=env(), cwd=REPO, stdout=subprocess.PIPE
    )
    try:
        assert parent.stdout is not None
        line = parent.stdout.readline()  # the plugin inherited the parent's stdout
        assert line.startswith(b"1|1|tcp|127.0.0.1:")
        assert wait_until(pid_file.exists, 10)
        plugin_pid = int(pid_file.read_text())
        assert _alive(plugin_pid)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(5)
        assert wait_until(lambda: not _alive(plugin_pid), 2.0), "plugin outlived its parent by 2 s"
    finally:
        if parent.poll() is None:
            parent.kill()


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0]
    except (FileNotFoundError, IndexError):
        return False
    return state not in ("Z", "X")


def test_a_plugin_that_never_shakes_hands_is_reported() -> None:
    with pytest.raises(PluginStartError, match="exited with 3"):
        LoaderClient.start("echo oops >&2; exit 3", env=env(), timeout=10)


def test_auto_serves_on_the_native_server_when_it_is_built() -> None:
    command = " ".join(
        shlex.quote(part)
        for part in (sys.executable, "-m", "server.aiges", "--wrapper", str(DATA / "echo"))
    )  # no --server option: auto
    with LoaderClient.start(command + " --log-level INFO", env=env(), cwd=REPO) as client:
        assert client.init({}) == 0
        assert wait_until(lambda: "aiges plugin (native, grpc++" in client.stderr_text(), 5)


def test_sigterm_stops_the_plugin_cleanly() -> None:
    client = start("--wrapper", str(DATA / "echo"))
    with client:
        assert client.init({}) == 0
        assert client.process is not None
        os.kill(client.process.pid, signal.SIGTERM)
        assert client.process.wait(5) == 0


def test_a_port_range_with_no_free_port_is_a_clear_error() -> None:
    only = {"PLUGIN_MIN_PORT": "23470", "PLUGIN_MAX_PORT": "23470"}
    with (
        start("--wrapper", str(DATA / "echo"), **only),
        pytest.raises(PluginStartError, match="no free port in PLUGIN_MIN_PORT"),
    ):
        start("--wrapper", str(DATA / "echo"), **only)
