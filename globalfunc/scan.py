"""Scan a packages root: find function files and learn what each defines, without importing.

A packages root holds one folder per package (``Base/``), nested folders for nested
packages (``pkg/sub/``), and one function per ``.py`` file, the file named after the
function. Like the seed, the walk skips folders and files whose names start with ``.`` or
``_``, ``__init__.py`` and ``*.pkl``; other non-Python files and files directly in the root
are not functions and are passed over.

For each file the scanner records the seed's md5 and a sha256 content address, size, line
count and modification time, and, by parsing with :mod:`ast`, the function's signature
(defaults and annotations as source text), docstring and imported modules. A file that
cannot be registered (syntax error, no function of the file's name, not UTF-8, too big,
a folder that is not a valid package name, a symlink to a folder, a symlinked file that
points outside the root) becomes a :class:`ScanProblem` with file and line; scanning
never stops on one bad file.

Files are parsed as Python reads them: without a UTF-8 byte-order mark, and with
``\r\n`` and old-Mac ``\r`` line endings as line breaks, so signatures and line numbers
match what the interpreter sees and never hold a ``\r``. The stored code is the file's
text unchanged (its hash is the file's).

Rescans are incremental: a :class:`Scanner` remembers each file's size, ``mtime_ns`` and
inode and reuses its previous result while all three are unchanged. Parsing is also
content-addressed: a file whose sha256 was parsed before (a checkout that only touched
mtimes, a copy in another package) is hashed but not parsed again. Given a ``cache_file``,
both memories survive between processes (the CLI keeps one in ``.globalfunc/``).
"""

from __future__ import annotations

import ast
import dataclasses
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from globalfunc.errors import InvalidName, ScanError
from globalfunc.files import write_atomic
from globalfunc.naming import check_identifier
from globalfunc.record import FunctionInfo, Param, content_hashes
from globalfunc.syntax import Source, imports_of, signature_parts

log = logging.getLogger(__name__)
CACHE_VERSION = 2  # 2: FunctionInfo.fingerprint

DEFAULT_MAX_FILE_SIZE = 1 << 20  # 1 MiB
PROGRESS_THRESHOLD = 200  # files; fewer than this and a progress bar is noise


@dataclass(frozen=True, slots=True)
class ScanProblem:
    """A file that could not be registered, and why."""

    path: str  # relative to the packages root, "/"-separated
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: {self.message}"


@dataclass(slots=True)
class ScanResult:
    """Everything one scan found: functions by scan key (``Base.to_pickle.py``) and problems."""

    functions: dict[str, FunctionInfo] = field(default_factory=dict)
    problems: list[ScanProblem] = field(default_factory=list)
    parsed: int = 0  # files read and hashed (not reused by stat)
    reused: int = 0  # files reused by size, mtime_ns and inode
    content_hits: int = 0  # read and hashed, but not parsed: same content seen before

    def seed_dict(self) -> dict[str, dict[str, object]]:
        """The seed's ``scan_directory`` shape: ``{"Base.f.py": {"meta": {...}, "data": code}}``."""
        return {key: info.seed_dict() for key, info in self.functions.items()}


_Entry = tuple[int, int, int, "FunctionInfo | ScanProblem"]


