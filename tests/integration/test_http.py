"""The HTTP server, end to end: a real ``serve()`` process per configuration, real requests.

Every bad-input case of the issue has a test here. Servers listen on a free loopback
port (``port=0``) and are stopped with SIGTERM.
"""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.integration.serve_support import ServerProcess, build_registry

pytestmark = pytest.mark.integration

SEED = {
    "pack_func": "Base.inverse_time_str",
    "kwargs": {"time_str": "2024-02-15 11:11:11", "bias_hours": -8},
}
TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def storage_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return build_registry(tmp_path_factory.mktemp("registry"))


def _server(tmp: Path, storage_url: str, **kwargs: Any) -> ServerProcess:
    return ServerProcess.serve_call(
        tmp, storage_url=storage_url, branch="master", cache_dir=str(tmp / "cache"), **kwargs
    ).start()


@pytest.fixture(scope="module")
def iso(tmp_path_factory: pytest.TempPathFactory, storage_url: str) -> Iterator[ServerProcess]:
    server = _server(
        tmp_path_factory.mktemp("iso"),
        storage_url,
        mode="isolated",
        workers=2,
        memory_limit_mb=400,
        call_timeout=20.0,
        timeouts={"Misbehave.hang": 1.5},
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def inline(tmp_path_factory: pytest.TempPathFactory, storage_url: str) -> Iterator[ServerProcess]:
    server = _server(tmp_path_factory.mktemp("inline"), storage_url, mode="inline", debug=True)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory, storage_url: str) -> Iterator[ServerProcess]:
    server = _server(
        tmp_path_factory.mktemp("secure"),
        storage_url,
        mode="inline",
        token=TOKEN,
        allow_packages=["Base"],
        max_body=2048,
        cors_origins=["http://allowed.example"],
    )
    yield server
    server.stop()


def post(server: ServerProcess, path: str, body: Any = None, **kw: Any) -> requests.Response:
    if body is not None and not isinstance(body, bytes | str):
        kw["json"] = body
    elif body is not None:
        kw["data"] = body
    return requests.post(server.url.rstrip("/") + path, timeout=60, **kw)


def get(server: ServerProcess, path: str, **kw: Any) -> requests.Response:
    return requests.get(server.url.rstrip("/") + path, timeout=60, **kw)


def error_of(r: requests.Response) -> str:
    return str(r.json()["error"])


# -- the seed's API ----------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["iso", "inline"])
def test_seed_request_returns_the_seed_answer(mode: str, request: pytest.FixtureRequest) -> None:
    server: ServerProcess = request.getfixturevalue(mode)
    r = post(server, "/gfgo/", SEED)
    assert r.status_code == 200
    assert r.json() == 1707966671
    assert r.headers["Content-Type"].startswith("application/json")


def test_banner_names_url_root_storage_and_mode(iso: ServerProcess) -> None:
    assert re.match(r"GlobalFunc serving http://127\.0\.0\.1:\d+/ \(root .*packages, ", iso.banner)
    assert "storage sqlite://" in iso.banner and "mode isolated" in iso.banner


def test_call_endpoint_wraps_the_result(iso: ServerProcess) -> None:
    r = post(iso, "/call/Base.inverse_time_str", SEED["kwargs"])
    assert r.status_code == 200 and r.json() == {"result": 1707966671}


def test_gfgo_with_positional_args(iso: ServerProcess) -> None:
    r = post(iso, "/gfgo/", {"pack_func": "Codec.positional", "args": [1, 2], "kwargs": {"d": 0}})
    assert r.json() == [1, 2, 3, 0]


def test_index_get_and_post_echo(iso: ServerProcess) -> None:
    info = get(iso, "/").json()
    assert info["info"] == "【GET】This is Website for Internal API System"
    assert info["mode"] == "isolated"
    echo = post(iso, "/", {"a": [1, 2]}).json()
    assert echo == {
        "info": "【POST】This is Website for Internal API System",
        "input_dict": {"a": [1, 2]},
    }


