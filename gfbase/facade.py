"""GFBase: scan, save, version and write back the functions of one packages root.

Each of the seed's methods (``_save_a_file_rom``, ``_gen_a_file``, ...) is a thin alias
of a well-named public method, so notebooks written against the seed keep working::

    gfbase = GFBase("./GlobalFunc/", tier1="sp_GlobalFunc")   # embedded SQLite by default
    gfbase = GFBase("./GlobalFunc/", redis_agent_host="http://team:24021/",
                    redis_connection_hash=token, tier1="sp_GlobalFunc")  # through a gf serve
    gfbase._save_a_file_rom("Base.to_pickle.py")
    gfbase._gen_a_file(func_name="from_pickle", target_folder="/tmp/out", pack_name="Base")

One rule for branches everywhere: the live git branch (read again at every call, so a
``git checkout`` in between is seen), unless a branch is given. A save records the HEAD
commit and whether the file differed from it (``record.dirty``).

The seed's agent settings work as the design meant: ``redis_agent_host`` is the URL of a
``gf serve`` whose registry this GFBase saves into and reads from (the ``http://`` storage
backend, :mod:`globalfunc.storage.http`), ``redis_connection_hash`` its token; the
notebook holds no database settings.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType
from typing import Any

from globalfunc.errors import (
    ConfigError,
    FunctionNotFound,
    GlobalFuncError,
    InvalidName,
    ScanError,
    WorkspaceError,
)
from globalfunc.fingerprint import DuplicateCheckFailed, DuplicateFunction
from globalfunc.naming import DEFAULT_TIER1, CallName, parse_call_name, parse_scan_key
from globalfunc.record import FunctionInfo, FunctionRecord
from globalfunc.registry import DuplicateGroup, Registry, SaveResult
from globalfunc.scan import DEFAULT_MAX_FILE_SIZE, Scanner, ScanResult
from globalfunc.storage import Storage, open_storage
from globalfunc.workspace import CommitResult, Workspace

STORE_DIR = ".globalfunc"


def store_dir(root: str | os.PathLike[str]) -> Path:
    """``<root>/.globalfunc``, created with a ``.gitignore`` so git never commits it."""
    folder = Path(root).resolve() / STORE_DIR
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)  # the registry: owner only
    ignore = folder / ".gitignore"
    if not ignore.exists():
        ignore.write_text("*\n", encoding="utf-8")
    return folder


def default_storage_url(root: str | os.PathLike[str]) -> str:
    """``sqlite://<root>/.globalfunc/registry.db``: the embedded default store."""
    return f"sqlite://{store_dir(root) / 'registry.db'}"


def _agent_url(host: str) -> str:
    """The seed's ``redis_agent_host`` as a URL: ``host:port`` means ``http://host:port``."""
    host = host.strip()
    if "://" not in host:
        return f"http://{host}"
    if not host.startswith(("http://", "https://")):
        raise ConfigError(
            f"redis_agent_host {host.split('://', 1)[0]!r}://... is not a GlobalFunc server URL; "
            "expected http://<server>:<port>/ (for a database, pass storage_url=...)"
        )
    return host


def _call_name(name: str | CallName) -> CallName:
    """Accept a call name ``Base.f`` or the seed's scan key ``Base.f.py``."""
    if isinstance(name, CallName):
        return name
    return parse_scan_key(name) if name.endswith(".py") else parse_call_name(name)