class Scanner:
    """Scans one packages root, remembering results for unchanged files between scans."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        max_file_size: int = DEFAULT_MAX_FILE_SIZE,
        cache_file: str | os.PathLike[str] | None = None,
    ):
        self.root = Path(root)
        self.max_file_size = max_file_size
        self.cache_file = Path(cache_file) if cache_file is not None else None
        self._cache: dict[str, _Entry] = {}
        self._by_sha: dict[str, FunctionInfo] = {}
        self._loaded = False
        self._content_hits = 0
        self._packages: dict[tuple[str, ...], str | None] = {}

    def iter_files(self) -> Iterator[tuple[str, os.DirEntry[str], tuple[str, ...]]]:
        """Yield ``(relpath, entry, package_parts)`` for every candidate function file,
        symlinks included (:meth:`scan` turns the ones it will not follow into problems)."""
        stack: list[tuple[str, tuple[str, ...]]] = [(str(self.root), ())]
        while stack:
            folder, parts = stack.pop()
            try:
                entries = sorted(os.scandir(folder), key=lambda e: e.name)
            except OSError:
                continue
            for entry in entries:
                name = entry.name
                if name.startswith((".", "_")):
                    continue
                if entry.is_dir(follow_symlinks=False):
                    stack.append((entry.path, (*parts, name)))
                elif entry.is_symlink() and entry.is_dir():
                    yield "/".join((*parts, name)), entry, parts  # a problem, see scan()
                elif parts and name.endswith(".py") and entry.is_file():
                    yield "/".join((*parts, name)), entry, parts

    def scan(self, *, progress: bool = False, full: bool = False) -> ScanResult:
        """Scan the whole root; unchanged files are reused from the previous scan.

        ``full=True`` trusts no file's stat: every file is read and hashed again (parses
        are still reused for content seen before).
        """
        if not self.root.is_dir():
            raise ScanError(f"packages root {str(self.root)!r} is not a folder")
        self._load()
        hits_before = self._content_hits
        result = ScanResult()
        files = list(self.iter_files())
        bar = None
        if progress and len(files) >= PROGRESS_THRESHOLD:
            from tqdm import tqdm

            bar = tqdm(total=len(files), desc="scan", unit="file", leave=False)
        cache: dict[str, _Entry] = {}
        for rel, entry, parts in files:
            if entry.is_symlink():
                problem = self._symlink_problem(rel, entry)
                if problem is not None:
                    result.problems.append(problem)
                    if bar is not None:
                        bar.update()
                    continue
            st = entry.stat()
            old = self._cache.get(rel)
            if not full and old is not None and old[:3] == (st.st_size, st.st_mtime_ns, st.st_ino):
                outcome = old[3]
                result.reused += 1
            else:
                outcome = self._scan_one(rel, entry.path, parts, st)
                result.parsed += 1
            cache[rel] = (st.st_size, st.st_mtime_ns, st.st_ino, outcome)
            if isinstance(outcome, ScanProblem):
                result.problems.append(outcome)
            else:
                result.functions[outcome.scan_key] = outcome
            if bar is not None:
                bar.update()
        if bar is not None:
            bar.close()
        result.content_hits = self._content_hits - hits_before
        changed = result.parsed > 0 or len(cache) != len(self._cache)
        self._cache = cache
        if changed:
            self._save()
        return result

    # -- the persisted cache -------------------------------------------------------------
    def _load(self) -> None:
        if self._loaded or self.cache_file is None:
            return
        self._loaded = True
        try:
            data = orjson.loads(self.cache_file.read_bytes())
            if (
                data.get("version") != CACHE_VERSION
                or data.get("max_file_size") != self.max_file_size
            ):
                return
            for rel, size, mtime_ns, ino, raw in data["files"]:
                info = _info_from_dict(raw)
                self._cache[rel] = (size, mtime_ns, ino, info)
                self._by_sha[info.sha256] = info
        except FileNotFoundError:
            return
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring unreadable scan cache %s: %s", self.cache_file, exc)
            self._cache.clear()
            self._by_sha.clear()

    def _save(self) -> None:
        if self.cache_file is None:
            return
        files = [  # orjson writes the (slotted) dataclasses natively
            (rel, size, mtime_ns, ino, outcome)
            for rel, (size, mtime_ns, ino, outcome) in self._cache.items()
            if isinstance(outcome, FunctionInfo)
        ]
        body = {"version": CACHE_VERSION, "max_file_size": self.max_file_size, "files": files}
        created = False
        try:
            # A new cache is created 0600 first, as write_atomic keeps the mode of the file
            # it replaces: it lists every function's signature and docstring.
            self.cache_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            try:
                os.close(os.open(self.cache_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
                created = True
            except FileExistsError:
                pass
            write_atomic(self.cache_file, orjson.dumps(body).decode())
        except OSError as exc:
            if created:
                self.cache_file.unlink(missing_ok=True)
            log.warning("cannot write scan cache %s: %s", self.cache_file, exc)

    def _symlink_problem(self, rel: str, entry: os.DirEntry[str]) -> ScanProblem | None:
        """Why a symlink is not scanned: a link to a folder is never followed (as a
        package could then appear twice, or loop), a file link only within the root."""
        if entry.is_dir():
            return ScanProblem(
                rel, None, "is a symlink to a folder; packages are not followed through symlinks"
            )
        try:
            target = Path(entry.path).resolve(strict=True)
        except (OSError, RuntimeError):
            return ScanProblem(rel, None, "is a broken symlink")
        if not target.is_relative_to(self.root.resolve()):
            return ScanProblem(
                rel,
                None,
                f"is a symlink to {str(target)!r}, outside the packages root; "
                "copy the file into the root instead",
            )
        return None

    def scan_file(self, path: str | os.PathLike[str]) -> FunctionInfo:
        """Scan one file under the root; raise :class:`ScanError` if it cannot be registered."""
        full = Path(path)
        if not full.is_absolute():
            full = self.root / full
        try:  # resolved: a symlink that points outside the root is refused here
            rel_parts = full.resolve().relative_to(self.root.resolve()).parts
        except ValueError:
            raise ScanError(
                f"{str(full)!r} is not under the packages root {str(self.root)!r} "
                "(a symlink to a file outside it is not scanned)"
            ) from None
        if len(rel_parts) < 2 or not full.is_file():
            raise ScanError(f"{str(full)!r} is not a function file inside a package folder")
        outcome = self._scan_one("/".join(rel_parts), str(full), tuple(rel_parts[:-1]), full.stat())
        if isinstance(outcome, ScanProblem):
            raise ScanError(str(outcome), path=outcome.path, line=outcome.line)
        return outcome

    def _package_problem(self, parts: tuple[str, ...]) -> str | None:
        """Why a package folder path is not a valid package (checked once per folder)."""
        if parts not in self._packages:
            try:
                for part in parts:
                    check_identifier(part, "package folder")
                self._packages[parts] = None
            except InvalidName as exc:
                self._packages[parts] = exc.message
        return self._packages[parts]

    def _scan_one(
        self, rel: str, path: str, parts: tuple[str, ...], st: os.stat_result
    ) -> FunctionInfo | ScanProblem:
        stem = rel.rsplit("/", 1)[-1][:-3]
        bad_package = self._package_problem(parts)
        if bad_package is not None:
            return ScanProblem(rel, None, bad_package)
        if st.st_size > self.max_file_size:
            return ScanProblem(
                rel, None, f"file is {st.st_size} bytes, over the {self.max_file_size}-byte limit"
            )
        try:
            with open(path, "rb") as fh:
                data = fh.read()
        except OSError as exc:
            return ScanProblem(rel, None, f"cannot read file: {exc.strerror}")
        md5, sha256 = content_hashes(data)
        known = self._by_sha.get(sha256)
        if known is not None and known.name == stem:
            self._content_hits += 1
            package = ".".join(parts)
            if known.package == package and known.mtime_ns == st.st_mtime_ns:
                return known
            return dataclasses.replace(
                known,
                package=package,
                mtime_ns=st.st_mtime_ns,
                modified_time=time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(st.st_mtime)),
            )
        try:
            check_identifier(stem, "function file name")
        except InvalidName as exc:
            return ScanProblem(rel, None, exc.message)
        try:
            code = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = data[: exc.start].count(b"\n") + 1
            return ScanProblem(rel, line, f"file is not UTF-8 (byte 0x{data[exc.start]:02x})")
        # Parse what Python reads: without a byte-order mark, and with \r\n and a lone \r
        # as line breaks (as ast counts lines). The stored code stays the file's bytes, so
        # its hash holds and materializing writes the same file back.
        text, source = code, data
        if code.startswith("\ufeff"):
            text, source = code[1:], data[3:]
        if "\r" in text:
            text = text.replace("\r\n", "\n").replace("\r", "\n")
            source = text.encode("utf-8")
        try:
            tree = ast.parse(text, filename=rel)
        except SyntaxError as exc:
            return ScanProblem(rel, exc.lineno, f"syntax error: {exc.msg}")
        except ValueError as exc:  # e.g. null bytes
            return ScanProblem(rel, None, f"cannot parse: {exc}")
        func = None
        first_def = None
        for node in tree.body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                if node.name == stem:
                    func = node
                    break
                first_def = first_def or node
        if func is None:
            if first_def is not None:
                return ScanProblem(
                    rel,
                    first_def.lineno,
                    f"defines {first_def.name!r} but the file is named {stem!r}; "
                    "rename the file or the function so they match",
                )
            return ScanProblem(rel, None, f"defines no function; expected 'def {stem}(...)'")
        try:
            params, signature, returns = signature_parts(func, Source(source))
        except (IndexError, ValueError) as exc:  # a source we could not slice: say so
            return ScanProblem(rel, func.lineno, f"cannot read the signature: {exc!r}")
        docstring = ast.get_docstring(func)
        imports = imports_of(tree.body)
        info = FunctionInfo(
            package=".".join(parts),
            name=stem,
            code=code,
            md5=md5,
            sha256=sha256,
            size=st.st_size,
            line_count=text.count("\n") + (1 if text and not text.endswith("\n") else 0),
            modified_time=time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(st.st_mtime)),
            mtime_ns=st.st_mtime_ns,
            file_name=f"{stem}.py",
            signature=signature,
            params=params,
            returns=returns,
            docstring=docstring,
            imports=imports,
            lineno=func.lineno,
            is_async=isinstance(func, ast.AsyncFunctionDef),
            # The fingerprint (an AST walk costing about three parses) is computed when a
            # duplicate check first needs it (fingerprint_of), not on every scan.
        )
        self._by_sha[sha256] = info
        return info


def _info_from_dict(raw: dict[str, Any]) -> FunctionInfo:
    params = tuple(Param(**p) for p in raw["params"])
    return FunctionInfo(**{**raw, "params": params, "imports": tuple(raw["imports"])})
