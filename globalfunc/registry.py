"""The registry: save, find, version and write back functions by their call names.

A :class:`Registry` speaks call names (``Base.to_pickle``) and branches; it turns them into
three-part storage keys (``sp_GlobalFunc.Base_master.to_pickle``) for its
:class:`~globalfunc.storage.Storage`. It never touches git (that is the workspace's job)
and never imports user code (that is GFGo's).
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from globalfunc.errors import FunctionNotFound, IntegrityError, InvalidName, InvalidRequest
from globalfunc.files import confined, write_atomic, write_init_py
from globalfunc.fingerprint import fingerprint_of
from globalfunc.naming import (
    DEFAULT_TIER1,
    CallName,
    check_branch,
    check_tier1,
    key_text,
    make_storage_key,
    parse_call_name,
    parse_package,
)
from globalfunc.record import FunctionInfo, FunctionRecord
from globalfunc.search import check_query
from globalfunc.storage import Storage, open_storage

MIN_HASH_PREFIX = 6


@dataclass(frozen=True, slots=True)
class SaveResult:
    """What saving one function did: ``added`` is False when the content was unchanged.

    ``duplicates``: keys of other live functions with the same logic (the same
    :mod:`~globalfunc.fingerprint`), when the saver asked (``GFBase`` does)."""

    key: str
    sha256: str
    added: bool
    duplicates: tuple[str, ...] = ()


_new_result = object.__new__
_set_key = SaveResult.__dict__["key"].__set__
_set_sha256 = SaveResult.__dict__["sha256"].__set__
_set_added = SaveResult.__dict__["added"].__set__
_set_duplicates = SaveResult.__dict__["duplicates"].__set__


def _result(key: str, sha256: str, added: bool) -> SaveResult:
    """``SaveResult(key, sha256, added)`` without the frozen dataclass ``__init__`` (a third
    of its cost; one is made per saved function)."""
    result = _new_result(SaveResult)
    _set_key(result, key)
    _set_sha256(result, sha256)
    _set_added(result, added)
    _set_duplicates(result, ())
    return result


Describer = Callable[[FunctionRecord], str]
"""Writes a description for a record (e.g. with a language model); see :meth:`Registry.describe`."""

MAX_DESCRIPTION = 4000  # characters


def docstring_summary(record: FunctionRecord) -> str:
    """The default describer: the docstring's first paragraph, on one line."""
    text = (record.docstring or "").strip()
    return " ".join(text.split("\n\n", 1)[0].split()) if text else ""


@dataclass(frozen=True, slots=True)
class DuplicateGroup:
    """Live functions with the same logic (one normalized fingerprint), by key."""

    fingerprint: str
    records: tuple[FunctionRecord, ...]

    @property
    def keys(self) -> list[str]:
        return [r.key for r in self.records]


@runtime_checkable
class FingerprintLookup(Protocol):
    """A storage that finds live functions by fingerprint without listing the space."""

    def same_logic(
        self, tier1: str, items: Sequence[FunctionInfo | FunctionRecord]
    ) -> dict[str, builtins.list[FunctionRecord]]: ...


