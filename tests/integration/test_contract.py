"""The HTTP contract: schemathesis against a live ``gf serve`` (issue 11 item 5).

A real ``gf serve --mode isolated`` subprocess on a free port, with its own SQLite registry,
serves a git packages repository of typed functions (``tests/data/typed``) plus the Base
functions that are safe to fuzz (``SAFE_BASE``: no shell, no files, no exception on a value
their annotations admit). schemathesis reads ``/openapi.json`` and, for every operation,
generates valid and invalid requests (deterministically: ``derandomize``), sends them, and
runs every check it has: no 5xx, the status declared, the body and headers on their
schema, valid data accepted, invalid data rejected, ``Allow`` on a 405, ... Zero failures.

The registry endpoints (``/registry/...``, issue 15) are in the run: this server has no
token, so it takes no writes, and the save and delete operations answer every generated
request with a 4xx (403 for a well-formed one) without touching the registry the other
operations read; the reads are fuzzed in full.

Left out: the per-service ase operations of registry functions (``/v1/private/<name>``),
whose parameters travel as text converted by annotation (the loader's protocol); their
statuses are checked below by hand, and the generic ase routes are in the run.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import git
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import CHECKS

from tests.integration.serve_support import REPO, ServerProcess, make_repo

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TYPED = REPO / "tests" / "data" / "typed"
SAFE_BASE = ("clear_digits", "dedup_keep_order", "get_machine_name")
MAX_EXAMPLES = 25


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    tmp = tmp_path_factory.mktemp("contract")
    root = make_repo(tmp / "packages", TYPED)
    base = root / "Base"
    base.mkdir()
    for name in SAFE_BASE:
        shutil.copy(REPO / "packages" / "Base" / f"{name}.py", base / f"{name}.py")
    repo = git.Repo(root)
    repo.git.add(A=True)
    repo.index.commit("the Base functions safe to fuzz")
    repo.close()
    proc = ServerProcess.gf_serve(
        root, tmp, "--mode", "isolated", env={"GF_WORKERS": "2", "GF_CALL_TIMEOUT": "10"}
    ).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def api(server: ServerProcess) -> schemathesis.BaseSchema:
    schema = schemathesis.openapi.from_url(server.url + "openapi.json")
    schema.config.generation.update(
        modes=[schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE],
        max_examples=MAX_EXAMPLES,
        deterministic=True,
    )
    return schema.exclude(operation_id_regex="^ase_")


ALL_CHECKS = list(CHECKS.get_all())


@pytest.mark.parametrize(
    "mode", [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE]
)
def test_every_operation_keeps_its_contract(
    api: schemathesis.BaseSchema, mode: schemathesis.GenerationMode
) -> None:
    # schemathesis's own strategies and checks, run by hypothesis here (its pytest plugin
    # does not load under this pytest); one hypothesis run per operation.
    failures: list[str] = []
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) >= 20
    registry = {op.label for op in operations if op.path.startswith("/registry/")}
    assert len(registry) == 7, registry  # save, get, delete, history, list, search, duplicates
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            derandomize=True,
            database=None,
            deadline=None,
            max_examples=MAX_EXAMPLES,
            suppress_health_check=list(HealthCheck),
        )
        def run(case: schemathesis.Case) -> None:
            case.call_and_validate(checks=ALL_CHECKS, timeout=30)

        try:
            run()
        except Unsatisfiable:  # nothing in this operation to make invalid (GET /healthz)
            assert mode is schemathesis.GenerationMode.NEGATIVE, operation.label
        except Exception as exc:  # every operation runs; all failures are reported
            failures.append(f"{operation.label}: {exc}")
    assert not failures, "\n\n".join(failures)


def test_the_document_covers_every_served_function(server: ServerProcess) -> None:
    doc = requests.get(server.url + "openapi.json", timeout=10).json()
    calls = {p[len("/call/") :] for p in doc["paths"] if p.startswith("/call/")}
    typed = {f"Typed.{f.stem}" for f in TYPED.joinpath("Typed").glob("[!_]*.py")}
    assert calls == typed | {f"Base.{n}" for n in SAFE_BASE}
    body = doc["paths"]["/call/Typed.add"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"]["properties"]["a"] == {"type": "integer"}
    assert body["schema"]["required"] == ["a"]


def test_a_wrong_argument_is_a_422_naming_the_parameter(server: ServerProcess) -> None:
    r = requests.post(server.url + "call/Typed.total", json={"values": True}, timeout=30)
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "BadArguments" and r.json()["details"]["parameter"] == "values"


@pytest.mark.parametrize("method", ["TRACE", "PATCH", "PUT", "DELETE", "GET"])
@pytest.mark.parametrize("path", ["/call/Typed.add", "/gfgo/", "/v1/private/Typed.add"])
def test_a_405_says_what_is_allowed(server: ServerProcess, method: str, path: str) -> None:
    r = requests.request(method, server.base_url + path, timeout=10)
    assert r.status_code == 405, r.text
    assert r.headers["Allow"] == "POST"


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"{not json", 400),
        (b"[1, 2]", 400),
        (b'{"parameter": {"Typed.add": {"a": 1}}}', 400),  # the output 'result' undeclared
        (b'{"parameter": {"Typed.add": {"a": "x", "result": {}}}}', 422),
    ],
)
def test_ase_client_mistakes_are_4xx_with_their_code(
    server: ServerProcess, body: bytes, status: int
) -> None:
    r = requests.post(server.url + "v1/private/Typed.add", data=body, timeout=30)
    assert r.status_code == status, r.text
    assert r.json()["header"]["code"] == 10106 and r.json()["payload"] is None


def test_an_idempotency_key_off_its_declared_pattern_is_400(server: ServerProcess) -> None:
    import requests as _requests

    for key in ("has space", "", "x" * 201, "naïve"):
        r = _requests.post(
            f"{server.url}call/Typed.add",
            json={"a": 1, "b": 2},
            headers={"Idempotency-Key": key.encode("utf-8")},
            timeout=10,
        )
        assert r.status_code == 400, (key, r.status_code, r.text)
