"""The ase HTTP protocol end to end over a real tornado server and real HTTP requests."""

from __future__ import annotations

import base64
import json
import os
import time
from pathlib import Path
from typing import Any, ClassVar

import pytest
import tornado.testing
import tornado.web

from server.aiges.ase_http import ase_routes, build_engines

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data" / "aiges"
RESULT = {"encoding": "utf8", "compress": "raw", "format": "plain"}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class AseHttpTest(tornado.testing.AsyncHTTPTestCase):
    engines: ClassVar[dict[str, Any]] = {}
    old_tz: ClassVar[str | None] = None

    @classmethod
    def setUpClass(cls) -> None:
        cls.old_tz = os.environ.get("TZ")
        os.environ["TZ"] = "UTC"
        time.tzset()
        cls.engines = build_engines(
            wrappers=[str(DATA / "echo"), str(DATA / "failing")],
            functions=["Base.inverse_time_str"],
            root=str(REPO / "packages"),
        )

    @classmethod
    def tearDownClass(cls) -> None:
        if cls.old_tz is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = cls.old_tz
        time.tzset()

    def get_app(self) -> tornado.web.Application:
        return tornado.web.Application(ase_routes(self.engines))

    def post_json(self, path: str, body: Any) -> tuple[int, dict[str, Any]]:
        response = self.fetch(path, method="POST", body=json.dumps(body), raise_error=False)
        return response.code, json.loads(response.body)

    def test_wrapper_success_shape(self) -> None:
        code, body = self.post_json(
            "/v1/private/echo",
            {
                "header": {"appid": "123456", "status": 3},
                "parameter": {"echo": {"mode": "upper", "result": RESULT}},
                "payload": {"text": {"encoding": "utf8", "status": 3, "text": b64(b"hello ase")}},
            },
        )
        assert code == 200
        assert (
            body["header"]["code"] == 0 and body["header"]["status"] == 3 and body["header"]["sid"]
        )
        assert body["payload"] == {
            "result": {
                "encoding": "utf8",
                "compress": "raw",
                "format": "plain",
                "seq": "0",
                "status": "3",
                "text": "HELLO ASE",
            }
        }

    def test_older_route_and_binary_outputs_are_base64(self) -> None:
        code, body = self.post_json(
            "/v1/failing",
            {
                "parameter": {"failing": {"fail": "typed", "result": {"encoding": "png"}}},
                "payload": {"text": {"text": b64(b"x")}},
            },
        )
        assert code == 200
        item = body["payload"]["result"]
        assert base64.b64decode(item["image"]) == b"\x89PNG" and item["encoding"] == "png"

    def test_undeclared_output_is_10106(self) -> None:
        code, body = self.post_json(
            "/v1/private/echo",
            {"parameter": {"echo": {}}, "payload": {"text": {"text": b64(b"x")}}},
        )
        assert code == 400  # a client's mistake: 4xx, its ase code kept in the body
        assert body["payload"] is None
        assert body["header"]["code"] == 10106 and "result" in body["header"]["message"]

    def test_engine_errors_carry_their_code(self) -> None:
        code, body = self.post_json(
            "/v2/private/failing",
            {
                "parameter": {"failing": {"fail": "code", "result": RESULT}},
                "payload": {"text": {"text": ""}},
            },
        )
        assert (code, body["header"]["code"]) == (500, 7001)
        code, body = self.post_json(
            "/v1/private/failing", {"parameter": {"failing": {"fail": "raise", "result": RESULT}}}
        )
        assert (code, body["header"]["code"]) == (500, 30003)
        assert "fell over" in body["header"]["message"]

    def test_bad_bodies_and_unknown_services(self) -> None:
        response = self.fetch(
            "/v1/private/echo", method="POST", body=b"{not json", raise_error=False
        )
        assert response.code == 400 and json.loads(response.body)["header"]["code"] == 10106
        code, body = self.post_json("/v1/private/echo", {"payload": {"text": {"text": "%%%"}}})
        assert code == 400 and "base64" in body["header"]["message"]
        code, body = self.post_json("/v1/private/nope", {})
        assert code == 404 and "echo" in body["header"]["message"]

    def test_registry_function_over_ase(self) -> None:
        code, body = self.post_json(
            "/v1/private/Base.inverse_time_str",
            {
                "parameter": {
                    "Base.inverse_time_str": {
                        "time_str": "2024-02-15 11:11:11",
                        "bias_hours": -8,
                        "result": RESULT,
                    }
                }
            },
        )
        assert code == 200
        assert json.loads(body["payload"]["result"]["text"]) == 1707966671
        code, body = self.post_json(
            "/v1/private/Base.inverse_time_str",
            {
                "parameter": {"Base.inverse_time_str": {"result": RESULT}},
                "payload": {
                    "kwargs": {
                        "text": b64(json.dumps({"time_str": "2024-02-15 11:11:11"}).encode())
                    }
                },
            },
        )
        assert code == 200 and json.loads(body["payload"]["result"]["text"]) == 1707995471

    def test_ping(self) -> None:
        response = self.fetch("/ping")
        assert (response.code, response.body) == (200, b"pong")
