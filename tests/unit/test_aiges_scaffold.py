"""``gf aiges create`` / ``gf aiges check``: the scaffold runs as generated; check finds problems."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from globalfunc.errors import InvalidName, InvalidRequest
from server.aiges.scaffold import check_project, create_project


def test_create_writes_a_project_that_checks_clean(tmp_path: Path) -> None:
    root = create_project("mnist-demo", tmp_path)
    assert root == tmp_path / "mnist-demo"
    for rel in (
        "wrapper/wrapper.py",
        "wrapper/test_data/text.txt",
        "README.md",
        "requirements.txt",
        "Dockerfile",
    ):
        assert (root / rel).is_file(), rel
    source = (root / "wrapper" / "wrapper.py").read_text()
    assert "from aiges_embed import" in source and "from aiges.dto import" in source
    toml = tomllib.loads((root / "aiges.toml").read_text())
    assert "server.aiges" in toml["aiges"]["pythonPluginCmd"]
    assert "greeting" in toml["wrapper"]
    assert check_project(root) == []


def test_create_refuses_bad_names_and_existing_folders(tmp_path: Path) -> None:
    with pytest.raises(InvalidName):
        create_project("../escape", tmp_path)
    create_project("once", tmp_path)
    with pytest.raises(InvalidRequest, match="already exists"):
        create_project("once", tmp_path)


def _project(tmp_path: Path, body: str, *, test_data: bool = True) -> Path:
    root = create_project("p", tmp_path)
    source = (root / "wrapper" / "wrapper.py").read_text()
    start = source.index("    def wrapperOnceExec")
    end = source.index("    def wrapperFini")
    (root / "wrapper" / "wrapper.py").write_text(source[:start] + body + "\n" + source[end:])
    if not test_data:
        (root / "wrapper" / "test_data" / "text.txt").unlink()
    return root


EXEC = "    def wrapperOnceExec(self, params, reqData):\n"


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (EXEC + "        return None\n", "returned None"),
        (EXEC + "        return Response()\n", "empty list"),
        (EXEC + "        raise ValueError('bad model')\n", "raised ValueError: bad model"),
        (EXEC + "        return Response().response_err(5)\n", "error_code 5"),
        (
            EXEC
            + "        r = Response(); r.list = [ResponseData('other', b'x', 1, 0, 3)]; return r\n",
            "'other' is not declared",
        ),
        (
            EXEC
            + "        r = Response(); r.list = [ResponseData('result', 'text', 4, 0, 3)]; return r\n",
            "not bytes",
        ),
        (
            EXEC
            + "        r = Response(); r.list = [ResponseData('result', b'abc', 9, 0, 3)]; return r\n",
            "len 9 but 3",
        ),
        (
            EXEC
            + "        r = Response(); r.list = [ResponseData('result', b'a', 1, 0, 3)] * 2; return r\n",
            "appears twice",
        ),
    ],
)
def test_check_reports_bad_responses(tmp_path: Path, body: str, needle: str) -> None:
    problems = check_project(_project(tmp_path, body))
    assert any(needle in p for p in problems), problems


def test_check_reports_import_failures_and_missing_files(tmp_path: Path) -> None:
    assert "no wrapper found" in check_project(tmp_path)[0]
    root = create_project("broken", tmp_path)
    (root / "wrapper" / "wrapper.py").write_text("import not_a_real_module\n")
    [problem] = check_project(root)
    assert "could not be loaded" in problem and "not_a_real_module" in problem


def test_check_uses_the_wrapper_section_and_test_data(tmp_path: Path) -> None:
    root = _project(
        tmp_path,
        EXEC
        + "        assert reqData.get('text').data == b'hello world\\n', reqData.get('text').data\n"
        + "        assert self.greeting == 'hi', self.greeting\n"
        + "        r = Response(); r.list = [ResponseData('result', b'ok', 2, 0, 3)]; return r\n",
    )
    toml = root / "aiges.toml"
    toml.write_text(toml.read_text().replace('greeting = ""', 'greeting = "hi"'))
    assert check_project(root) == []


def test_check_reports_a_schema_the_loader_would_refuse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = create_project("dialect", tmp_path)
    from server.aiges import scaffold

    real = scaffold.WrapperEngine.schema

    def with_plain_default(self: Any, service_id: str) -> dict[str, Any]:
        doc = real(self, service_id)
        doc["schemainput"]["properties"]["header"]["default"] = {}
        return doc

    monkeypatch.setattr(scaffold.WrapperEngine, "schema", with_plain_default)
    [problem] = check_project(root)
    assert "would stop the AIGES loader" in problem and "'default'" in problem
    assert "defaultVal" in problem
