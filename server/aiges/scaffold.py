"""``gf aiges create`` and ``gf aiges check``: start an AIGES wrapper project, and vet one.

:func:`create_project` writes a project that runs as generated: ``wrapper/wrapper.py``
(AIGES style, importing from ``aiges_embed`` or ``aiges.dto``), ``wrapper/test_data/``,
``README.md``, ``requirements.txt``, a ``Dockerfile``, ``log/`` (for the plugin's log
file), ``wheels/`` (for a GlobalFunc wheel the Dockerfile installs) and an ``aiges.toml``
whose ``pythonPluginCmd`` starts GlobalFunc's plugin when run from the project folder, as
the loader runs it, and whose ``[wrapper]`` table is the init config. GlobalFunc is not on
a package index, so the requirements and README say how to install it (its repository, or
the wheel ``make wheel`` builds). :func:`check_project` imports a project's wrapper, runs init and one once exec on
its test data without any loader, and returns the problems it found as sentences.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

from globalfunc.errors import InvalidName, InvalidRequest
from server.aiges.engine import Frame
from server.aiges.schema import dialect_violations, field_descriptors
from server.aiges.wrapper_host import WrapperEngine, call_flexibly, data_list

__all__ = ["check_project", "create_project"]

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}\Z")

WRAPPER_TEMPLATE = '''"""{name}: an AIGES wrapper. Edit wrapperInit / wrapperOnceExec; keep the names."""

try:
    from aiges_embed import DataListCls, Response, ResponseData  # the C++ host
except ImportError:
    from aiges.dto import DataListCls, Response, ResponseData  # the SDK / GlobalFunc

from aiges.sdk import StringBodyField, StringParamField, WrapperBase
from aiges.utils.log import log


class UserRequest:
    """What a request carries: ``parameter`` fields and ``payload`` fields."""

    mode = StringParamField(key="mode", enums=["upper", "lower"], value="upper")
    text = StringBodyField(key="text", value=b"hello world")


class UserResponse:
    """What a response carries (every output key must be declared here)."""

    result = StringBodyField(key="result")


class Wrapper(WrapperBase):
    serviceId = "{service}"
    version = "v1"
    requestCls = UserRequest()
    responseCls = UserResponse()

    def wrapperInit(self, config: dict) -> int:
        """Load models here; ``config`` is the [wrapper] table of aiges.toml."""
        log.info("{name} init: %s", config)
        self.greeting = config.get("greeting", "")
        return 0

    def wrapperOnceExec(self, params: dict, reqData: DataListCls) -> Response:
        node = reqData.get("text")
        text = node.data.decode("utf-8") if node is not None else ""
        out = text.lower() if params.get("mode") == "lower" else text.upper()
        item = ResponseData()
        item.key = "result"
        item.setDataType(0)  # text
        item.status = 3  # once
        item.setData((self.greeting + out).encode("utf-8"))
        res = Response()
        res.list = [item]
        return res

    def wrapperFini(self) -> int:
        return 0

    def wrapperError(self, ret: int) -> str:
        return f"{name} error {{ret}}"
'''

TOML_TEMPLATE = """# AIGES loader configuration for {name}.
[aiges]
# How the loader (AIGES_PLUGIN_MODE=python) starts the Python plugin: GlobalFunc's.
# It serves on GlobalFunc's C++ gRPC server when the install built it (it does once
# GlobalFunc's scripts/system-deps.sh ran; the same protocol at a fraction of the CPU per
# call), else on grpcio; --server python|native decides.
# The loader runs it from its working folder (this one): ./wrapper and ./log are relative.
# GlobalFunc must be installed in that `python` (see README.md, "Install GlobalFunc").
pythonPluginCmd = "python -m server.aiges --wrapper ./wrapper --log-file ./log/plugin.log"
sessMode = false
headerPass = []

# Every key here is passed to Wrapper.wrapperInit(config).
[wrapper]
greeting = ""
"""

README_TEMPLATE = """# {name}

An AIGES inference service written as a Python wrapper (`wrapper/wrapper.py`).

## Install GlobalFunc

The plugin the loader starts (`python -m server.aiges`) is GlobalFunc's. GlobalFunc is not
on PyPI; install it into the Python the loader runs, from its repository:

    pip install "globalfunc @ git+<URL of the GlobalFunc repository>"   # or a local clone's path

or from the wheel that `make wheel` builds in a GlobalFunc checkout:

    pip install path/to/dist/globalfunc-<version>-py3-none-any.whl

