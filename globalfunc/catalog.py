"""Which functions this server exposes: registered ones, on the allow-list, looked up fast.

The registry is the source of truth; the catalog only remembers successful look-ups for
``ttl`` seconds so the hot path is a dict hit, and re-reads the registry after that (a new
version saved while the server runs is served within ``ttl``). Unknown or invalid names
are never cached, so a client cannot grow the cache. It does not import user code.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from globalfunc.errors import Forbidden, FunctionNotFound
from globalfunc.naming import parse_call_name, parse_package
from globalfunc.record import FunctionRecord
from globalfunc.registry import Registry

NOT_FOUND_HINT = "list the registered ones with `gf ls` or GET /functions"
"""What a not-found message suggests unless the surface passes its own ``hint``."""


class Catalog:
    """Registered, exposed functions of one registry, by call name.

    ``hint`` ends the message of a name that is not registered: how the caller's surface
    lists what is (``gf ls``, ``GET /functions``); the default names both.
    """

    def __init__(
        self,
        registry: Registry,
        *,
        allow_packages: Sequence[str] | None = None,
        ttl: float = 5.0,
        hint: str = NOT_FOUND_HINT,
    ) -> None:
        self.registry = registry
        self.hint = hint
        self.allow = (
            None if allow_packages is None else tuple(parse_package(p) for p in allow_packages)
        )
        self.ttl = ttl
        self._hits: dict[str, tuple[FunctionRecord, float]] = {}

    def allowed(self, package: str) -> bool:
        """Whether a package (or its parent package) is on the allow-list."""
        if self.allow is None:
            return True
        return any(package == p or package.startswith(p + ".") for p in self.allow)

    def lookup(self, name: str) -> FunctionRecord:
        """The newest record of ``name``; raises InvalidName, Forbidden or FunctionNotFound."""
        hit = self._hits.get(name)
        now = time.monotonic()
        if hit is not None and hit[1] > now:
            return hit[0]
        call = parse_call_name(name)
        if not self.allowed(call.package):
            raise Forbidden(
                f"package {call.package!r} is not exposed by this server; exposed: "
                f"{', '.join(self.allow or ())}",
                package=call.package,
            )
        try:
            record = self.registry.get(call)
        except FunctionNotFound:
            self._hits.pop(name, None)
            raise FunctionNotFound(
                f"no registered function {name!r} on branch {self.registry.branch!r}; {self.hint}",
                name=name,
            ) from None
        self._hits[name] = (record, now + self.ttl)
        return record

    def forget(self, name: str) -> None:
        """Drop the remembered look-up of ``name``: a new version saved here runs at once."""
        self._hits.pop(name, None)

    def functions(self, package: str | None = None) -> list[FunctionRecord]:
        """Every exposed function (newest versions), sorted by call name."""
        records = self.registry.list(package)
        return sorted(
            (r for r in records if self.allowed(r.package)), key=lambda r: (r.package, r.name)
        )

    def search(self, query: str, limit: int = 20) -> list[FunctionRecord]:
        """Exposed functions on this server's branch matching ``query``, best first."""
        branch = self.registry.branch
        hits = self.registry.search(query, limit=max(limit * 4, limit))
        return [r for r in hits if r.branch == branch and self.allowed(r.package)][:limit]

    def history(self, name: str) -> list[FunctionRecord]:
        """All versions of an exposed function, newest first."""
        self.lookup(name)
        return self.registry.history(name)