def test_bytes_come_back_base64_with_a_marker(iso: ServerProcess) -> None:
    r = post(iso, "/call/Codec.make_bytes", {"n": 3})
    assert r.json() == {"result": {"__gf__": "bytes", "b64": "AAEC"}}


def test_tuples_are_lists_on_gfgo_unless_tagged(iso: ServerProcess) -> None:
    body = {"pack_func": "Codec.echo", "kwargs": {"value": {"__gf__": "tuple", "items": [1, 2]}}}
    assert post(iso, "/gfgo/", body).json() == [1, 2]
    tagged = post(iso, "/gfgo/", body, headers={"X-GF-Codec": "tagged"}).json()
    assert tagged == {"__gf__": "tuple", "items": [1, 2]}


# -- bad input ----------------------------------------------------------------------------------
@pytest.mark.parametrize("body", [b"{not json", b"\xff\xfe", b'{"pack_func": "Base.slug"'])
def test_malformed_json_is_400(iso: ServerProcess, body: bytes) -> None:
    r = post(iso, "/gfgo/", body)
    assert r.status_code == 400 and error_of(r) == "InvalidRequest"
    assert "not valid JSON" in r.json()["message"]


@pytest.mark.parametrize("body", [b"[1, 2]", b'"Base.slug"', b"42", b"null", b""])
def test_body_that_is_not_an_object_is_400(iso: ServerProcess, body: bytes) -> None:
    r = post(iso, "/gfgo/", body)
    assert r.status_code == 400 and error_of(r) == "InvalidRequest"


def test_call_body_that_is_not_an_object_is_400(iso: ServerProcess) -> None:
    r = post(iso, "/call/Codec.echo", b"[1]")
    assert r.status_code == 400 and "keyword arguments" in r.json()["message"]


@pytest.mark.parametrize(
    "body",
    [
        {"kwargs": {}},
        {"pack_func": 5},
        {"pack_func": None},
        {"pack_func": "Base.slug", "kwargs": []},
    ],
)
def test_missing_or_mistyped_fields_are_400(iso: ServerProcess, body: dict[str, Any]) -> None:
    r = post(iso, "/gfgo/", body)
    assert r.status_code == 400 and error_of(r) == "InvalidRequest"
    assert "bad /gfgo/ body" in r.json()["message"]


def test_unknown_function_is_404(iso: ServerProcess) -> None:
    for r in (
        post(iso, "/gfgo/", {"pack_func": "Base.no_such_function"}),
        post(iso, "/call/Base.no_such_function", {}),
        post(iso, "/gfgo/", {"pack_func": "os.system", "args": ["true"]}),
        get(iso, "/functions/Nope.nothing"),
    ):
        assert r.status_code == 404 and error_of(r) == "FunctionNotFound", r.text


@pytest.mark.parametrize(
    "name",
    [
        "Base",
        "__import__.os",
        "Base.inverse_time_str.__globals__",
        "Base._private",
        "Base..f",
        "1x.f",
        "Base.f-g",
    ],
)
def test_invalid_name_is_400(iso: ServerProcess, name: str) -> None:
    r = post(iso, "/gfgo/", {"pack_func": name})
    assert r.status_code == 400 and error_of(r) == "InvalidName", r.text
    r = post(iso, f"/call/{name}", {})
    assert r.status_code == 400 and error_of(r) == "InvalidName", r.text


def test_path_separators_never_reach_a_function(iso: ServerProcess) -> None:
    r = post(iso, "/call/Base%2F..%2Fx.f", {})
    assert r.status_code in (400, 404)
    assert error_of(r) in ("InvalidName", "NotFound")


@pytest.mark.parametrize(
    ("path", "body", "fragment"),
    [
        ("/call/Base.inverse_time_str", {"timestr": "x"}, "unexpected keyword argument 'timestr'"),
        ("/call/Codec.positional", {"c": 1}, "missing a required argument: 'a'"),
        (
            "/gfgo/",
            {"pack_func": "Codec.positional", "args": [1]},
            "missing a required argument: 'b'",
        ),
        ("/gfgo/", {"pack_func": "Base.slug", "args": [1, 2, 3, 4, 5, 6]}, "too many positional"),
    ],
)
def test_wrong_or_missing_kwargs_are_422_with_the_signature(
    iso: ServerProcess, path: str, body: dict[str, Any], fragment: str
) -> None:
    r = post(iso, path, body)
    assert r.status_code == 422 and error_of(r) == "BadArguments"
    message = r.json()["message"]
    assert fragment in message
    assert re.search(r"\w+\.\w+\(.*\)", r.json()["details"]["signature"])