Then `pip install -r requirements.txt` for what the wrapper itself needs.

## Run it

- Check it without a loader: `gf aiges check {name}`
- Serve it to an AIGES loader: set `AIGES_PLUGIN_MODE=python` and start the loader in this
  folder with `aiges.toml`; its `pythonPluginCmd` runs
  `python -m server.aiges --wrapper ./wrapper --log-file ./log/plugin.log` from here
  (the plugin's log goes to `log/plugin.log`).
- Serve it by hand for debugging: `python -m server.aiges --wrapper wrapper --no-cookie`.
- It runs on GlobalFunc's C++ gRPC server when `pip install` built it (run GlobalFunc's
  `scripts/system-deps.sh` first; `GF_REQUIRE_NATIVE=1` makes a missing one an install
  error), else on grpcio.
- Docker: copy the GlobalFunc wheel into `wheels/`, then `docker build .`.

Test inputs live in `wrapper/test_data/`, one file per payload key (`text.txt` feeds `text`).
"""

REQUIREMENTS_TEMPLATE = """# What the wrapper needs from a package index (numpy, torch, ...), one per line.
#
# GlobalFunc itself (the plugin in aiges.toml's pythonPluginCmd) is not on any index:
# install it first, from its repository or from the wheel `make wheel` builds there
# (see README.md, "Install GlobalFunc"), e.g.
#   pip install "globalfunc @ git+<URL of the GlobalFunc repository>"
#   pip install path/to/dist/globalfunc-<version>-py3-none-any.whl
"""

DOCKERFILE_TEMPLATE = """FROM python:3.11-slim
WORKDIR /home/aiges/{name}
# GlobalFunc is not on PyPI: put its wheel (`make wheel` in a GlobalFunc checkout writes
# dist/globalfunc-<version>-py3-none-any.whl) into wheels/ before `docker build`.
COPY wheels/ ./wheels/
COPY requirements.txt ./
RUN pip install --no-cache-dir ./wheels/globalfunc-*.whl -r requirements.txt
COPY . .
ENV AIGES_PLUGIN_MODE=python PYTHONPATH=/home/aiges/{name}/wrapper
CMD ["python", "-m", "server.aiges", "--wrapper", "./wrapper", "--log-file", "./log/plugin.log", "--no-cookie"]
"""


def create_project(name: str, parent_dir: str | Path = ".") -> Path:
    """Write the project ``<parent_dir>/<name>``; returns its path. Never overwrites."""
    if not _NAME.match(name or ""):
        raise InvalidName(
            f"project name {name!r} must start with a letter and hold only letters, digits, '_' "
            "and '-' (at most 64)"
        )
    root = Path(parent_dir) / name
    if root.exists():
        raise InvalidRequest(f"{root} already exists; choose another name or remove it first")
    service = re.sub(r"[^A-Za-z0-9_]", "_", name)
    (root / "wrapper" / "test_data").mkdir(parents=True)
    (root / "wrapper" / "wrapper.py").write_text(
        WRAPPER_TEMPLATE.format(name=name, service=service)
    )
    (root / "wrapper" / "test_data" / "text.txt").write_text("hello world\n")
    (root / "aiges.toml").write_text(TOML_TEMPLATE.format(name=name))
    (root / "README.md").write_text(README_TEMPLATE.format(name=name))
    (root / "requirements.txt").write_text(REQUIREMENTS_TEMPLATE)
    (root / "Dockerfile").write_text(DOCKERFILE_TEMPLATE.format(name=name))
    # pythonPluginCmd logs to ./log/plugin.log and the plugin does not make the folder.
    for folder in ("log", "wheels"):
        (root / folder).mkdir()
        (root / folder / ".gitkeep").write_text("")
    return root


def _wrapper_file(project: Path) -> Path | None:
    for candidate in (project / "wrapper" / "wrapper.py", project / "wrapper.py"):
        if candidate.is_file():
            return candidate
    if project.is_file() and project.suffix == ".py":
        return project
    return None


def _init_config(project: Path) -> tuple[dict[str, str], list[str]]:
    toml = project / "aiges.toml"
    if not toml.is_file():
        return {}, []
    try:
        data = tomllib.loads(toml.read_text())
    except tomllib.TOMLDecodeError as exc:
        return {}, [f"aiges.toml is not valid TOML: {exc}"]
    problems = []
    if "pythonPluginCmd" not in data.get("aiges", {}):
        problems.append(
            "aiges.toml has no [aiges] pythonPluginCmd; the loader cannot start the plugin"
        )
    return {str(k): str(v) for k, v in data.get("wrapper", {}).items()}, problems


def _test_request(instance: Any, test_dir: Path) -> tuple[dict[str, str], list[Frame], list[str]]:
    params: dict[str, str] = {}
    frames: list[Frame] = []
    problems: list[str] = []
    fields = field_descriptors(getattr(instance, "requestCls", None))
    if not fields:
        problems.append("Wrapper.requestCls declares no fields; the schema will have no inputs")
    for f in fields:
        if isinstance(f.data_type, str):
            value = (
                getattr(f, "default", None)
                if f.data_type == "boolean"
                else getattr(f, "value", None)
            )
            if value not in (None, ""):
                params[f.key] = str(value).lower() if isinstance(value, bool) else str(value)
            continue
        found = sorted(test_dir.glob(f"{f.key}.*")) if test_dir.is_dir() else []
        path = getattr(f, "path", "")
        if found:
            data = found[0].read_bytes()
        elif path and Path(path).is_file():
            data = Path(path).read_bytes()
        elif isinstance(getattr(f, "value", None), bytes | str) and getattr(f, "value", None):
            value = f.value
            data = value.encode() if isinstance(value, str) else value
        else:
            problems.append(
                f"no test data for input {f.key!r}: add {test_dir.name}/{f.key}.<ext> to the project"
            )
            continue
        frames.append(Frame(f.key, data, int(f.data_type), 3))
    return params, frames, problems


def _check_response(resp: Any, declared: set[str]) -> list[str]:
    if resp is None:
        return [
            "wrapperOnceExec returned None; return a Response (use response_err(code) on failure)"
        ]
    code = getattr(resp, "error_code", 0)
    if code:
        return [f"wrapperOnceExec answered error_code {code} on the test data"]
    items = getattr(resp, "list", None)
    if not items:
        return ["wrapperOnceExec returned an empty list; the loader needs at least one result item"]
    problems: list[str] = []
    seen: set[str] = set()
    for i, item in enumerate(items):
        key = getattr(item, "key", "")
        data = getattr(item, "data", None)
        if not key:
            problems.append(f"result item {i} has no key")
        elif key in seen:
            problems.append(f"result key {key!r} appears twice; keys must be unique")
        seen.add(key)
        if declared and key and key not in declared:
            problems.append(
                f"result key {key!r} is not declared in Wrapper.responseCls "
                f"(declared: {', '.join(sorted(declared))}); the loader rejects it (10106)"
            )
        if not isinstance(data, bytes):
            problems.append(
                f"result {key!r} data is {type(data).__name__}, not bytes; use setData(text.encode())"
            )
        elif getattr(item, "len", None) != len(data):
            problems.append(
                f"result {key!r} has len {getattr(item, 'len', None)} but {len(data)} bytes of data; "
                "set data with setData() so len follows"
            )
    return problems


def check_project(project_dir: str | Path) -> list[str]:
    """Import, init and once-exec a project's wrapper on its test data; the problems found."""
    project = Path(project_dir)
    file = _wrapper_file(project)
    if file is None:
        return [f"no wrapper found: expected {project / 'wrapper' / 'wrapper.py'}"]
    config, problems = _init_config(project)
    engine = WrapperEngine(file)
    ret = engine.init(config)
    if ret:
        what = "could not be loaded" if ret == 30001 else f"init answered {ret}"
        detail = f": {engine.load_error}" if engine.load_error else ""
        return [*problems, f"{file}: the wrapper {what}{detail}"]
    instance = engine.instance
    try:
        schema = engine.schema("")
        json.dumps(schema)
    except Exception as exc:
        problems.append(f"cannot build the schema from requestCls/responseCls: {exc}")
    else:
        problems += [
            f"the schema would stop the AIGES loader: {p}" for p in dialect_violations(schema)
        ]
    params, frames, data_problems = _test_request(instance, file.parent / "test_data")
    problems += data_problems
    declared = {f.key for f in field_descriptors(getattr(instance, "responseCls", None))}
    if not declared:
        problems.append(
            "Wrapper.responseCls declares no outputs; the loader rejects undeclared keys"
        )
    try:
        resp = call_flexibly(
            instance.wrapperOnceExec, [params, data_list(frames)], {"usrTag": "check"}
        )
    except Exception as exc:
        problems.append(f"wrapperOnceExec raised {type(exc).__name__}: {exc}")
    else:
        problems += _check_response(resp, declared)
    engine.fini()
    return problems
