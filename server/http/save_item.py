"""One posted registry save item, checked and turned into the record the server computes.

A save never trusts the client's record (:mod:`server.http.registry_api`, the endpoint):
an item carries only what the server cannot compute (its key parts, the code, the claimed
sha256, the commit, the dirty flag, the file's modification time and a person's
description). :func:`record_of_item` checks every name, the sizes and that the code hashes to
the claimed sha256, then scans the code itself in its own folder (the same hashes,
signature, docstring and problems as ``gf save``). The field patterns are the ones
``/openapi.json`` declares (:mod:`server.http.registry_openapi`).

Not here: the HTTP handler, storing, or the catalog.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from globalfunc.errors import InvalidRequest, ScanError
from globalfunc.naming import check_branch, check_tier1, key_text
from globalfunc.record import FunctionRecord
from globalfunc.scan import Scanner

__all__ = [
    "COMMIT_PATTERN",
    "MAX_DESCRIPTION",
    "MAX_MTIME_NS",
    "MODIFIED_PATTERN",
    "SHA256",
    "SHA256_PATTERN",
    "record_of_item",
    "text_field",
]

_END = r"(?![\s\S])"  # the very end (``$`` would accept a trailing newline)
SHA256_PATTERN = rf"^[0-9a-f]{{64}}{_END}"
COMMIT_PATTERN = rf"^[0-9A-Za-z]{{1,64}}{_END}"
MODIFIED_PATTERN = rf"^[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}} [0-9]{{2}}:[0-9]{{2}}:[0-9]{{2}}{_END}"
SHA256 = re.compile(SHA256_PATTERN)
_COMMIT = re.compile(COMMIT_PATTERN)
_MODIFIED = re.compile(MODIFIED_PATTERN)
_ITEM_FIELDS = frozenset(
    {"tier1", "package", "branch", "name", "code", "sha256", "commit", "dirty"}
    | {"modified_time", "mtime_ns", "description"}
)
MAX_MTIME_NS = 1 << 63
MAX_DESCRIPTION = 10_000


def record_of_item(
    index: int,
    item: Any,
    tmp: Path,
    *,
    max_file_size: int,
    expose: Callable[[str], None],
) -> FunctionRecord:
    """The record the server computes for posted item ``index``, scanned under ``tmp``;
    ``expose(package)`` raises for a package this server does not expose."""
    where = f"record {index}"
    if not isinstance(item, dict):
        raise InvalidRequest(f"{where} is not an object; expected {{'package', 'name', ...}}")
    unknown = sorted(set(item) - _ITEM_FIELDS)
    if unknown:
        raise InvalidRequest(
            f"{where} has unknown fields {unknown[:5]!r}; allowed: {sorted(_ITEM_FIELDS)}"
        )
    tier1 = text_field(item, "tier1", where)
    package, name = text_field(item, "package", where), text_field(item, "name", where)
    branch, code = text_field(item, "branch", where), text_field(item, "code", where)
    key = key_text(check_tier1(tier1), package, check_branch(branch), name)
    expose(package)
    claimed = text_field(item, "sha256", where)
    if not SHA256.match(claimed):
        raise InvalidRequest(f"{where} ({key}): sha256 {claimed[:80]!r} is not 64 hex digits")
    try:
        data = code.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidRequest(f"{where} ({key}): code is not valid Unicode text") from None
    if len(data) > max_file_size:
        raise ScanError(
            f"{where} ({key}): code is {len(data)} bytes, over the {max_file_size}-byte "
            "limit of this server",
            key=key,
        )
    actual = hashlib.sha256(data).hexdigest()
    if actual != claimed:
        raise InvalidRequest(
            f"{where} ({key}): the code hashes to {actual[:12]}, not the claimed "
            f"{claimed[:12]}; the record was altered on the way, save it again",
            key=key,
        )
    commit = item.get("commit")
    if commit is not None and (not isinstance(commit, str) or not _COMMIT.match(commit)):
        raise InvalidRequest(f"{where} ({key}): commit {commit!r:.80} is not a commit id")
    dirty = item.get("dirty", False)
    if not isinstance(dirty, bool):
        raise InvalidRequest(f"{where} ({key}): dirty must be true or false")
    modified = item.get("modified_time")
    if modified is not None and (not isinstance(modified, str) or not _MODIFIED.match(modified)):
        raise InvalidRequest(
            f"{where} ({key}): modified_time {modified!r:.80} is not 'YYYY-MM-DD HH:MM:SS'"
        )
    mtime_ns = item.get("mtime_ns", 0)
    if type(mtime_ns) is not int or not 0 <= mtime_ns < MAX_MTIME_NS:
        raise InvalidRequest(f"{where} ({key}): mtime_ns must be an integer >= 0")
    # Scan the code as gf save scans a file: its own folder, so no cache is shared.
    root = tmp / str(index)
    path = root.joinpath(*package.split("."), f"{name}.py")
    path.parent.mkdir(parents=True)
    path.write_bytes(data)
    if mtime_ns:
        os.utime(path, ns=(mtime_ns, mtime_ns))
    try:
        info = Scanner(root, max_file_size=max_file_size).scan_file(path)
    except ScanError as err:
        raise ScanError(f"{where} ({key}): {err.message}", key=key) from None
    record = FunctionRecord.from_info(info, tier1=tier1, branch=branch, commit=commit, dirty=dirty)
    description = item.get("description")
    if description is not None:
        if not isinstance(description, str) or len(description) > MAX_DESCRIPTION:
            raise InvalidRequest(
                f"{where} ({key}): description must be text of at most {MAX_DESCRIPTION} characters"
            )
        record = record.with_(extra={"description": description})
    if modified is not None:
        record = record.with_(modified_time=modified)
    return record.verify()


def text_field(item: dict[str, Any], field: str, where: str) -> str:
    """``item[field]`` when it is a string; :class:`InvalidRequest` naming ``where`` else."""
    value = item.get(field)
    if not isinstance(value, str):
        raise InvalidRequest(f"{where}: {field} must be a string, got {type(value).__name__}")
    return value
