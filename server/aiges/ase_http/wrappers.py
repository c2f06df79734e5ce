"""Wrapper-project loading for the ase routes: find a wrapper, read its config, init engines.

:func:`load_wrappers` is what ``gf serve --aiges-wrapper`` uses: each path is a wrapper
folder, its ``wrapper.py``, or a ``gf aiges create`` project; the ``[wrapper]`` table of
an ``aiges.toml`` beside it is the ``wrapperInit`` config, as under the loader.
:func:`build_engines` builds in-process engines for a standalone ase app (tests, tools).

It does not serve anything (:mod:`.handlers`) and does not build schemas (the engines do).
"""

from __future__ import annotations

import logging
import os
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path

from globalfunc.errors import ConfigError, InvalidRequest
from server.aiges.engine import INIT_FAILED, Engine
from server.aiges.function_host import FunctionEngine

__all__ = ["build_engines", "load_wrappers"]

log = logging.getLogger(__name__)


def _wrapper_location(target: Path) -> tuple[Path, Path | None]:
    """The wrapper file of a wrapper dir, file or ``gf aiges create`` project, and its aiges.toml."""
    if target.is_file():
        toml = target.parent / "aiges.toml"
        return target, toml if toml.is_file() else None
    for candidate in (target / "wrapper.py", target / "wrapper" / "wrapper.py"):
        if candidate.is_file():
            for toml in (candidate.parent / "aiges.toml", candidate.parent.parent / "aiges.toml"):
                if toml.is_file():
                    return candidate, toml
            return candidate, None
    raise ConfigError(
        f"no wrapper.py in {target} (nor in {target / 'wrapper'}); pass an AIGES wrapper "
        "directory, its wrapper.py, or a project made by 'gf aiges create'"
    )


def _wrapper_config(toml: Path | None) -> dict[str, str]:
    if toml is None:
        return {}
    try:
        data = tomllib.loads(toml.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read the [wrapper] config of {toml}: {exc}") from exc
    section = data.get("wrapper", {})
    return {str(k): str(v) for k, v in section.items()} if isinstance(section, dict) else {}


def load_wrappers(
    paths: Iterable[str | os.PathLike[str]],
    *,
    isolated: bool = False,
    call_timeout: float = 30.0,
    memory_mb: int | None = None,
    user: str | None = None,
) -> dict[str, Engine]:
    """Load and init each wrapper (dir, ``wrapper.py`` or project), keyed by its serviceId.

    ``isolated`` runs each wrapper in its own plugin process
    (:class:`~server.aiges.process_engine.ProcessEngine`: ``call_timeout``, a
    ``memory_mb`` cap, as ``user`` when we are root, replaced when it hangs or dies); otherwise it is imported into this
    process. ``wrapperInit`` gets the ``[wrapper]`` table of an ``aiges.toml`` next to the
    wrapper or its project, as under the loader. Raises :class:`ConfigError` naming the
    wrapper that failed to load or init, or a service id served twice; engines already
    initialised are finalised first.
    """
    from server.aiges.process_engine import ProcessEngine
    from server.aiges.wrapper_host import WrapperEngine

    engines: dict[str, Engine] = {}
    try:
        for raw in paths:
            file, toml = _wrapper_location(Path(raw))
            engine: WrapperEngine | ProcessEngine = (
                ProcessEngine(file, call_timeout=call_timeout, memory_mb=memory_mb, user=user)
                if isolated
                else WrapperEngine(file)
            )
            if (ret := engine.init(_wrapper_config(toml))) != 0:
                raise ConfigError(
                    f"wrapper {file} failed to init (code {ret}): "
                    f"{engine.load_error or 'wrapperInit returned an error'}"
                )
            svc = str(engine.schema("")["meta"]["serviceId"])
            if svc in engines:
                engine.fini()
                raise ConfigError(
                    f"two wrappers serve the service id {svc!r}; the second is {file}"
                )
            engines[svc] = engine
            log.info(
                "ase service %s from %s (%s)",
                svc,
                file,
                "own process" if isolated else "in-process",
            )
    except BaseException:
        for loaded in engines.values():
            loaded.fini()
        raise
    return engines


def build_engines(
    *,
    wrappers: Iterable[str] = (),
    functions: Iterable[str] = (),
    root: str | None = None,
    config: Mapping[str, str] | None = None,
) -> dict[str, Engine]:
    """Load and init in-process engines for wrappers and registry function names, by service id.

    For a standalone ase app (tests, tools); ``gf serve`` runs registry functions through
    its executor instead. Raises :class:`InvalidRequest` naming the engine whose init failed.
    """
    from server.aiges.function_host import packages_resolver
    from server.aiges.wrapper_host import WrapperEngine

    engines: dict[str, Engine] = {}
    for path in wrappers:
        w = WrapperEngine(path)
        if (ret := w.init(dict(config or {}))) != 0:
            raise InvalidRequest(f"wrapper {path} failed to init ({ret}): {w.load_error}")
        engines[str(w.schema("")["meta"]["serviceId"])] = w
    names = list(functions)
    if names:
        resolver = packages_resolver(root or "packages")
        for name in names:
            f = FunctionEngine(name, resolver)
            if f.init({}) == INIT_FAILED:
                raise InvalidRequest(f"function {name} cannot be loaded from {root or 'packages'}")
            engines[f.service_id] = f
    return engines
