"""The ase protocol on ``gf serve``: a real ``serve()`` process, real requests, both kinds of service.

Registry functions (service id = call name) run through the server's isolated executor;
wrapper.py services (``aiges_wrappers``) run in their own plugin process in isolated mode
(a hang, crash or memory hog costs one call) and in the server process in inline mode. The token, body
limit, allow-list, metrics and access log are the server's. The protocol itself (shapes,
codes) is the one of ``docs/aiges-compat.md`` section 4.
"""

from __future__ import annotations

import base64
import json
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from globalfunc.errors import ConfigError
from server.aiges.ase_http import load_wrappers
from tests.integration.serve_support import REPO, ServerProcess, build_registry

pytestmark = pytest.mark.integration

AIGES = REPO / "tests" / "data" / "aiges"
SVC = "Base.inverse_time_str"
RESULT = {"encoding": "utf8", "compress": "raw", "format": "plain"}
TOKEN = "ase-token"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture(scope="module")
def storage_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return build_registry(tmp_path_factory.mktemp("registry"))


@pytest.fixture(scope="module")
def echo_project() -> Iterator[Path]:
    """A ``gf aiges create``-style project: ``wrapper/wrapper.py`` and an aiges.toml config.

    In a folder any user can read: as root, wrapper processes run as the worker user.
    """
    project = Path(tempfile.mkdtemp(prefix="gf-echo-project-"))
    project.chmod(0o755)
    yield from _project(project)
    shutil.rmtree(project, ignore_errors=True)


def _project(project: Path) -> Iterator[Path]:
    (project / "wrapper").mkdir()
    shutil.copy(AIGES / "echo" / "wrapper.py", project / "wrapper" / "wrapper.py")
    (project / "aiges.toml").write_text(
        '[aiges]\npythonPluginCmd = "python -m server.aiges"\n\n[wrapper]\nprefix = "> "\n'
    )
    yield project


def _server(tmp: Path, storage_url: str, **kwargs: Any) -> ServerProcess:
    return ServerProcess.serve_call(
        tmp, storage_url=storage_url, branch="master", cache_dir=str(tmp / "cache"), **kwargs
    ).start()


@pytest.fixture(scope="module")
def iso(
    tmp_path_factory: pytest.TempPathFactory, storage_url: str, echo_project: Path
) -> Iterator[ServerProcess]:
    server = _server(
        tmp_path_factory.mktemp("iso"),
        storage_url,
        mode="isolated",
        workers=2,
        memory_limit_mb=400,
        call_timeout=20.0,
        timeouts={"Misbehave.hang": 1.5},
        aiges_wrappers=[str(echo_project), str(AIGES / "failing" / "wrapper.py")],
    )
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
        aiges_wrappers=[str(AIGES / "echo")],
    )
    yield server
    server.stop()


def post(server: ServerProcess, path: str, body: Any, **kw: Any) -> requests.Response:
    if isinstance(body, bytes):
        kw["data"] = body
    else:
        kw["json"] = body
    return requests.post(server.url.rstrip("/") + path, timeout=60, **kw)


def get(server: ServerProcess, path: str, **kw: Any) -> requests.Response:
    return requests.get(server.url.rstrip("/") + path, timeout=60, **kw)


def call(svc: str, params: dict[str, Any], payload: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "header": {"appid": "123456", "uid": "u1", "status": 3},
        "parameter": {svc: params},
    }
    if payload is not None:
        body["payload"] = payload
    return body


