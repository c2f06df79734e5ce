"""Small builders of records and function files shared by the test suites."""

from __future__ import annotations

import hashlib
from pathlib import Path

from globalfunc.record import FunctionRecord, Param


def make_record(
    name: str = "to_pickle",
    code: str | None = None,
    *,
    package: str = "Base",
    branch: str = "master",
    tier1: str = "sp_GlobalFunc",
    doc: str | None = None,
) -> FunctionRecord:
    """A valid record whose hashes match its code: a record a scan of that code gives
    (without ``code``, a ``doc`` is the function's docstring), so a store that re-scans
    what it is sent (the http backend's server) stores the same record."""
    if code is None:
        docline = f'    """{doc}"""\n' if doc else ""
        code = f"def {name}(x=None):\n{docline}    return x\n"
    data = code.encode()
    return FunctionRecord(
        package=package,
        name=name,
        code=code,
        md5=hashlib.md5(data).hexdigest(),
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        line_count=code.count("\n"),
        modified_time="2024-02-15 11:11:11",
        file_name=f"{name}.py",
        signature="(x=None)",
        params=(Param("x", "positional_or_keyword", "None"),),
        docstring=doc,
        tier1=tier1,
        branch=branch,
    )


def write_function(root: Path, package: str, name: str, body: str | None = None) -> Path:
    """Write ``root/<package>/<name>.py`` defining ``name``; return its path."""
    folder = root.joinpath(*package.split("."))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.py"
    path.write_text(
        body
        if body is not None
        else f'"""{name} module."""\n\n\ndef {name}(x: int = 1) -> int:\n    """Return x plus one."""\n    return x + 1\n',
        encoding="utf-8",
    )
    return path