class Registry:
    """Functions stored under one tier1 space, addressed by call name and branch."""

    def __init__(
        self, storage: Storage, *, tier1: str = DEFAULT_TIER1, branch: str = "master"
    ) -> None:
        self.storage = storage
        self.tier1 = check_tier1(tier1)
        self.branch = check_branch(branch)

    @classmethod
    def open(
        cls, url: str, *, tier1: str = DEFAULT_TIER1, branch: str = "master", timeout: float = 2.0
    ) -> Registry:
        """A registry over the storage at ``url`` (see :func:`~globalfunc.storage.open_storage`)."""
        return cls(open_storage(url, timeout=timeout), tier1=tier1, branch=branch)

    def close(self) -> None:
        self.storage.close()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- keys ----------------------------------------------------------------------------
    def key(self, name: str | CallName, branch: str | None = None) -> str:
        """The storage key of a call name on a branch (default: the registry's branch)."""
        return str(make_storage_key(name, branch or self.branch, self.tier1))

    # -- writing -------------------------------------------------------------------------
    def save(
        self,
        item: FunctionInfo | FunctionRecord,
        *,
        branch: str | None = None,
        commit: str | None = None,
        dirty: bool = False,
    ) -> SaveResult:
        """Save one function; a no-op (``added=False``) when its content is unchanged.

        ``dirty``: the file had changes not in ``commit`` (recorded on the version)."""
        dirty_names = {f"{item.package}.{item.name}"} if dirty else ()
        return self.save_many([item], branch=branch, commit=commit, dirty=dirty_names)[0]

    def save_many(
        self,
        items: Iterable[FunctionInfo | FunctionRecord],
        *,
        branch: str | None = None,
        commit: str | None = None,
        dirty: Collection[str] = (),
    ) -> list[SaveResult]:
        """Save many functions in one storage transaction (all or none where the store can).

        ``dirty``: call names (``Base.f``) whose files had changes not in ``commit``."""
        tier1, branch = self.tier1, branch or self.branch
        items = builtins.list(items)
        put_infos = getattr(self.storage, "put_infos", None)
        if put_infos is not None and not any(isinstance(i, FunctionRecord) for i in items):
            # Scanned functions straight to a store that takes them without their records.
            keys = [key_text(tier1, info.package, branch, info.name) for info in items]
            flags = [f"{i.package}.{i.name}" in dirty for i in items] if dirty else None
            added = put_infos(items, keys, tier1=tier1, branch=branch, commit=commit, dirty=flags)
            return [
                _result(key, info.sha256, a)
                for key, info, a in zip(keys, items, added, strict=True)
            ]
        records = [
            item
            if isinstance(item, FunctionRecord)
            else FunctionRecord.from_info(
                item,
                tier1=tier1,
                branch=branch,
                commit=commit,
                dirty=f"{item.package}.{item.name}" in dirty,
            )
            for item in items
        ]
        added = self.storage.put(records)
        return [_result(r.key, r.sha256, a) for r, a in zip(records, added, strict=True)]

    def delete(self, name: str, *, branch: str | None = None) -> bool:
        """Tombstone a function (history kept); False if it was not live."""
        return self.storage.delete(self.key(name, branch))

    # -- reading -------------------------------------------------------------------------
    def get(
        self, name: str | CallName, *, branch: str | None = None, sha256: str | None = None
    ) -> FunctionRecord:
        """The latest live version, or the version whose sha256 (or a prefix of it) is given."""
        key = self.key(name, branch)
        record: FunctionRecord | None
        if sha256 is None:
            record = self.storage.get(key)
        elif len(sha256) == 64:
            record = self.storage.get(key, sha256=sha256.lower())
        else:
            record = self._by_prefix(key, sha256)
        if record is None:
            where = f" with hash {sha256}" if sha256 else ""
            raise FunctionNotFound(
                f"no function {name!s}{where} on branch {branch or self.branch!r} in "
                f"{self.tier1}; save it first (gf save) or check 'gf ls'",
                name=str(name),
                branch=branch or self.branch,
            )
        return record

    def _by_prefix(self, key: str, prefix: str) -> FunctionRecord | None:
        prefix = prefix.lower()
        if len(prefix) < MIN_HASH_PREFIX or any(c not in "0123456789abcdef" for c in prefix):
            raise InvalidName(
                f"hash {prefix!r} must be at least {MIN_HASH_PREFIX} hex digits of a sha256"
            )
        matches = {r.sha256: r for r in self.storage.history(key) if not r.deleted}
        hits = [r for sha, r in matches.items() if sha.startswith(prefix)]
        if len(hits) > 1:
            raise InvalidName(
                f"hash prefix {prefix!r} matches {len(hits)} versions; give more digits"
            )
        return hits[0] if hits else None

    def history(self, name: str | CallName, *, branch: str | None = None) -> list[FunctionRecord]:
        """Every version, newest first, tombstones included."""
        return self.storage.history(self.key(name, branch))

    def list(
        self, package: str | None = None, *, branch: str | None = None, all_branches: bool = False
    ) -> builtins.list[FunctionRecord]:
        """Latest live versions, optionally of one package, on one branch (or all)."""
        if package is not None:
            parse_package(package)
        return self.storage.list(
            self.tier1, package=package, branch=None if all_branches else branch or self.branch
        )

    def packages(self, *, branch: str | None = None) -> builtins.list[str]:
        """Names of packages with at least one live function on the branch."""
        return sorted({r.package for r in self.list(branch=branch)})

    def search(
        self,
        query: str,
        limit: int = 20,
        *,
        package: str | None = None,
        branch: str | None = None,
    ) -> builtins.list[FunctionRecord]:
        """Live functions for ``query``, best first (:mod:`globalfunc.search`), across
        branches unless ``branch`` is given, of one package if ``package`` is."""
        check_query(query)
        if limit < 1:
            raise InvalidName(f"search limit must be at least 1, got {limit}")
        if package is not None:
            parse_package(package)
        if branch is not None:
            check_branch(branch)
        return self.storage.search(self.tier1, query, limit, package=package, branch=branch)

    # -- descriptions --------------------------------------------------------------------
    def describe(
        self,
        name: str | CallName,
        text: str | None = None,
        *,
        branch: str | None = None,
        describer: Describer | None = None,
    ) -> SaveResult:
        """Give the latest version of a function a description: ``text``, else what
        ``describer`` writes (default: the docstring's first paragraph). The description
        is a new version with the same code (history kept); later saves keep it until it
        is changed. ``""`` removes it. Unchanged text is a no-op (``added=False``)."""
        record = self.get(name, branch=branch)
        if text is None:
            text = (describer or docstring_summary)(record)
        if not isinstance(text, str) or len(text) > MAX_DESCRIPTION:
            raise InvalidRequest(
                f"description of {name} must be text of at most {MAX_DESCRIPTION} characters "
                f"(got {len(text) if isinstance(text, str) else type(text).__name__}); shorten it"
            )
        text = text.strip()
        extra = {k: v for k, v in record.extra.items() if k not in ("seq", "source")}
        extra["description"] = text
        described = record.with_(extra=extra, saved_at=0.0)
        added = self.storage.put([described])[0]
        return _result(described.key, described.sha256, added)

    # -- duplicates ----------------------------------------------------------------------
    def duplicates(
        self, *, package: str | None = None, branch: str | None = None
    ) -> builtins.list[DuplicateGroup]:
        """Groups of live functions (any branch) with the same logic under other names,
        packages or branches. Copies of one function with the same code on several
        branches alone are not a group. ``package``/``branch``: only groups that hold a
        function of that package / on that branch."""
        groups: dict[str, builtins.list[FunctionRecord]] = {}
        for record in self.storage.list(self.tier1):
            groups.setdefault(fingerprint_of(record), []).append(record)
        out = []
        for fp, members in groups.items():
            if len(members) < 2:
                continue
            if (
                len({(r.package, r.name) for r in members}) == 1
                and len({r.sha256 for r in members}) == 1
            ):
                continue  # the same file on several branches
            if package is not None and all(r.package != package for r in members):
                continue
            if branch is not None and all(r.branch != branch for r in members):
                continue
            out.append(DuplicateGroup(fp, tuple(sorted(members, key=lambda r: r.key))))
        out.sort(key=lambda g: g.keys[0])
        return out

    def duplicates_of(
        self, items: Sequence[FunctionInfo | FunctionRecord]
    ) -> dict[str, builtins.list[FunctionRecord]]:
        """For each call name (``Base.f``) of ``items``: the other live functions (any
        branch, any name) with its logic, other than itself on any branch. A storage
        that can look fingerprints up (:class:`FingerprintLookup`: the ``http://``
        backend asks its server) is asked; any other is listed once, whatever the number
        of items."""
        if not items:
            return {}
        if isinstance(self.storage, FingerprintLookup):
            return self.storage.same_logic(self.tier1, items)
        wanted = {fingerprint_of(i): i for i in items}
        found: dict[str, builtins.list[FunctionRecord]] = {}
        for record in self.storage.list(self.tier1):
            item = wanted.get(fingerprint_of(record))
            if item is None:
                continue
            if record.package == item.package and record.name == item.name:
                continue  # itself, on this or another branch
            found.setdefault(f"{item.package}.{item.name}", []).append(record)
        return found

    # -- writing back out ----------------------------------------------------------------
    def materialize(
        self,
        name: str | CallName,
        target: str | Path,
        *,
        branch: str | None = None,
        sha256: str | None = None,
        record: FunctionRecord | None = None,
    ) -> Path:
        """Write a stored version to ``target/<package>/<name>.py`` and refresh ``__init__.py``.

        The record's hash is checked before anything is written (a corrupted record raises
        :class:`IntegrityError` and writes nothing) and the written file is checked again.
        Paths that would land outside ``target`` raise :class:`~globalfunc.errors.PathEscape`.
        """
        call = parse_call_name(name) if isinstance(name, str) else name
        record = record or self.get(call, branch=branch, sha256=sha256)
        record.verify()
        base = Path(target)
        base.mkdir(parents=True, exist_ok=True)
        parts = call.package.split(".")
        path = confined(base, *parts, f"{call.func}.py")
        for depth in range(1, len(parts)):  # nested packages need importable parents
            parent = confined(base, *parts[:depth])
            parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, record.code)
        if path.read_bytes() != record.code.encode("utf-8"):
            path.unlink(missing_ok=True)
            raise IntegrityError(f"written file {str(path)!r} does not match {record.key}")
        for depth in range(len(parts), 0, -1):
            write_init_py(confined(base, *parts[:depth]))
        return path