def assert_error(r: requests.Response, status: int, code: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["payload"] is None
    header = body["header"]
    assert header["code"] == code, header
    assert header["sid"] and header["message"]
    return dict(header)


# -- registry functions ------------------------------------------------------------------------
def test_registry_function_success_shape(iso: ServerProcess) -> None:
    r = post(
        iso,
        f"/v1/private/{SVC}",
        call(SVC, {"time_str": "2024-02-15 11:11:11", "bias_hours": -8, "result": RESULT}),
    )
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    body = r.json()
    assert body["header"]["code"] == 0 and body["header"]["status"] == 3
    assert len(body["header"]["sid"]) >= 16
    assert body["payload"] == {
        "result": {
            "encoding": "utf8",
            "compress": "raw",
            "format": "plain",
            "seq": "0",
            "status": "3",
            "text": "1707966671",
        }
    }


def test_same_answer_as_gfgo_on_every_route(iso: ServerProcess) -> None:
    gfgo = post(
        iso,
        "/gfgo/",
        {"pack_func": SVC, "kwargs": {"time_str": "2024-02-15 11:11:11", "bias_hours": 3}},
    ).json()
    for path in (f"/v1/{SVC}", f"/v2/private/{SVC}", f"/v1/private/{SVC}"):
        params = {"time_str": "2024-02-15 11:11:11", "bias_hours": "3", "result": RESULT}
        r = post(iso, path, call(SVC, params))
        assert r.status_code == 200, (path, r.text)
        assert json.loads(r.json()["payload"]["result"]["text"]) == gfgo


def test_kwargs_json_text_payload_base64(iso: ServerProcess) -> None:
    kwargs = json.dumps({"time_str": "2024-02-15 11:11:11"}).encode()
    r = post(
        iso,
        f"/v1/private/{SVC}",
        call(SVC, {"result": RESULT}, {"kwargs": {"encoding": "utf8", "text": b64(kwargs)}}),
    )
    assert r.status_code == 200, r.text
    assert json.loads(r.json()["payload"]["result"]["text"]) == 1707995471  # TZ=UTC, bias 0


def test_a_parameter_as_its_own_text_payload(iso: ServerProcess) -> None:
    r = post(
        iso,
        f"/v1/private/{SVC}",
        call(
            SVC,
            {"bias_hours": -8, "result": RESULT},
            {"time_str": {"text": b64(b"2024-02-15 11:11:11"), "status": 3}},
        ),
    )
    assert r.status_code == 200 and r.json()["payload"]["result"]["text"] == "1707966671"


def test_declared_attributes_are_echoed_as_strings(iso: ServerProcess) -> None:
    declared = {"encoding": "utf8", "compress": "raw", "format": "json", "level": 2}
    r = post(
        iso,
        f"/v1/private/{SVC}",
        call(SVC, {"time_str": "2024-02-15 11:11:11", "result": declared}),
    )
    item = r.json()["payload"]["result"]
    assert item["format"] == "json" and item["level"] == "2"


def test_undeclared_output_is_10106_and_the_function_does_not_run(iso: ServerProcess) -> None:
    before = get(iso, "/healthz").json()["replaced"]
    r = post(iso, "/v1/private/Misbehave.exit_now", call("Misbehave.exit_now", {}))
    header = assert_error(r, 400, 10106)
    assert "result" in header["message"]
    r = post(iso, f"/v1/private/{SVC}", call(SVC, {"time_str": "2024-02-15 11:11:11"}))
    assert_error(r, 400, 10106)
    # an exit_now that ran would have cost a worker
    assert get(iso, "/healthz").json()["replaced"] == before


@pytest.mark.parametrize(
    ("svc", "params", "payload", "needle"),
    [
        (SVC, {}, {"kwargs": {"text": b64(b'{"time_str": "x", "nope": 1}')}}, "nope"),
        (SVC, {"time_str": "2024-02-15 11:11:11", "bias_hours": "soon"}, None, "bias_hours"),
        (SVC, {}, {"stray": {"text": b64(b"not json")}}, "stray"),
        (SVC, {}, {"kwargs": {"text": b64(b"\xff\xfe")}}, "UTF-8"),
        ("Codec.positional", {"c": 1}, None, "needs a, b"),  # required arguments missing
        # mapped, but positional-only: the executor's signature check refuses them
        ("Codec.positional", {"a": 1, "b": 2}, None, "positional"),
    ],
)
def test_wrong_kwargs_are_10106(
    iso: ServerProcess,
    svc: str,
    params: dict[str, Any],
    payload: dict[str, Any] | None,
    needle: str,
) -> None:
    r = post(iso, f"/v1/private/{svc}", call(svc, {**params, "result": RESULT}, payload))
    header = assert_error(r, 400 if needle == "UTF-8" else 422, 10106)
    assert needle in header["message"]


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"[1, 2]", {"payload": {"text": {"text": "%%%"}}}, {"payload": {"x": {"y": 1}}}],
)
def test_bad_bodies_are_10106(iso: ServerProcess, body: Any) -> None:
    assert_error(post(iso, f"/v1/private/{SVC}", body), 400, 10106)