def test_function_raising_is_500_with_type_and_message_without_traceback(
    iso: ServerProcess,
) -> None:
    r = post(iso, "/call/Misbehave.raise_error", {"message": "kaputt"})
    assert r.status_code == 500
    body = r.json()
    assert body["error"] == "ExecutionError"
    assert body["details"]["exc_type"] == "ValueError"
    assert body["details"]["exc_message"] == "kaputt"
    assert "Traceback" not in r.text and "traceback" not in body["details"]


def test_debug_server_adds_the_traceback(inline: ServerProcess) -> None:
    r = post(inline, "/call/Misbehave.raise_error", {"message": "kaputt"})
    assert r.status_code == 500
    assert "Traceback" in r.json()["details"]["traceback"]


def test_hanging_function_is_504_and_the_server_keeps_answering(iso: ServerProcess) -> None:
    outcome: dict[str, Any] = {}

    def hang() -> None:
        started = time.monotonic()
        outcome["response"] = post(iso, "/call/Misbehave.hang", {})
        outcome["elapsed"] = time.monotonic() - started

    thread = threading.Thread(target=hang)
    thread.start()
    time.sleep(0.3)
    assert get(iso, "/healthz").status_code == 200  # the event loop is free
    assert post(iso, "/gfgo/", SEED).json() == 1707966671  # the other worker answers
    thread.join(timeout=60)
    r = outcome["response"]
    assert r.status_code == 504 and error_of(r) == "ExecutionTimeout"
    assert 1.4 <= outcome["elapsed"] < 30
    assert post(iso, "/gfgo/", SEED).json() == 1707966671


@pytest.mark.parametrize(
    ("name", "body", "how"),
    [
        ("Misbehave.exit_now", {"code": 7}, "exited with code 7"),
        ("Misbehave.segfault", {}, "SIGSEGV"),
        ("Misbehave.hog_memory", {"step_mb": 32}, "memory cap of 400 MiB"),
    ],
)
def test_crashing_function_is_500_and_the_worker_is_replaced(
    iso: ServerProcess, name: str, body: dict[str, Any], how: str
) -> None:
    replaced = get(iso, "/healthz").json()["replaced"]
    r = post(iso, f"/call/{name}", body)
    assert r.status_code == 500 and error_of(r) == "WorkerCrashed"
    assert how in r.json()["message"]
    health = get(iso, "/healthz").json()
    assert health["replaced"] == replaced + 1 and health["workers"] == 2
    assert post(iso, "/gfgo/", SEED).json() == 1707966671


def test_system_exit_in_an_inline_function_does_not_stop_the_server(inline: ServerProcess) -> None:
    r = post(inline, "/call/Misbehave.exit_raise", {})
    assert r.status_code == 500 and r.json()["details"]["exc_type"] == "SystemExit"
    assert post(inline, "/gfgo/", SEED).json() == 1707966671


def test_unserializable_result_names_the_type(iso: ServerProcess) -> None:
    r = post(iso, "/call/Misbehave.unserializable", {})
    assert r.status_code == 500 and error_of(r) == "ResultNotSerializable"
    assert "generator" in r.json()["message"]


def test_oversized_body_is_413(secure: ServerProcess) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    big = {"pack_func": "Base.slug", "kwargs": {"text": "x" * 3000}}
    r = post(secure, "/gfgo/", big, headers=auth)
    assert r.status_code == 413 and error_of(r) == "RequestTooLarge"
    assert "2048" in r.json()["message"]
    assert post(secure, "/gfgo/", SEED, headers=auth).json() == 1707966671


