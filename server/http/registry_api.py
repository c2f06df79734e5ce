"""The registry over HTTP: save, read, list, search and delete function versions.

The endpoints the ``http://`` storage backend (:mod:`globalfunc.storage.http`) speaks, so
that a notebook on any machine saves and fetches through ``gf serve`` without database
settings (the design's "agent host")::

    POST   /registry/save      {"records": [...]} -> {"results": [{"key", "sha256", "added"}]}
    GET    /registry/record    ?tier1&package&branch&name[&sha256] -> {"record": {...}}  (404: none)
    DELETE /registry/record    ?tier1&package&branch&name -> {"deleted": bool}  (a tombstone)
    GET    /registry/history   ?tier1&package&branch&name -> {"records": [...]}, newest first
    GET    /registry/list      ?tier1[&package][&branch] -> {"records": [...]}
    GET    /registry/search    ?tier1&q[&limit][&package][&branch] -> {"records": [...]}, best first
    POST   /registry/duplicates {"tier1", "items": [{"package", "name", "fingerprint"}]}
                               -> {"duplicates": {"package.name": [records]}} (same logic)

``tier1`` and ``branch`` default to the server's. Reads follow the server's token like every
endpoint. Writes (save, delete) need a token: the server's write token when it has one
(``GF_WRITE_TOKEN``; then ``GF_TOKEN`` may call and read, not write: 403), else its token
(``GF_TOKEN``); a server with neither accepts no writes (403). A wrong token is 401.

A save never trusts the client's record: each posted item is checked and rescanned by
:func:`server.http.save_item.record_of_item` (the same hashes, signature, docstring and
problems as ``gf save``), and the records it computed are stored, all items of one request
in one storage transaction. Saves are content-addressed (the storage contract), so sending
the same version again is a no-op and a client may retry after a timeout. A saved function of this
server's tier1 and branch is forgotten by its catalog at once, so the next call runs it;
other servers over the same storage see it within their catalog TTL.
``GF_ALLOW_PACKAGES`` applies here too: other packages are 403, and left out of lists.
Scanning and storing a save, and ranking a search, run in a thread: the event loop (and
``/healthz``) keeps answering. ``/registry/duplicates`` is a read: it answers a save's
same-logic check from a per-server fingerprint index (one listing, then kept current by
this server's saves and deletes, rebuilt after ``DUPLICATE_INDEX_TTL``), so a client never
lists the space.

What it does not do: run functions (the call endpoints do), keep anything itself (the
server's storage does), or accept tombstones or ``saved_at`` from a client.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import keyword
import logging
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from globalfunc import jsoncodec
from globalfunc.errors import (
    Forbidden,
    FunctionNotFound,
    InvalidName,
    InvalidRequest,
    Unauthorized,
)
from globalfunc.naming import (
    MAX_BRANCH,
    MAX_PART,
    check_branch,
    check_identifier,
    check_tier1,
    key_text,
    parse_package,
)
from globalfunc.record import FunctionRecord
from globalfunc.scan import DEFAULT_MAX_FILE_SIZE
from globalfunc.search import MAX_QUERY_CHARS, check_query
from globalfunc.storage.base import query_terms
from server.http.duplicate_index import index_of
from server.http.handler import BaseHandler
from server.http.save_item import SHA256, record_of_item, text_field
from server.http.state import AppState

__all__ = ["MAX_BATCH", "check_write", "registry_routes"]

log = logging.getLogger(__name__)

MAX_BATCH = 1000
"""Most records one save request may carry (the client splits bigger batches)."""
MAX_SEARCH = 1000
MAX_QUERY = MAX_QUERY_CHARS

_END = r"(?![\s\S])"
_KEYWORDS = "|".join(sorted({*keyword.kwlist, *keyword.softkwlist} - {"_"}))
TIER1_PATTERN = rf"^[A-Za-z][A-Za-z0-9_-]{{0,{MAX_PART - 1}}}{_END}"
NAME_PATTERN = rf"^(?!(?:{_KEYWORDS}){_END})[A-Za-z][A-Za-z0-9_]{{0,{MAX_PART - 1}}}{_END}"
BRANCH_PATTERN = (
    r"^(?![\s\S]*(?:\.\.|@\{|//|/\.|\.lock/))"  # git: no "..", "@{", "//", "/.", ".lock/"
    r"(?![-/.])"  # nor a leading "-", "/" or "."
    rf"(?!@{_END})"  # nor "@" alone
    rf"(?![\s\S]*(?:[/.]|\.lock){_END})"  # nor a trailing "/", "." or ".lock"
    rf"[^\x00-\x20\x7f~^:?*\[\\]{{1,{MAX_BRANCH}}}{_END}"
)
_INTEGER = re.compile(r"[0-9]{1,6}")


def check_write(state: AppState, authorization: str | None) -> None:
    """Raise unless the header carries the token that may write (see the module doc)."""
    needed = state.write_token or state.token
    if needed is None:
        raise Forbidden(
            "this server accepts no saves: it has no token; start it with GF_WRITE_TOKEN "
            "(or GF_TOKEN) set, and send 'Authorization: Bearer <that token>'"
        )
    given = (authorization or "").encode("utf-8", "replace")
    if hmac.compare_digest(given, needed):
        return
    read_only = state.write_token is not None and state.token is not None
    if read_only and hmac.compare_digest(given, state.token or b""):
        raise Forbidden(
            "this token may call and read functions, not save or delete them; writes "
            "need the server's GF_WRITE_TOKEN"
        )
    raise Unauthorized(
        "missing or wrong bearer token for a write; send 'Authorization: Bearer <token>' "
        "(the server's GF_WRITE_TOKEN, or GF_TOKEN when it has no write token)"
    )


class _RegistryHandler(BaseHandler):
    """What the registry endpoints share: query arguments and the allow-list."""

    max_file_size: int

    def initialize(self, state: AppState, max_file_size: int = DEFAULT_MAX_FILE_SIZE) -> None:
        super().initialize(state)
        self.max_file_size = max_file_size

    def arg(self, name: str, default: str | None = None) -> str | None:
        """A query argument as sent (not stripped); ``default`` when it is absent."""
        return self.get_query_argument(name, default, strip=False)

    def tier1(self) -> str:
        return check_tier1(self.arg("tier1") or self.state.catalog.registry.tier1)

    def key_of(self) -> tuple[str, str, str]:
        """``(key, package, call name)`` from the ``tier1/package/branch/name`` arguments."""
        package = parse_package(self.arg("package") or "")
        name = check_identifier(self.arg("name") or "", "function name")
        branch = check_branch(self.arg("branch") or self.state.catalog.registry.branch)
        self.exposed(package)
        return key_text(self.tier1(), package, branch, name), package, f"{package}.{name}"

    def exposed(self, package: str) -> None:
        catalog = self.state.catalog
        if not catalog.allowed(package):
            raise Forbidden(
                f"package {package!r} is not exposed by this server; exposed: "
                f"{', '.join(catalog.allow or ())}",
                package=package,
            )

    def send_records(self, records: Sequence[FunctionRecord]) -> None:
        catalog = self.state.catalog
        self.send_json({"records": [r.to_dict() for r in records if catalog.allowed(r.package)]})


class SaveHandler(_RegistryHandler):
    route = "/registry/save"

    def prepare(self) -> None:
        super().prepare()
        check_write(self.state, self.request.headers.get("Authorization"))

    async def post(self) -> None:
        raw = self.request.body
        if not raw or not raw.strip():
            raise InvalidRequest('body is empty; expected {"records": [...]}')
        body = jsoncodec.loads(raw, max_depth=self.state.max_json_depth, decode_tags=False)
        items = body.get("records") if isinstance(body, dict) else None
        if not isinstance(items, list) or not 1 <= len(items) <= MAX_BATCH:
            raise InvalidRequest(
                f'body must be {{"records": [...]}} with 1 to {MAX_BATCH} records; '
                "split bigger saves into several requests"
            )
        # Scanning and storing take about 10 ms a record: a thread, so the loop (and
        # /healthz, and calls) keep answering while a big batch is saved.
        records, added = await asyncio.get_running_loop().run_in_executor(None, self._save, items)
        registry = self.state.catalog.registry
        for record in records:
            if record.tier1 == registry.tier1 and record.branch == registry.branch:
                self.state.catalog.forget(f"{record.package}.{record.name}")
        log.info(
            "saved over HTTP: %s",
            ", ".join(
                f"{r.key}@{r.sha256[:12]}{'' if a else ' (unchanged)'}"
                for r, a in zip(records, added, strict=True)
            ),
        )
        self.send_json(
            {
                "results": [
                    {"key": r.key, "sha256": r.sha256, "added": a}
                    for r, a in zip(records, added, strict=True)
                ]
            }
        )

    def _save(self, items: list[Any]) -> tuple[list[FunctionRecord], list[bool]]:
        """Scan and store the posted items (in a worker thread: no loop state touched)."""
        with tempfile.TemporaryDirectory(prefix="gf-save-") as tmp:
            records = [
                record_of_item(
                    i, item, Path(tmp), max_file_size=self.max_file_size, expose=self.exposed
                )
                for i, item in enumerate(items)
            ]
        storage = self.state.catalog.registry.storage
        added = storage.put(records)
        index_of(storage).saved(records, added)
        return records, added


class RecordHandler(_RegistryHandler):
    route = "/registry/record"

    def prepare(self) -> None:
        super().prepare()
        if self.request.method == "DELETE":
            check_write(self.state, self.request.headers.get("Authorization"))

    def get(self) -> None:
        key, _, _ = self.key_of()
        sha256 = self.arg("sha256")
        if sha256 is not None and not SHA256.match(sha256):
            raise InvalidName(f"sha256 {sha256[:80]!r} is not 64 lower-case hex digits")
        record = self.state.catalog.registry.storage.get(key, sha256=sha256)
        if record is None:
            where = f" with hash {sha256[:12]}" if sha256 else ""
            raise FunctionNotFound(f"no version of {key}{where}", key=key)
        self.send_json({"record": record.to_dict()})

    def delete(self) -> None:
        key, _, call = self.key_of()
        storage = self.state.catalog.registry.storage
        deleted = storage.delete(key)
        index_of(storage).deleted(key)
        self.state.catalog.forget(call)
        log.info("deleted over HTTP: %s (%s)", key, "tombstone" if deleted else "nothing live")
        self.send_json({"deleted": deleted})


class HistoryHandler(_RegistryHandler):
    route = "/registry/history"

    def get(self) -> None:
        key, _, _ = self.key_of()
        self.send_records(self.state.catalog.registry.storage.history(key))


class ListHandler(_RegistryHandler):
    route = "/registry/list"

    def get(self) -> None:
        package = self.arg("package")
        branch = self.arg("branch")
        if package is not None:
            self.exposed(parse_package(package))
        if branch is not None:
            check_branch(branch)
        storage = self.state.catalog.registry.storage
        self.send_records(storage.list(self.tier1(), package=package, branch=branch))


class RegistrySearchHandler(_RegistryHandler):
    route = "/registry/search"

    async def get(self) -> None:
        q = self.arg("q") or ""
        if not q.strip():
            raise InvalidRequest(
                f"search needs a query of 1 to {MAX_QUERY} characters: ?q=pickle&tier1=..."
            )
        check_query(q)
        raw_limit = self.arg("limit", "20") or ""
        if not _INTEGER.fullmatch(raw_limit) or not 1 <= int(raw_limit) <= MAX_SEARCH:
            raise InvalidRequest(
                f"limit {raw_limit!r:.40} must be an integer from 1 to {MAX_SEARCH}"
            )
        tier1 = self.tier1()
        narrow: dict[str, str] = {}  # only what was asked: a store may predate these
        package, branch = self.arg("package"), self.arg("branch")
        if package is not None:
            narrow["package"] = parse_package(package)
            self.exposed(package)
        if branch is not None:
            narrow["branch"] = check_branch(branch)
        if not query_terms(q):
            self.send_records([])
            return
        storage = self.state.catalog.registry.storage
        found = await asyncio.get_running_loop().run_in_executor(
            None, functools.partial(storage.search, tier1, q, int(raw_limit), **narrow)
        )  # ranking scores every candidate: a thread, so /healthz keeps answering
        self.send_records(found)


class DuplicatesHandler(_RegistryHandler):
    """Which live functions have the logic of the given fingerprints: the duplicate
    check of a save, answered here so a client never lists the space."""

    route = "/registry/duplicates"

    async def post(self) -> None:
        raw = self.request.body
        body = jsoncodec.loads(raw or b"{}", max_depth=self.state.max_json_depth)
        items = body.get("items") if isinstance(body, dict) else None
        if not isinstance(items, list) or not 1 <= len(items) <= MAX_BATCH:
            raise InvalidRequest(
                f'body must be {{"tier1": ..., "items": [{{"package", "name", "fingerprint"}}]}} '
                f"with 1 to {MAX_BATCH} items"
            )
        given = body.get("tier1", self.state.catalog.registry.tier1)
        if not isinstance(given, str):
            raise InvalidRequest("tier1 must be a string naming the registry space")
        tier1 = check_tier1(given)
        wanted: dict[str, tuple[str, str]] = {}  # fingerprint -> (package, name)
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                raise InvalidRequest(f"item {i} is not an object")
            package = parse_package(text_field(item, "package", f"item {i}"))
            name = check_identifier(text_field(item, "name", f"item {i}"), "function name")
            fp = text_field(item, "fingerprint", f"item {i}")
            if not 1 <= len(fp) <= 80:
                raise InvalidRequest(f"item {i}: fingerprint {fp[:80]!r} is not a fingerprint")
            wanted[fp] = (package, name)
        storage = self.state.catalog.registry.storage
        found = await asyncio.get_running_loop().run_in_executor(
            None, index_of(storage).lookup, tier1, wanted
        )
        catalog = self.state.catalog
        self.send_json(
            {
                "duplicates": {
                    call: [r.to_dict() for r in records if catalog.allowed(r.package)]
                    for call, records in found.items()
                }
            }
        )


_HANDLERS: tuple[type[_RegistryHandler], ...] = (
    SaveHandler,
    DuplicatesHandler,
    RecordHandler,
    HistoryHandler,
    ListHandler,
    RegistrySearchHandler,
)


def registry_routes(
    state: AppState, *, max_file_size: int = DEFAULT_MAX_FILE_SIZE
) -> list[tuple[str, type[BaseHandler], dict[str, Any]]]:
    """The tornado rules of the registry endpoints, for :func:`server.http.app.make_app`."""
    kw = {"state": state, "max_file_size": max_file_size}
    return [(re.escape(h.route), h, kw) for h in _HANDLERS]