def test_function_raising_is_30003_with_its_message(iso: ServerProcess) -> None:
    svc = "Misbehave.raise_error"
    r = post(iso, f"/v1/private/{svc}", call(svc, {"message": "kaputt", "result": RESULT}))
    header = assert_error(r, 500, 30003)
    assert "ValueError" in header["message"] and "kaputt" in header["message"]


@pytest.mark.parametrize(
    ("svc", "params", "needle"),
    [
        ("Misbehave.exit_now", {"code": 7}, "exited with code 7"),
        ("Misbehave.segfault", {}, "SIGSEGV"),
    ],
)
def test_crashing_function_is_isolated(
    iso: ServerProcess, svc: str, params: dict[str, Any], needle: str
) -> None:
    replaced = get(iso, "/healthz").json()["replaced"]
    r = post(iso, f"/v1/private/{svc}", call(svc, {**params, "result": RESULT}))
    header = assert_error(r, 500, 10910)
    assert needle in header["message"]
    health = get(iso, "/healthz").json()
    assert health["replaced"] == replaced + 1 and health["workers"] == 2
    ok = post(
        iso, f"/v1/private/{SVC}", call(SVC, {"time_str": "2024-02-15 11:11:11", "result": RESULT})
    )
    assert ok.status_code == 200


def test_hanging_function_times_out_and_the_server_keeps_answering(iso: ServerProcess) -> None:
    svc = "Misbehave.hang"
    outcome: dict[str, requests.Response] = {}

    def slow() -> None:
        outcome["r"] = post(iso, f"/v1/private/{svc}", call(svc, {"result": RESULT}))

    thread = threading.Thread(target=slow)
    started = time.monotonic()
    thread.start()
    time.sleep(0.3)
    assert get(iso, "/ping").text == "pong"  # the event loop is free meanwhile
    thread.join(30)
    assert not thread.is_alive()
    assert_error(outcome["r"], 500, 10102)
    assert time.monotonic() - started < 15


def test_unknown_services_are_404(iso: ServerProcess) -> None:
    for svc in ("Base.no_such_function", "nope", "Base..x", "Base.a.b.c.d.e.f.g", "%20"):
        header = assert_error(post(iso, f"/v1/private/{svc}", call(svc, {})), 404, 10107)
        assert "echo" in header["message"] and "failing" in header["message"]
    assert_error(post(iso, "/v1/nope", {}), 404, 10107)


def test_wrong_method_is_not_a_service(iso: ServerProcess) -> None:
    r = get(iso, f"/v1/private/{SVC}")
    assert r.status_code == 405


# -- wrapper.py services ------------------------------------------------------------------------
def test_wrapper_service_on_the_same_server(iso: ServerProcess) -> None:
    r = post(
        iso,
        "/v1/private/echo",
        call("echo", {"mode": "upper", "result": RESULT}, {"text": {"text": b64(b"hello ase")}}),
    )
    assert r.status_code == 200, r.text
    item = r.json()["payload"]["result"]
    # "> " is the [wrapper] prefix of the project's aiges.toml, passed to wrapperInit
    assert item["text"] == "> HELLO ASE" and item["seq"] == "0" and item["status"] == "3"