def test_default_body_limit_is_ten_mib(inline: ServerProcess) -> None:
    payload = (
        b'{"pack_func": "Codec.echo", "kwargs": {"value": "' + b"x" * (10 * 1024 * 1024) + b'"}}'
    )
    r = post(inline, "/gfgo/", payload)
    assert r.status_code == 413 and error_of(r) == "RequestTooLarge"
    ok = b'{"pack_func": "Codec.echo", "kwargs": {"value": "' + b"x" * (1024 * 1024) + b'"}}'
    assert len(post(inline, "/gfgo/", ok).json()) == 1024 * 1024


@pytest.mark.parametrize(
    "header", [None, "Bearer wrong", f"Basic {TOKEN}", f"Bearer {TOKEN}x", "Bearer"]
)
def test_bad_or_missing_token_is_401(secure: ServerProcess, header: str | None) -> None:
    headers = {} if header is None else {"Authorization": header}
    for r in (
        post(secure, "/gfgo/", SEED, headers=headers),
        get(secure, "/functions", headers=headers),
        get(secure, "/metrics", headers=headers),
    ):
        assert r.status_code == 401 and error_of(r) == "Unauthorized"
        assert r.headers["WWW-Authenticate"].startswith("Bearer")


def test_right_token_passes_and_health_and_docs_stay_public(secure: ServerProcess) -> None:
    r = post(secure, "/gfgo/", SEED, headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.json() == 1707966671
    assert get(secure, "/healthz").status_code == 200
    assert get(secure, "/docs").status_code == 200
    doc = get(secure, "/openapi.json", headers={"Authorization": f"Bearer {TOKEN}"}).json()
    assert doc["security"] == [{"bearer": []}]


def test_allow_list_hides_other_packages(secure: ServerProcess) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    r = post(secure, "/call/Codec.echo", {"value": 1}, headers=auth)
    assert r.status_code == 403 and error_of(r) == "Forbidden"
    names = {f["name"] for f in get(secure, "/functions", headers=auth).json()["functions"]}
    assert "Base.inverse_time_str" in names and not any(n.startswith("Codec.") for n in names)
    paths = get(secure, "/openapi.json", headers=auth).json()["paths"]
    assert "/call/Base.slug" in paths and "/call/Codec.echo" not in paths


def test_cors_only_for_configured_origins(secure: ServerProcess, iso: ServerProcess) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    ok = get(secure, "/healthz", headers={"Origin": "http://allowed.example"})
    assert ok.headers["Access-Control-Allow-Origin"] == "http://allowed.example"
    other = get(secure, "/healthz", headers={"Origin": "http://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers
    pre = requests.options(
        secure.url + "gfgo/", headers={"Origin": "http://allowed.example"}, timeout=30
    )
    assert pre.status_code == 204 and "Authorization" in pre.headers["Access-Control-Allow-Headers"]
    err = post(
        secure,
        "/gfgo/",
        {"pack_func": "Base.nope"},
        headers={**auth, "Origin": "http://allowed.example"},
    )
    assert (
        err.status_code == 404
        and err.headers["Access-Control-Allow-Origin"] == "http://allowed.example"
    )
    off = get(iso, "/healthz", headers={"Origin": "http://allowed.example"})
    assert "Access-Control-Allow-Origin" not in off.headers
    assert requests.options(iso.url + "gfgo/", timeout=30).status_code == 405


# -- catalogue, docs, health, metrics, logs ------------------------------------------------------
def test_functions_list_and_detail(iso: ServerProcess) -> None:
    listing = get(iso, "/functions").json()
    names = [f["name"] for f in listing["functions"]]
    assert "Base.inverse_time_str" in names and "Misbehave.hang" in names
    assert listing["count"] == len(names) == len(set(names))
    assert [f["name"] for f in get(iso, "/functions?package=Codec").json()["functions"]] == [
        "Codec.echo",
        "Codec.make_bytes",
        "Codec.positional",
        "Codec.type_name",
    ]
    one = get(iso, "/functions/Base.inverse_time_str").json()
    assert one["signature"].startswith("Base.inverse_time_str(time_str")
    assert "unix timestamp" in one["docstring"]
    assert len(one["sha256"]) == 64 and one["versions"][0]["sha256"] == one["sha256"]
    assert one["kwargs_schema"]["properties"]["bias_hours"] == {"type": "number", "default": 0}


def test_search(iso: ServerProcess) -> None:
    hits = get(iso, "/search?q=timestamp").json()
    assert "Base.inverse_time_str" in [f["name"] for f in hits["functions"]]
    assert get(iso, "/search?q=zzzqqqxxx").json()["count"] == 0
    assert get(iso, "/search").status_code == 400
    assert get(iso, "/search?q=time&limit=abc").status_code == 400
    assert get(iso, "/search?q=time&limit=0").status_code == 400


def test_openapi_has_every_endpoint_and_a_schema_per_function(iso: ServerProcess) -> None:
    doc = get(iso, "/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    for path in (
        "/",
        "/gfgo/",
        "/functions",
        "/functions/{name}",
        "/search",
        "/healthz",
        "/metrics",
        "/openapi.json",
    ):
        assert path in doc["paths"], path
    op = doc["paths"]["/call/Base.inverse_time_str"]["post"]
    schema = op["requestBody"]["content"]["application/json"]["schema"]
    assert schema["properties"]["time_str"]["type"] == "string"  # `time_str: str = None`: no null
    assert schema["additionalProperties"] is False
    positional = doc["paths"]["/call/Codec.positional"]["post"]["requestBody"]["content"]
    assert set(positional["application/json"]["schema"]["properties"]) == {"c", "d"}
    echo = doc["paths"]["/call/Codec.echo"]["post"]["requestBody"]["content"]["application/json"]
    assert echo["schema"]["additionalProperties"] is True


def test_docs_page_has_no_external_assets(iso: ServerProcess) -> None:
    r = get(iso, "/docs")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html")
    assert "openapi.json" in r.text
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", r.text)
    assert "@import" not in r.text


def test_unknown_endpoint_and_method_are_json(iso: ServerProcess) -> None:
    r = get(iso, "/nope")
    assert r.status_code == 404 and error_of(r) == "NotFound"
    r = requests.delete(iso.url + "gfgo/", timeout=30)
    assert r.status_code == 405 and r.json()["error"] == "HTTPError"


def test_healthz(iso: ServerProcess) -> None:
    h = get(iso, "/healthz").json()
    assert h["status"] == "ok" and h["mode"] == "isolated" and h["workers"] == 2


def test_metrics_count_calls_errors_and_latency(iso: ServerProcess) -> None:
    before = _metric(get(iso, "/metrics").text, 'gf_calls_total{function="Base.slug",status="200"}')
    for _ in range(3):
        assert post(iso, "/call/Base.slug", {"text": "Hello World"}).status_code == 200
    assert post(iso, "/call/Base.slug", {"nope": 1}).status_code == 422
    text = get(iso, "/metrics").text
    assert _metric(text, 'gf_calls_total{function="Base.slug",status="200"}') == before + 3
    assert _metric(text, 'gf_calls_total{function="Base.slug",status="422"}') >= 1
    assert _metric(text, 'gf_call_errors_total{error="BadArguments",function="Base.slug"}') >= 1
    assert _metric(text, 'gf_call_duration_seconds_count{function="Base.slug"}') >= 4
    assert _metric(text, 'gf_call_duration_seconds_bucket{function="Base.slug",le="+Inf"}') >= 4
    assert "# TYPE gf_call_duration_seconds histogram" in text
    assert _metric(text, "gf_executor_workers") == 2


def _metric(text: str, key: str) -> float:
    for line in text.splitlines():
        if line.startswith(key + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_one_access_log_line_per_request(iso: ServerProcess) -> None:
    marker = f"/call/Base.md5_text?probe={os.getpid()}"
    for _ in range(3):
        assert post(iso, marker, {"text": "a"}).status_code == 200
    assert post(iso, "/gfgo/", {"pack_func": "Base.nope"}).status_code == 404
    deadline = time.monotonic() + 10
    lines: list[str] = []
    while time.monotonic() < deadline:
        lines = [
            ln
            for ln in iso.log().splitlines()
            if ln.startswith("globalfunc.access POST /call/Base.md5_text ")
        ]
        if len(lines) >= 3:
            break
        time.sleep(0.1)
    assert len(lines) == 3
    assert re.fullmatch(
        r"globalfunc\.access POST /call/Base\.md5_text Base\.md5_text 200 [\d.]+ms 127\.0\.0\.1",
        lines[0],
    )


def test_sigterm_stops_server_and_workers(tmp_path: Path, storage_url: str) -> None:
    server = _server(tmp_path, storage_url, mode="isolated", workers=2)
    assert server.proc is not None
    pid = server.proc.pid
    children = [  # the pool starts workers from its threads: every task's children count
        int(p)
        for task in Path(f"/proc/{pid}/task").iterdir()
        for p in (task / "children").read_text().split()
    ]
    assert len(children) == 2
    assert post(server, "/gfgo/", SEED).json() == 1707966671
    assert server.stop(signal.SIGTERM) == 0
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(Path(f"/proc/{c}").exists() for c in children):
        time.sleep(0.05)
    assert not any(Path(f"/proc/{c}").exists() for c in children)
    assert "Traceback" not in server.log()


def test_extra_routes_get_the_same_rules(storage_url: str, tmp_path: Path) -> None:
    import asyncio

    import tornado.httpserver
    import tornado.netutil

    from gfgo.resolve import Resolver
    from globalfunc.executor import InlineExecutor
    from globalfunc.registry import Registry
    from server.http.app import BaseHandler, make_app

    class Private(BaseHandler):
        route = "/v1/private/<svc>"

        def post(self, svc: str) -> None:
            self.send_json({"svc": svc, "mode": self.state.executor.mode, "got": self.json_body()})

    registry = Registry.open(storage_url, branch="master")
    executor = InlineExecutor(Resolver(registry, cache_dir=tmp_path))
    app = make_app(registry, executor, token=TOKEN, extra_routes=[(r"/v1/private/(\w+)", Private)])
    assert app.settings["gf_state"].executor is executor
    sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
    port = sockets[0].getsockname()[1]
    loop = asyncio.new_event_loop()
    started = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        server = tornado.httpserver.HTTPServer(app)
        server.add_sockets(sockets)
        loop.call_soon(started.set)
        loop.run_forever()
        server.stop()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert started.wait(30)
    base = f"http://127.0.0.1:{port}"
    try:
        denied = requests.post(f"{base}/v1/private/svc1", json={"a": 1}, timeout=30)
        assert denied.status_code == 401 and denied.json()["error"] == "Unauthorized"
        ok = requests.post(
            f"{base}/v1/private/svc1",
            json={"a": 1},
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=30,
        )
        assert ok.json() == {"svc": "svc1", "mode": "inline", "got": {"a": 1}}
        seed = requests.post(
            f"{base}/gfgo/", json=SEED, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
        )
        assert seed.json() == 1707966671
        text = requests.get(
            f"{base}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
        ).text
        assert (
            'gf_http_requests_total{method="POST",route="/v1/private/<svc>",status="200"} 1.0'
            in text
        )
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        registry.close()


def test_several_processes_share_the_port_and_stop_together(
    tmp_path: Path, storage_url: str
) -> None:
    server = _server(tmp_path, storage_url, mode="inline", processes=2)
    assert server.proc is not None
    assert "processes 2" in server.banner
    pid = server.proc.pid
    deadline = time.monotonic() + 30
    children: list[int] = []
    while time.monotonic() < deadline and len(children) < 2:
        children = [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        time.sleep(0.05)
    assert len(children) == 2
    for _ in range(20):
        assert post(server, "/gfgo/", SEED).json() == 1707966671
    assert server.stop(signal.SIGTERM) == 0
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(Path(f"/proc/{c}").exists() for c in children):
        time.sleep(0.05)
    assert not any(Path(f"/proc/{c}").exists() for c in children)