class GFBase:
    """Develop functions in one packages root and keep every version in a registry."""

    def __init__(
        self,
        project_path: str | os.PathLike[str] | None = None,
        redis_agent_host: str | None = None,
        redis_connection_hash: str | None = None,
        tier1: str | None = None,
        *,
        storage_url: str | None = None,
        storage: Storage | None = None,
        max_file_size: int = DEFAULT_MAX_FILE_SIZE,
        storage_timeout: float = 2.0,
    ) -> None:
        """``redis_agent_host``: a GlobalFunc server's URL (``http://host:24021/``) to save
        into and read from, with ``redis_connection_hash`` as its token (the seed's agent);
        else ``storage_url`` or ``storage``; else the embedded SQLite file of the root.
        ``storage_timeout`` bounds each storage network call (seconds)."""
        if redis_agent_host:
            if storage_url or storage is not None:
                raise ConfigError(
                    "give redis_agent_host (a GlobalFunc server) or storage_url/storage, not both"
                )
            storage = open_storage(
                _agent_url(redis_agent_host),
                token=redis_connection_hash or None,
                timeout=storage_timeout,
            )
        elif redis_connection_hash:
            raise ConfigError(
                "redis_connection_hash is the token of redis_agent_host; pass "
                "redis_agent_host='http://<server>:<port>/' as well"
            )
        self.project_path = Path(project_path or ".").resolve()
        self.tier1 = tier1 or DEFAULT_TIER1
        self.scanner = Scanner(
            self.project_path,
            max_file_size=max_file_size,
            cache_file=store_dir(self.project_path) / "scan-cache.json",
        )
        self._workspace: Workspace | None = None
        if storage is None:
            storage = open_storage(
                storage_url or default_storage_url(self.project_path), timeout=storage_timeout
            )
        self._registry = Registry(storage, tier1=self.tier1, branch=self._branch_or_default())

    # -- plumbing ------------------------------------------------------------------------
    @property
    def registry(self) -> Registry:
        """The registry, on the live branch (its default for every call that names none)."""
        self._registry.branch = self._branch_or_default()
        return self._registry

    @property
    def workspace(self) -> Workspace:
        if self._workspace is None:
            self._workspace = Workspace(self.project_path)
        return self._workspace

    def _branch_or_default(self) -> str:
        try:
            return self.workspace.current_branch()
        except (WorkspaceError, InvalidName):
            # Not a git repo (yet), or a branch name no key can hold: saving says so;
            # reading and writing back work on master.
            return "master"

    def close(self) -> None:
        self._registry.close()

    # -- public methods ------------------------------------------------------------------
    def current_branch(self) -> str:
        """The git branch of the packages root (``detached-<sha>`` on a detached HEAD)."""
        return self.workspace.current_branch()

    def scan(self, *, progress: bool = False) -> ScanResult:
        """Scan the packages root (incremental across calls)."""
        return self.scanner.scan(progress=progress)

    def commit(self, message: str | None = None, *, push: bool = True) -> CommitResult:
        """Commit everything under the root with a timestamped message; push if a remote exists."""
        return self.workspace.commit_all(message, push=push)

    def generate_init_py(self, package: str) -> Path:
        return self.workspace.generate_init_py(package)

    def save(self, name: str | CallName, *, branch: str | None = None) -> SaveResult:
        """Scan one function file and save it under ``tier1.<package>_<branch>.<name>``
        (the live branch unless ``branch`` is given)."""
        call = _call_name(name)
        path = self.project_path / call.relpath
        if not path.is_file():
            raise FunctionNotFound(
                f"no file {call.relpath!r} under {str(self.project_path)!r} for {call}",
                name=str(call),
            )
        info = self.scanner.scan_file(path)
        dirty = path.resolve() in self.workspace.dirty_paths([path])
        saved = self._registry.save(
            info,
            branch=branch or self.current_branch(),
            commit=self.workspace.head_commit(),
            dirty=dirty,
        )
        return self._with_duplicates([saved], [info])[0]

    def _with_duplicates(
        self, saved: list[SaveResult], infos: list[FunctionInfo]
    ) -> list[SaveResult]:
        """The save results of newly added versions with the other live functions of the
        same logic (``SaveResult.duplicates``); a :class:`DuplicateFunction` warning names
        them."""
        added = [info for info, result in zip(infos, saved, strict=True) if result.added]
        try:
            found = self._registry.duplicates_of(added) if added else {}
        except GlobalFuncError as err:  # the versions landed: a failed check is a warning
            warnings.warn(
                DuplicateCheckFailed(
                    f"saved {len(added)} new version(s), but the check for functions with "
                    f"the same logic failed: {err.message} (gf dupes runs it again)"
                ),
                stacklevel=3,
            )
            return saved
        if not found:
            return saved
        out = []
        for info, result in zip(infos, saved, strict=True):
            others = found.get(str(info.call_name)) if result.added else None
            if others:
                keys = tuple(sorted(r.key for r in others))
                warnings.warn(
                    DuplicateFunction(
                        f"{info.call_name} has the same logic as {', '.join(keys)}; "
                        "reuse it instead (gf dupes lists every such group)"
                    ),
                    stacklevel=3,
                )
                result = dataclasses.replace(result, duplicates=keys)
            out.append(result)
        return out

    def save_all(
        self,
        names: Iterable[str] | None = None,
        *,
        progress: bool = False,
        branch: str | None = None,
        check_duplicates: bool = True,
    ) -> tuple[list[SaveResult], ScanResult]:
        """Scan the root and save every function (or the named ones) in one transaction.

        ``check_duplicates``: name, in each new version's result (and a warning), the
        other live functions with the same logic (one listing of the space)."""
        result = self.scan(progress=progress)
        if names is None:
            infos = list(result.functions.values())
        else:
            infos = []
            for name in names:
                key = _call_name(name).scan_key
                if key not in result.functions:
                    problem = next(
                        (p for p in result.problems if p.path == _call_name(name).relpath), None
                    )
                    if problem is not None:
                        raise ScanError(str(problem), path=problem.path, line=problem.line)
                    raise FunctionNotFound(
                        f"no function file for {name!r} under {str(self.project_path)!r}"
                    )
                infos.append(result.functions[key])
        dirty_files = self.workspace.dirty_paths()
        dirty = {
            str(info.call_name)
            for info in infos
            if (self.project_path / info.call_name.relpath).resolve() in dirty_files
        }
        saved = self._registry.save_many(
            infos,
            branch=branch or self.current_branch(),
            commit=self.workspace.head_commit(),
            dirty=dirty,
        )
        if check_duplicates:
            saved = self._with_duplicates(saved, infos)
        return saved, result

    def search(
        self,
        query: str,
        limit: int = 20,
        *,
        package: str | None = None,
        branch: str | None = None,
    ) -> list[FunctionRecord]:
        """Ranked search over names, descriptions, docstrings, signatures and code, on
        every branch unless ``branch`` is given (see :mod:`globalfunc.search`)."""
        return self._registry.search(query, limit, package=package, branch=branch)

    def describe(
        self, name: str | CallName, text: str | None = None, *, branch: str | None = None
    ) -> SaveResult:
        """Describe a function (default: its docstring's first paragraph); a new version."""
        return self._registry.describe(
            _call_name(name), text, branch=branch or self._branch_or_default()
        )

    def duplicates(
        self, *, package: str | None = None, branch: str | None = None
    ) -> list[DuplicateGroup]:
        """Groups of live functions with the same logic under other names, packages or
        branches."""
        return self._registry.duplicates(package=package, branch=branch)

    def gen(
        self,
        func_name: str,
        target_folder: str | os.PathLike[str],
        pack_name: str,
        branch_name: str | None = None,
        sha256: str | None = None,
        *,
        tier1: str | None = None,
    ) -> Path:
        """Write a stored version of ``pack_name.func_name`` into ``target_folder/pack_name/``
        (from the live branch unless ``branch_name`` is given)."""
        if not func_name or not pack_name or not target_folder:
            raise InvalidName("func_name, target_folder and pack_name must all be given")
        registry = self.registry  # on the live branch
        if tier1 is not None and tier1 != self.tier1:
            registry = Registry(registry.storage, tier1=tier1, branch=registry.branch)
        return registry.materialize(
            f"{pack_name}.{func_name}",
            Path(os.path.expanduser(str(target_folder))),
            branch=branch_name or registry.branch,
            sha256=sha256,
        )

    def list_functions(self, package: str) -> list[str]:
        return self.workspace.list_functions(package)

    def reload_package(self, package: str) -> ModuleType:
        return self.workspace.reload_package(package)

    # -- the seed's names ----------------------------------------------------------------
    def _get_current_branch(self) -> str:
        return self.current_branch()

    def _get_scan_files(self) -> dict[str, dict[str, Any]]:
        """The seed's scan dict: ``{"Base.f.py": {"meta": {hash, modified_time, ...}, "data": code}}``."""
        return self.scan().seed_dict()

    def _simple_commit_git(self, commit_message: str | None = None) -> CommitResult:
        return self.commit(commit_message)

    def _generate_init_py(self, packname: str) -> Path:
        return self.generate_init_py(packname)

    def _save_a_file_rom(self, some_k: str) -> SaveResult:
        return self.save(some_k)

    def _gen_a_file(
        self,
        func_name: str | None = None,
        target_folder: str | os.PathLike[str] | None = None,
        tier1: str | None = None,
        pack_name: str | None = None,
        branch_name: str | None = None,
    ) -> Path:
        """The seed's gen; ``branch_name`` defaults to the live branch (as every method)."""
        if not func_name or not pack_name or target_folder is None:
            raise InvalidName("func_name, target_folder and pack_name must all be given")
        return self.gen(func_name, target_folder, pack_name, branch_name, tier1=tier1)

    def _list_file_names_without_extension(self, pack_name: str) -> set[str]:
        return set(self.list_functions(pack_name))

    def _reload_package(self, pack_name: str) -> ModuleType:
        return self.reload_package(pack_name)