def test_wrapper_binary_output_is_base64_with_its_desc(iso: ServerProcess) -> None:
    r = post(
        iso,
        "/v1/failing",
        call(
            "failing",
            {"fail": "typed", "result": {"encoding": "png"}},
            {"text": {"text": b64(b"x")}},
        ),
    )
    assert r.status_code == 200, r.text
    item = r.json()["payload"]["result"]
    assert base64.b64decode(item["image"]) == b"\x89PNG" and item["encoding"] == "png"


def test_wrapper_errors_carry_their_code(iso: ServerProcess) -> None:
    r = post(iso, "/v2/private/failing", call("failing", {"fail": "code", "result": RESULT}))
    assert_error(r, 500, 7001)
    r = post(iso, "/v1/private/failing", call("failing", {"fail": "raise", "result": RESULT}))
    assert "fell over" in assert_error(r, 500, 30003)["message"]
    r = post(iso, "/v1/private/echo", call("echo", {}, {"text": {"text": b64(b"x")}}))
    assert_error(r, 400, 10106)


def test_load_wrappers_reports_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no wrapper\.py"):
        load_wrappers([tmp_path])
    with pytest.raises(ConfigError, match="broken"):
        load_wrappers([AIGES / "broken"])
    with pytest.raises(ConfigError, match="two wrappers serve the service id 'echo'"):
        load_wrappers([AIGES / "echo", AIGES / "echo" / "wrapper.py"])


def test_a_broken_wrapper_stops_the_server_from_starting(tmp_path: Path, storage_url: str) -> None:
    server = ServerProcess.serve_call(
        tmp_path, storage_url=storage_url, mode="inline", aiges_wrappers=[str(AIGES / "broken")]
    )
    with pytest.raises(RuntimeError, match="server did not start") as info:
        server.start(wait=30)
    assert "broken" in str(info.value)


# -- the server's rules ------------------------------------------------------------------------
@pytest.mark.parametrize("header", [None, "Bearer wrong", TOKEN])
@pytest.mark.parametrize("svc", [SVC, "echo"])
def test_token_is_required(secure: ServerProcess, svc: str, header: str | None) -> None:
    headers = {} if header is None else {"Authorization": header}
    r = post(secure, f"/v1/private/{svc}", call(svc, {"result": RESULT}), headers=headers)
    assert_error(r, 401, 10105)
    assert r.headers["WWW-Authenticate"].startswith("Bearer")


def test_right_token_passes_and_ping_is_public(secure: ServerProcess) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    r = post(
        secure,
        f"/v1/private/{SVC}",
        call(SVC, {"time_str": "2024-02-15 11:11:11", "bias_hours": -8, "result": RESULT}),
        headers=auth,
    )
    assert r.status_code == 200 and r.json()["payload"]["result"]["text"] == "1707966671"
    r = post(
        secure,
        "/v1/echo",
        call("echo", {"mode": "lower", "result": RESULT}, {"text": {"text": b64(b"ABC")}}),
        headers=auth,
    )
    assert r.status_code == 200 and r.json()["payload"]["result"]["text"] == "abc"
    ping = get(secure, "/ping")
    assert (ping.status_code, ping.text) == (200, "pong")


def test_oversized_body_is_413(secure: ServerProcess) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    big = call("echo", {"result": RESULT}, {"text": {"text": b64(b"x" * 3000)}})
    assert_error(post(secure, "/v1/private/echo", big, headers=auth), 413, 10106)
    assert_error(post(secure, f"/v1/{SVC}", big, headers=auth), 413, 10106)


def test_allow_list_applies(secure: ServerProcess) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    svc = "Misbehave.exit_now"
    header = assert_error(
        post(secure, f"/v1/private/{svc}", call(svc, {"result": RESULT}), headers=auth), 403, 10105
    )
    assert "Misbehave" in header["message"]
    paths = get(secure, "/openapi.json", headers=auth).json()["paths"]
    assert f"/v1/private/{SVC}" in paths and f"/v1/private/{svc}" not in paths


