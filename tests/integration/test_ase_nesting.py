"""The ase routes honour the server's JSON nesting limit (``GF_MAX_JSON_DEPTH``).

A real ``serve()`` process with ``max_json_depth=4``: an ase request nested exactly that
deep is served, for a registry function and for a wrapper service; one level more, or
thousands, is a 400 in the ase error shape (code 10106, the ``NestingTooDeep`` message),
on both routes, with no traceback in the log.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.integration.serve_support import REPO, ServerProcess, build_registry

pytestmark = pytest.mark.integration

AIGES = REPO / "tests" / "data" / "aiges"
SVC = "Base.inverse_time_str"
RESULT = {"encoding": "utf8", "compress": "raw", "format": "plain"}
DEPTH = 4  # the server's limit here; a plain ase request is 4 deep (parameter.<svc>.result)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    tmp = tmp_path_factory.mktemp("ase-depth")
    srv = ServerProcess.serve_call(
        tmp,
        storage_url=build_registry(tmp),
        branch="master",
        cache_dir=str(tmp / "cache"),
        mode="inline",
        max_json_depth=DEPTH,
        aiges_wrappers=[str(AIGES / "echo")],
    ).start()
    yield srv
    srv.stop()


def requests_for(extra: Any) -> list[tuple[str, dict[str, Any]]]:
    """One request per (route, service); ``extra`` goes under parameter.<svc>.result."""
    function = {"time_str": "2024-02-15 11:11:11", "bias_hours": -8, "result": {**RESULT}}
    wrapper = {"mode": "upper", "result": {**RESULT}}
    payload = {"text": {"text": base64.b64encode(b"hello").decode()}}
    if extra is not None:
        function["result"]["extra"] = extra
        wrapper["result"]["extra"] = extra
    header = {"appid": "123456", "uid": "u1", "status": 3}
    fn_body = {"header": header, "parameter": {SVC: function}}
    echo_body = {"header": header, "parameter": {"echo": wrapper}, "payload": payload}
    return [
        (f"/v1/private/{SVC}", fn_body),
        (f"/v1/{SVC}", fn_body),
        ("/v1/private/echo", echo_body),
        ("/v1/echo", echo_body),
    ]


def post(server: ServerProcess, path: str, raw: bytes) -> requests.Response:
    return requests.post(server.url.rstrip("/") + path, data=raw, timeout=60)


def raw_with(body: dict[str, Any], nested: bytes) -> bytes:
    """``body`` as JSON with ``nested`` (raw JSON text) in place of the "DEEP" marker."""
    return json.dumps(body).replace('"DEEP"', nested.decode()).encode()


def test_a_request_at_the_limit_is_served(server: ServerProcess) -> None:
    for path, body in requests_for(None):
        r = post(server, path, json.dumps(body).encode())
        assert r.status_code == 200, (path, r.text)
        assert r.json()["header"]["code"] == 0, (path, r.text)


@pytest.mark.parametrize("levels", [1, 300, 100_000])
def test_deeper_is_a_400_in_the_ase_shape(server: ServerProcess, levels: int) -> None:
    time.sleep(0.2)
    before = server.log().count("\n")
    # parameter.<svc>.result is at depth 4: "extra" holding one list is 5, one over
    nested = b"[" * levels + b"1" + b"]" * levels
    for path, body in requests_for("DEEP"):
        r = post(server, path, raw_with(body, nested))
        assert r.status_code == 400, (path, r.text)
        answer = r.json()
        assert set(answer) == {"header", "payload"} and answer["payload"] is None
        header = answer["header"]
        assert header["code"] == 10106 and header["sid"], (path, header)
        assert f"nested more than {DEPTH} levels" in header["message"], (path, header)
    time.sleep(0.2)
    log = server.log()
    assert "Traceback" not in log
    assert len(log.splitlines()[before:]) <= 2 * 4  # a line or two per request, no dump


def test_a_body_that_is_not_json_is_still_a_failed_request(server: ServerProcess) -> None:
    r = post(server, f"/v1/private/{SVC}", b'{"header": ')
    assert r.status_code == 400  # the client's mistake: a 4xx; the body keeps code 10106
    assert r.json()["header"]["code"] == 10106 and "not valid JSON" in r.json()["header"]["message"]
