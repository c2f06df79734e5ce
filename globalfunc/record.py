"""The data that describes one function file and one stored version of it.

``FunctionInfo`` is what scanning a file yields (code, hashes, file facts, signature,
docstring, imports). ``FunctionRecord`` is one stored version: the info plus where it
lives (tier1, branch), when it was saved, from which git commit, and whether it is a
tombstone, and the description a person gave it (``extra["description"]``,
kept from version to version until changed). A record also says whether its file differed from that commit when it was
saved (``dirty``: uncommitted changes, or a file git does not track yet). Both turn into plain JSON-ready dicts and back, so every storage backend
stores the same shape. This module does no I/O.
"""

from __future__ import annotations

import hashlib
from dataclasses import MISSING, dataclass, field, fields, replace
from typing import Any

from globalfunc.errors import IntegrityError, StorageError
from globalfunc.naming import DEFAULT_TIER1, CallName, StorageKey, key_text, make_storage_key


@dataclass(frozen=True, slots=True)
class Param:
    """One parameter of a function signature, with defaults and annotations as source text."""

    name: str
    kind: str  # "positional_only" | "positional_or_keyword" | "var_positional" | "keyword_only" | "var_keyword"
    default: str | None = None
    annotation: str | None = None

    @property
    def required(self) -> bool:
        return self.default is None and self.kind in (
            "positional_only",
            "positional_or_keyword",
            "keyword_only",
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class FunctionInfo:
    """What a scan learns about one function file, without importing it."""

    package: str
    name: str
    code: str
    md5: str
    sha256: str
    size: int
    line_count: int
    modified_time: str  # the seed's "%Y-%m-%d %H:%M:%S", local time
    mtime_ns: int = 0
    file_name: str = ""
    signature: str = "()"
    params: tuple[Param, ...] = ()
    returns: str | None = None
    docstring: str | None = None
    imports: tuple[str, ...] = ()
    lineno: int = 1
    is_async: bool = False
    #: normalized AST fingerprint (:mod:`globalfunc.fingerprint`); "" when not computed
    fingerprint: str = ""

    @property
    def call_name(self) -> CallName:
        return CallName(self.package, self.name)

    @property
    def scan_key(self) -> str:
        return f"{self.package}.{self.name}.py"

    def seed_dict(self) -> dict[str, Any]:
        """The seed's scan value: ``{"meta": {hash, modified_time, line_count, name}, "data": code}``."""
        return {
            "meta": {
                "hash": self.md5,
                "modified_time": self.modified_time,
                "line_count": self.line_count,
                "name": self.file_name or f"{self.name}.py",
            },
            "data": self.code,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class FunctionRecord(FunctionInfo):
    """One stored version of a function under ``tier1.<package>_<branch>.name``."""

    tier1: str = DEFAULT_TIER1
    branch: str = "master"
    commit: str | None = None
    saved_at: float = 0.0
    deleted: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    #: saved from a file with changes not in ``commit`` (modified, staged or untracked)
    dirty: bool = False

    @classmethod
    def from_info(
        cls,
        info: FunctionInfo,
        *,
        tier1: str = DEFAULT_TIER1,
        branch: str = "master",
        commit: str | None = None,
        dirty: bool = False,
    ) -> FunctionRecord:
        if cls is FunctionRecord:  # the common case, without the dataclass constructor
            record = _record_from_info(info, tier1, branch, commit, dirty)
        else:
            values = {name: getattr(info, name) for name in _INFO_FIELDS}
            record = cls(**values, tier1=tier1, branch=branch, commit=commit, dirty=dirty)
        record.key  # validates the names  # noqa: B018
        return record

    @property
    def description(self) -> str:
        """The description a person (or a describer hook) gave this version, else ``""``."""
        value = self.extra.get("description") if self.extra else None
        return value if isinstance(value, str) else ""

    @property
    def storage_key(self) -> StorageKey:
        return make_storage_key(CallName(self.package, self.name), self.branch, self.tier1)

    @property
    def key(self) -> str:
        """The three-part storage key as text (validated, cached per distinct key)."""
        return key_text(self.tier1, self.package, self.branch, self.name)

    def with_(self, **changes: Any) -> FunctionRecord:
        return replace(self, **changes)

    def verify(self) -> FunctionRecord:
        """Check the code against its sha256; raise :class:`IntegrityError` on mismatch."""
        actual = hashlib.sha256(self.code.encode("utf-8")).hexdigest()
        if actual != self.sha256:
            raise IntegrityError(
                f"stored code of {self.key} does not match its hash "
                f"(recorded {self.sha256[:12]}, actual {actual[:12]}); the record is corrupted",
                key=self.key,
                expected=self.sha256,
                actual=actual,
            )
        return self

    def to_dict(self) -> dict[str, Any]:
        """A plain JSON-ready dict (``from_dict`` inverts it)."""
        data = {name: getattr(self, name) for name in _RECORD_FIELDS}
        data["params"] = [
            {"name": p.name, "kind": p.kind, "default": p.default, "annotation": p.annotation}
            for p in self.params
        ]
        data["imports"] = list(self.imports)
        data["extra"] = dict(self.extra)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FunctionRecord:
        try:
            values = dict(data)
            values["params"] = tuple(
                p if isinstance(p, Param) else Param(**p) for p in values.get("params", ())
            )
            values["imports"] = tuple(values.get("imports", ()))
            return cls(**{k: v for k, v in values.items() if k in _RECORD_FIELD_SET})
        except (TypeError, KeyError) as exc:
            raise StorageError(f"stored record is malformed: {exc}") from exc


_INFO_FIELDS = tuple(f.name for f in fields(FunctionInfo))
_RECORD_FIELDS = tuple(f.name for f in fields(FunctionRecord))
_RECORD_FIELD_SET = frozenset(_RECORD_FIELDS)


def _slot_setters(cls: type) -> dict[str, Any]:
    """Each slot of ``cls`` (and its bases) by name: its descriptor's ``__set__``."""
    setters: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        for name in getattr(klass, "__slots__", ()):
            setters[name] = klass.__dict__[name].__set__
    return setters


def _compile_from_info() -> Any:
    """``FunctionRecord.from_info`` without the dataclass ``__init__``, for batch saves.

    A frozen dataclass's ``__init__`` sets each of the 23 fields through
    ``object.__setattr__``: about 7.5 us a record here. Setting the slots through their
    descriptors, in a function generated from the field list, takes about 2 us. The
    result is the same object: every field set, the same defaults (checked by the tests).
    """
    setters = _slot_setters(FunctionRecord)
    own = {"tier1": "tier1", "branch": "branch", "commit": "commit", "dirty": "dirty"}
    lines = [
        "def from_info(info, tier1, branch, commit, dirty):",
        "    record = new(FunctionRecord)",
    ]
    scope: dict[str, Any] = {"new": object.__new__, "FunctionRecord": FunctionRecord}
    for i, f in enumerate(fields(FunctionRecord)):
        scope[f"set{i}"] = setters[f.name]
        if f.name in _INFO_FIELDS:
            value = f"info.{f.name}"
        elif f.name in own:
            value = own[f.name]
        elif f.default_factory is not MISSING:
            scope[f"make{i}"] = f.default_factory
            value = f"make{i}()"
        else:
            scope[f"default{i}"] = f.default
            value = f"default{i}"
        lines.append(f"    set{i}(record, {value})")
    lines.append("    return record")
    assert set(setters) == _RECORD_FIELD_SET, "every slot is a field"
    exec("\n".join(lines), scope)  # the source is built above from the field names
    return scope["from_info"]


_record_from_info = _compile_from_info()


def content_hashes(data: bytes) -> tuple[str, str]:
    """``(md5, sha256)`` hex digests of a file's bytes: the seed's hash and the content address."""
    return hashlib.md5(data).hexdigest(), hashlib.sha256(data).hexdigest()
