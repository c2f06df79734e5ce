"""Each server's index of live functions by fingerprint: the duplicate check of a save.

Built by one listing of a registry space (off the event loop), kept current by this
server's own saves and deletes, rebuilt after :data:`DUPLICATE_INDEX_TTL` so that other
servers' saves show up by then. What it does not do: compute fingerprints
(:mod:`globalfunc.fingerprint`) or answer HTTP (:mod:`server.http.registry_api`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

from globalfunc.fingerprint import fingerprint_of
from globalfunc.record import FunctionRecord

__all__ = ["DUPLICATE_INDEX_TTL", "MAX_DUPLICATES", "index_of"]


DUPLICATE_INDEX_TTL = 10.0
"""Seconds a server trusts its fingerprint index of a tier1 before listing it again
(saves and deletes through this server update it at once)."""
MAX_DUPLICATES = 50
"""Most same-logic functions named per saved function."""


class _FingerprintIndex:
    """Live functions of each tier1 by fingerprint, for the duplicate check of a save.

    Built by one listing of the space (off the event loop), then kept current by this
    server's saves and deletes and rebuilt after :data:`DUPLICATE_INDEX_TTL` (others'
    saves show up by then). Decided under the lock, listed outside it."""

    def __init__(self, storage: Any) -> None:
        self.storage = storage
        self._lock = threading.Lock()
        # tier1 -> (expires, fingerprint -> {key: record}, key -> fingerprint)
        self._spaces: dict[
            str, tuple[float, dict[str, dict[str, FunctionRecord]], dict[str, str]]
        ] = {}

    def _space(self, tier1: str) -> tuple[dict[str, dict[str, FunctionRecord]], dict[str, str]]:
        with self._lock:
            space = self._spaces.get(tier1)
            if space is not None and space[0] > time.monotonic():
                return space[1], space[2]
        by_fp: dict[str, dict[str, FunctionRecord]] = {}
        fp_of: dict[str, str] = {}
        for record in self.storage.list(tier1):
            fp = fingerprint_of(record)
            by_fp.setdefault(fp, {})[record.key] = record
            fp_of[record.key] = fp
        with self._lock:
            self._spaces[tier1] = (time.monotonic() + DUPLICATE_INDEX_TTL, by_fp, fp_of)
        return by_fp, fp_of

    def lookup(
        self, tier1: str, wanted: dict[str, tuple[str, str]]
    ) -> dict[str, list[FunctionRecord]]:
        """For each ``fingerprint -> (package, name)``: the other live functions with it."""
        by_fp, _ = self._space(tier1)
        found: dict[str, list[FunctionRecord]] = {}
        with self._lock:
            for fp, (package, name) in wanted.items():
                others = [
                    r
                    for r in by_fp.get(fp, {}).values()
                    if not (r.package == package and r.name == name)
                ]
                if others:
                    others.sort(key=lambda r: r.key)
                    found[f"{package}.{name}"] = others[:MAX_DUPLICATES]
        return found

    def saved(self, records: Sequence[FunctionRecord], added: Sequence[bool]) -> None:
        with self._lock:
            for record, new in zip(records, added, strict=True):
                space = self._spaces.get(record.tier1)
                if not new or space is None:
                    continue
                _, by_fp, fp_of = space
                old = fp_of.pop(record.key, None)
                if old is not None:
                    by_fp.get(old, {}).pop(record.key, None)
                fp = fingerprint_of(record)
                by_fp.setdefault(fp, {})[record.key] = record
                fp_of[record.key] = fp

    def deleted(self, key: str) -> None:
        with self._lock:
            for _, by_fp, fp_of in self._spaces.values():
                old = fp_of.pop(key, None)
                if old is not None:
                    by_fp.get(old, {}).pop(key, None)


_INDEXES: dict[int, _FingerprintIndex] = {}
_INDEXES_LOCK = threading.Lock()


def index_of(storage: Any) -> _FingerprintIndex:
    """The fingerprint index of one storage object (one per server's storage)."""
    with _INDEXES_LOCK:
        index = _INDEXES.get(id(storage))
        if index is None or index.storage is not storage:
            index = _INDEXES[id(storage)] = _FingerprintIndex(storage)
        return index