def test_cors_headers_on_ase_routes(secure: ServerProcess) -> None:
    r = post(
        secure,
        "/v1/private/echo",
        call("echo", {"result": RESULT}),
        headers={"Origin": "http://allowed.example"},
    )
    assert r.status_code == 401
    assert r.headers["Access-Control-Allow-Origin"] == "http://allowed.example"
    pre = requests.options(
        secure.url + "v1/private/echo", headers={"Origin": "http://allowed.example"}, timeout=10
    )
    assert pre.status_code == 204 and "POST" in pre.headers["Access-Control-Allow-Methods"]


def test_metrics_and_access_log_see_ase_calls(iso: ServerProcess) -> None:
    r = post(
        iso, f"/v1/private/{SVC}", call(SVC, {"time_str": "2024-02-15 11:11:11", "result": RESULT})
    )
    assert r.status_code == 200
    post(iso, "/v1/echo", call("echo", {"result": RESULT}, {"text": {"text": b64(b"m")}}))
    text = get(iso, "/metrics").text
    assert f'gf_calls_total{{function="{SVC}",status="200"}}' in text
    assert 'gf_calls_total{function="echo",status="200"}' in text
    assert 'method="POST",route="/{version}/private/{serviceId}",status="200"' in text
    assert 'method="POST",route="/v1/{serviceId}",status="200"' in text
    deadline = time.monotonic() + 5
    while f"POST /v1/private/{SVC} {SVC} 200" not in iso.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert f"globalfunc.access POST /v1/private/{SVC} {SVC} 200" in iso.log()


def test_ping(iso: ServerProcess) -> None:
    r = get(iso, "/ping")
    assert (r.status_code, r.text) == (200, "pong")


# -- OpenAPI and /docs -----------------------------------------------------------------------
def test_openapi_describes_the_ase_routes(iso: ServerProcess) -> None:
    doc = get(iso, "/openapi.json").json()
    paths = doc["paths"]
    for path in ("/{version}/private/{serviceId}", "/v1/{serviceId}"):
        op = paths[path]["post"]
        assert op["tags"] == ["ase"]
        assert {"200", "401", "404", "413", "500"} <= op["responses"].keys()
    assert "get" in paths["/ping"]
    schemas = doc["components"]["schemas"]
    assert {"AseRequest", "AseSuccess", "AseError"} <= schemas.keys()
    assert schemas["AseError"]["properties"]["payload"] == {"type": "null"}
    assert "Error" in schemas  # the built-in schemas are still there
    # one path per service, with the service's own request schema
    op = paths[f"/v1/private/{SVC}"]["post"]
    body = op["requestBody"]["content"]["application/json"]["schema"]
    section = body["properties"]["parameter"]["properties"][SVC]
    assert section["required"] == ["result"]  # the output must be declared
    # the arguments: the typed JSON value of the 'kwargs' payload, as CallSpec checks it
    kwargs = body["properties"]["payload"]["properties"]["kwargs"]["properties"]["text"]
    assert {"time_str", "bias_hours"} <= kwargs["properties"].keys()
    assert kwargs["properties"]["bias_hours"]["type"] == "number"  # float
    assert op["responses"]["500"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "AseError"
    )
    echo = paths["/v1/private/echo"]["post"]["requestBody"]["content"]["application/json"]
    echo_params = echo["schema"]["properties"]["parameter"]["properties"]["echo"]["properties"]
    assert "mode" in echo_params
    assert "/v1/private/failing" in paths and "/call/Base.inverse_time_str" in paths


def test_docs_page_lists_every_non_call_path(iso: ServerProcess) -> None:
    page = get(iso, "/docs").text
    # the page builds its endpoint table from /openapi.json: every path not under /call/
    assert 'fetch("openapi.json"' in page and 'path.startsWith("/call/")' in page


