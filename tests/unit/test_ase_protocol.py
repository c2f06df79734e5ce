"""The ase protocol module on its own (shapes, codes) and the ase OpenAPI fragment.

The HTTP behaviour is tested end to end in tests/integration/test_ase_http.py; here the
pieces the split made separately testable: body parsing and rendering without a server,
and the OpenAPI fragment written with the HTTP server's operation builder.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest

from server.aiges.ase_http import AseServices, ase_openapi
from server.aiges.ase_http.protocol import (
    UNDECLARED_OUTPUT,
    AseError,
    parse_body,
    render_outcome,
)
from server.aiges.engine import Frame, Outcome
from server.aiges.function_host import FunctionEngine, params_of
from server.http.openapi import operation, responses, schema_ref


def test_parse_body_splits_params_outputs_and_frames() -> None:
    body = {
        "header": {"appid": "x"},
        "parameter": {
            "svc": {"mode": "upper", "n": 3, "flag": True, "result": {"encoding": "utf8"}}
        },
        "payload": {
            "text": {"encoding": "utf8", "status": 3, "text": base64.b64encode(b"hi").decode()},
            "pic": {"image": base64.b64encode(b"\x89PNG").decode(), "status": "2"},
        },
    }
    params, outputs, frames = parse_body("svc", body)
    assert params == {"mode": "upper", "n": "3", "flag": "true"}
    assert outputs == {"result": {"encoding": "utf8"}}
    assert [(f.key, f.data, f.type, f.status) for f in frames] == [
        ("text", b"hi", 0, 3),
        ("pic", b"\x89PNG", 2, 2),
    ]
    assert frames[0].desc == {"encoding": "utf8"}


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ([], "must be a JSON object"),
        ({"parameter": {"svc": 1}}, "parameter.svc must be an object"),
        ({"payload": "text"}, "payload must be an object"),
        ({"payload": {"k": {"nothing": 1}}}, "none of text/image/audio/video"),
        ({"payload": {"k": {"text": "%%%"}}}, "payload.k.text is not base64"),
        ({"payload": {"k": {"text": "", "status": "x"}}}, "payload.k.status must be 0-3"),
    ],
)
def test_parse_body_rejects_with_10106_and_the_place(body: Any, needle: str) -> None:
    with pytest.raises(AseError) as caught:
        parse_body("svc", body)
    assert caught.value.code == 10106 and needle in caught.value.message
    assert caught.value.http_status == 400  # the client's mistake: 4xx, code 10106 kept


def test_render_outcome_text_raw_binary_base64_and_undeclared_10106() -> None:
    outcome = Outcome(
        ret=0,
        frames=[Frame("result", b"HI", 0, 3, {"format": "json"}), Frame("pic", b"\x00\x01", 2, 3)],
    )
    body = render_outcome(outcome, {"result": {"format": "plain"}, "pic": {}}, "sid1")
    assert body["header"] == {"code": 0, "status": 3, "sid": "sid1"}
    assert body["payload"]["result"]["text"] == "HI"
    assert body["payload"]["result"]["format"] == "plain"  # the request's declaration wins
    assert body["payload"]["pic"]["image"] == base64.b64encode(b"\x00\x01").decode()
    assert body["payload"]["pic"]["seq"] == "1" and body["payload"]["pic"]["status"] == "3"
    with pytest.raises(AseError) as caught:
        render_outcome(outcome, {"result": {}}, "sid1")
    assert caught.value.code == UNDECLARED_OUTPUT and "'pic'" in caught.value.message
    with pytest.raises(AseError) as failed:
        render_outcome(Outcome.failure(30003, "boom"), {}, "sid1")
    assert failed.value.code == 30003 and failed.value.body("s")["payload"] is None


def greet(name: str, times: int = 2, loud: bool = False) -> str:
    return name * times


def test_openapi_fragment_uses_the_shared_builder_and_plain_json_schema() -> None:
    engine = FunctionEngine("Pkg.greet", lambda _n: (greet, params_of(greet)))
    assert engine.init({}) == 0
    services = AseServices({"Pkg.greet": engine}, workers=1)
    try:
        fragment = ase_openapi(services, [])
    finally:
        services.close()
    op = fragment["paths"]["/v1/private/Pkg.greet"]["post"]
    request = op["requestBody"]["content"]["application/json"]["schema"]
    expected = operation(
        op["summary"],
        responses(schema_ref("AseSuccess"), _ase_errors(op), schema_ref("AseError")),
        body=request,
        tags=["ase"],
        operationId="ase_Pkg_greet",
    )
    assert op == expected
    props = request["properties"]["parameter"]["properties"]["Pkg.greet"]["properties"]
    # OpenAPI readers know `default`, not the loader's `defaultVal`
    assert props["times"]["default"] == 2 and "defaultVal" not in props["times"]
    assert props["loud"]["default"] is False
    assert set(fragment["components"]["schemas"]) == {"AseRequest", "AseSuccess", "AseError"}


def _ase_errors(op: dict[str, Any]) -> dict[int, str]:
    return {int(code): r["description"] for code, r in op["responses"].items() if code != "200"}
