"""The seed's ``RedisOrMongo`` shape over any ``Storage`` (normally the tiered store).

The user's notebooks call ``RedisOrMongo(space, ...)`` with a variable space
``tier1.tier2`` (``sp_GlobalFunc.Base_master``), then ``setx(name, value, persist=True)``
and ``getx(name)``, and check a space with ``verify_redis_var_name(space)``. This module
keeps those names as a thin facade: ``value`` is the seed's scan value
(``{"meta": {...}, "data": code}``), a ``FunctionInfo`` or a ``FunctionRecord``;
``getx`` answers in the seed's shape. The storage is passed in explicitly (the seed's
Redis agent host and Mongo server names are configuration, read at the edges).

It does not store arbitrary variables: values are function files, versioned like every
other save. ``persist=False`` (the seed's Redis-only write) is refused, because a
function saved only to the cache would not survive it.
"""

from __future__ import annotations

import ast
import hashlib
from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from globalfunc.errors import FunctionNotFound, InvalidName, InvalidRequest
from globalfunc.naming import check_identifier, check_tier1, decode_tier2
from globalfunc.record import FunctionInfo, FunctionRecord
from globalfunc.storage.base import Storage

__all__ = ["RedisOrMongo", "parse_space", "verify_redis_var_name"]


def parse_space(space: str) -> tuple[str, str, str]:
    """Split a variable space ``tier1.tier2`` into ``(tier1, package, branch)``."""
    if not isinstance(space, str) or space.count(".") != 1:
        raise InvalidName(
            f"space {space!r} must have two parts 'tier1.tier2', e.g. 'sp_GlobalFunc.Base_master'"
        )
    tier1, tier2 = space.split(".")
    check_tier1(tier1)
    package, branch = decode_tier2(tier2)
    return tier1, package, branch


def verify_redis_var_name(space: str, storage: Storage) -> bool:
    """Whether the space ``tier1.tier2`` holds at least one live function (the seed's check)."""
    tier1, package, branch = parse_space(space)
    return bool(storage.list(tier1, package=package, branch=branch))


def _describe(code: str, name: str) -> tuple[str, str | None]:
    """Signature text and docstring of ``def name`` in ``code`` (``"()"``, None if absent)."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return "()", None
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == name:
            signature = f"({ast.unparse(node.args)})"
            if node.returns is not None:
                signature += f" -> {ast.unparse(node.returns)}"
            return signature, ast.get_docstring(node)
    return "()", None


class RedisOrMongo:
    """One variable space (``tier1.tier2``) of a ``Storage``, with the seed's method names.

    ``is_new`` is accepted for the seed's call sites and ignored: spaces need no creation.
    """

    def __init__(self, space: str, storage: Storage, *, is_new: bool = False) -> None:
        self.space = space
        self.tier1, self.package, self.branch = parse_space(space)
        self.storage = storage

    def key(self, name: str) -> str:
        """The three-part storage key of ``name`` in this space."""
        check_identifier(name, "function name")
        return f"{self.space}.{name}"

    def _record(self, name: str, value: Any) -> FunctionRecord:
        if isinstance(value, FunctionInfo):
            base = {f.name: getattr(value, f.name) for f in fields(FunctionInfo)}
            if value.name != name:
                raise InvalidRequest(f"value describes {value.name!r}, not {name!r}")
            base["package"] = self.package
            return FunctionRecord(**base, tier1=self.tier1, branch=self.branch)
        if not isinstance(value, Mapping) or not isinstance(value.get("data"), str):
            raise InvalidRequest(
                f"value for {name!r} must be a scan value {{'meta': {{...}}, 'data': code}} "
                f"or a FunctionInfo, not {type(value).__name__}"
            )
        code: str = value["data"]
        meta: Mapping[str, Any] = value.get("meta") or {}
        data = code.encode("utf-8")
        signature, docstring = _describe(code, name)
        return FunctionRecord(
            package=self.package,
            name=name,
            code=code,
            md5=hashlib.md5(data).hexdigest(),
            sha256=hashlib.sha256(data).hexdigest(),
            size=len(data),
            line_count=code.count("\n") + (1 if code and not code.endswith("\n") else 0),
            modified_time=str(meta.get("modified_time", "")),
            file_name=str(meta.get("name") or f"{name}.py"),
            signature=signature,
            docstring=docstring,
            tier1=self.tier1,
            branch=self.branch,
        )

    def setx(self, name: str, value: Any, persist: bool = True) -> bool:
        """Save ``value`` as function ``name`` of this space; ``True`` if a new version."""
        self.key(name)
        if not persist:
            raise InvalidRequest(
                "persist=False (cache only) is not supported: every saved function is "
                "written to the durable store first; call setx(name, value) instead"
            )
        return self.storage.put([self._record(name, value)])[0]

    def getrecord(self, name: str, sha256: str | None = None) -> FunctionRecord:
        """The stored record of ``name`` (latest, or the version with ``sha256``)."""
        key = self.key(name)
        record = self.storage.get(key, sha256=sha256)
        if record is None:
            what = f"version {sha256[:12]} of " if sha256 else ""
            raise FunctionNotFound(
                f"no {what}function {name!r} in space {self.space!r}; "
                "list the space or save it first",
                key=key,
            )
        return record

    def getx(self, name: str, sha256: str | None = None) -> dict[str, Any]:
        """The seed's value of ``name``: ``{"meta": {hash, modified_time, line_count, name}, "data": code}``."""
        return self.getrecord(name, sha256).verify().seed_dict()

    def names(self) -> list[str]:
        """Names of the live functions in this space, sorted."""
        return sorted(
            r.name for r in self.storage.list(self.tier1, package=self.package, branch=self.branch)
        )

    def exists(self) -> bool:
        """The seed's ``verify_redis_var_name`` for this space."""
        return bool(self.names())