# -- wrapper isolation -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fragile(tmp_path_factory: pytest.TempPathFactory, storage_url: str) -> Iterator[ServerProcess]:
    """Isolated mode: the misbehaving wrapper runs in its own plugin process."""
    server = _server(
        tmp_path_factory.mktemp("fragile"),
        storage_url,
        mode="isolated",
        workers=1,
        memory_limit_mb=400,
        call_timeout=2.0,
        aiges_wrappers=[str(AIGES / "misbehave")],
    )
    yield server
    server.stop()


def _misbehave(server: ServerProcess, what: str) -> requests.Response:
    return post(server, "/v1/private/misbehave", call("misbehave", {"do": what, "result": RESULT}))


def _wrapper_pid(server: ServerProcess) -> int:
    r = _misbehave(server, "pid")
    assert r.status_code == 200, r.text
    return int(r.json()["payload"]["result"]["text"])


@pytest.mark.parametrize(("what", "code"), [("crash", 10910), ("segv", 10910)])
def test_a_wrapper_that_dies_costs_one_call_not_the_server(
    fragile: ServerProcess, what: str, code: int
) -> None:
    before = _wrapper_pid(fragile)
    assert "died" in assert_error(_misbehave(fragile, what), 500, code)["message"]
    after = _wrapper_pid(fragile)  # a fresh process, initialised again
    assert after != before
    assert get(fragile, "/healthz").status_code == 200


def test_a_hanging_wrapper_times_out_and_is_replaced(fragile: ServerProcess) -> None:
    _wrapper_pid(fragile)  # served
    # the pool's two plugin processes are up (an earlier test's replacement may still start)
    deadline = time.monotonic() + 20
    while len(_plugin_pids(fragile)) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    before = set(_plugin_pids(fragile))
    assert len(before) == 2, before
    began = time.monotonic()
    body = assert_error(_misbehave(fragile, "hang"), 500, 10102)
    assert time.monotonic() - began < 10
    assert "2s" in body["message"]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # its replacement starts in the background
        after = set(_plugin_pids(fragile))
        if len(after) == len(before) and after != before:
            break
        time.sleep(0.1)
    assert len(before - after) == 1 and len(after - before) == 1, (before, after)
    _wrapper_pid(fragile)  # still served


def _plugin_pids(server: ServerProcess) -> list[int]:
    """The server's plugin processes (the wrapper's pool), by their command line."""
    found = []
    for pid in server.children():
        try:
            if b"server.aiges" in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(pid)
        except OSError:  # it ended while we looked
            continue
    return found


def test_a_memory_hog_wrapper_hits_the_cap_not_the_machine(fragile: ServerProcess) -> None:
    r = _misbehave(fragile, "hog")
    assert r.status_code == 500
    assert r.json()["header"]["code"] in (30003, 10910)  # MemoryError, or killed outright
    _wrapper_pid(fragile)  # still served


def test_wrapper_processes_do_not_see_the_servers_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from server.aiges.process_engine import ProcessEngine

    monkeypatch.setenv("GF_TOKEN", "secret-token")
    env = ProcessEngine(AIGES / "echo")._env()
    assert not [k for k in env if k.startswith("GF_")]
    assert env["BASIC_PLUGIN"] == "hello"


def test_a_hung_wrapper_call_holds_one_process_not_the_others(fragile: ServerProcess) -> None:
    """Each call has a plugin process of its own: a hang and its timeout cost that one only."""
    with ThreadPoolExecutor(2) as pool:
        hung = pool.submit(_misbehave, fragile, "hang")
        time.sleep(0.3)
        began = time.monotonic()
        pid = _wrapper_pid(fragile)  # served by the other process meanwhile
        assert time.monotonic() - began < 1.5
        assert_error(hung.result(), 500, 10102)
    assert _wrapper_pid(fragile) == pid  # the timeout replaced the hung process, not this one
