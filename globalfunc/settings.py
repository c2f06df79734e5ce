"""``GF_*`` settings, read once at the edges (the ``gf`` CLI and server entry points).

Library classes never read the environment: the CLI builds a :class:`Settings`, then
passes plain values down. Every field can be set as ``GF_<NAME>`` (``GF_STORAGE_URL``,
``GF_TOKEN``, ...). Secrets are ``SecretStr`` so they never print; the server's token can
also come from a file (``GF_TOKEN_FILE``, read by :meth:`Settings.bearer_token`). The same
token is what the ``http://`` storage backend sends, unless its URL carries one.
``GF_WRITE_TOKEN`` is the token saving through the server's ``/registry/`` needs; with it
set, ``GF_TOKEN`` may call and read only.
"""

from __future__ import annotations

import os
import shlex
import stat
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from globalfunc.errors import ConfigError
from globalfunc.naming import DEFAULT_TIER1
from globalfunc.storage.base import DEFAULT_CACHE_TTL

_SHARED_READ = stat.S_IRGRP | stat.S_IROTH


class Settings(BaseSettings):
    """Every GlobalFunc setting with its default."""

    model_config = SettingsConfigDict(env_prefix="GF_", extra="ignore")

    root: str = Field(".", description="packages root: a folder of packages inside a git repo")
    tier1: str = Field(DEFAULT_TIER1, description="the registry space (first key part)")
    storage_url: str | None = Field(
        None, description="durable store URL; default sqlite in <root>/.globalfunc/registry.db"
    )
    cache_url: str | None = Field(None, description="Redis cache URL placed over storage_url")
    storage_timeout: float = Field(2.0, gt=0, description="seconds for any storage network call")
    cache_ttl: float = Field(
        DEFAULT_CACHE_TTL,
        gt=0,
        description="seconds an entry of the Redis cache (cache_url) may be served before it "
        "is read again from the durable store: the bound on how stale a cached function can be",
    )
    max_file_size: int = Field(1 << 20, gt=0, description="largest function file scanned, bytes")

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    token: SecretStr | None = Field(None, description="bearer token required by the server")
    token_file: str | None = Field(
        None, description="a file holding the bearer token (trailing newline stripped)"
    )
    write_token: SecretStr | None = Field(
        None,
        description="the token saving through the server's /registry/ needs; with it set, "
        "GF_TOKEN may call and read only",
    )
    insecure: bool = Field(
        False, description="allow serving on a non-loopback address without a token"
    )
    call_timeout: float = Field(30.0, gt=0, description="seconds a call may run")
    max_body: int = Field(10 << 20, gt=0, description="largest request body, bytes")
    max_json_depth: int = Field(
        64, ge=2, le=1000, description="deepest nesting of a JSON request body"
    )
    body_timeout: float = Field(
        60.0, gt=0, description="seconds a client may take to send a request body"
    )
    idle_timeout: float = Field(
        60.0, gt=0, description="seconds an idle keep-alive connection stays open"
    )
    allow_packages: str | None = Field(
        None, description="comma-separated packages the server exposes (default: all)"
    )
    cors_origins: str | None = Field(None, description="comma-separated CORS origins (default off)")
    mode: str = Field(
        "isolated",
        pattern="^(inline|isolated)$",
        description="isolated: calls run in worker processes (a crash never takes the server "
        "down); inline: in the server process, for trusted code, fastest",
    )
    processes: int = Field(1, ge=1, description="server processes sharing the port")
    workers: int = Field(2, ge=1, description="worker processes per server in isolated mode")
    memory_mb: int = Field(
        2048, ge=0, description="memory cap per isolated worker, MiB (0: no cap; else >= 64)"
    )
    timeouts: str | None = Field(
        None, description="per-function call timeouts: 'Base.popen=60,Base.slug=1' (seconds)"
    )
    function_concurrency: int | None = Field(
        None,
        ge=1,
        description="most calls of one function running at once in isolated mode "
        "(default: all workers but one, when there are two or more)",
    )
    queue_size: int = Field(
        1024, ge=0, description="calls that may wait for a worker; one more answers 503"
    )
    semantic: bool = Field(
        True, description="rerank search results by meaning when the semantic extra is installed"
    )
    max_result_mb: int = Field(
        256, ge=1, description="largest answer an isolated worker may send, MiB (more kills it)"
    )
    worker_user: str = Field(
        "nobody",
        description="when the server runs as root, isolated workers run as this user "
        "(empty: as root, not recommended)",
    )
    cache_dir: str | None = Field(
        None, description="where registry functions are materialized for import"
    )

    worker_ports: str = Field(
        "26000-27000", description="ports `gf worker` picks the first free one from: FIRST-LAST"
    )
    worker_redis_url: str | None = Field(
        None, description="Redis where workers register and clients find them (default cache_url)"
    )
    worker_heartbeat: float = Field(
        5.0, gt=0, description="seconds between a worker's heartbeats; its entry lives 3 of them"
    )
    idempotency_ttl: float = Field(
        600.0, gt=0, description="seconds a worker keeps each call's outcome under its key"
    )
    idempotency_max_result_kb: int = Field(
        1024,
        ge=0,
        description="largest answer (KiB) a worker keeps under its key; a larger one is "
        "recorded as run but not kept (a resend gets ResultNotKept)",
    )
    stop_grace: float = Field(
        8.0, ge=0, description="seconds a SIGTERMed worker lets its calls in flight finish"
    )

    def bearer_token(self) -> str | None:
        """The token the server requires: ``GF_TOKEN``, else the content of ``GF_TOKEN_FILE``.

        Raises :class:`~globalfunc.errors.ConfigError` when both are set, or when the file
        cannot be read, holds no token, or can be read by its group or by others (POSIX:
        whoever can read it can call every served function; ``chmod 600`` it). One
        trailing newline (``\\n`` or ``\\r\\n``) is stripped; other whitespace is part
        of the token.
        """
        token = self.token.get_secret_value() if self.token is not None else None
        if self.token_file is None:
            return token or None
        if token:
            raise ConfigError(
                "both GF_TOKEN and GF_TOKEN_FILE are set; keep one (GF_TOKEN_FILE keeps the "
                "token out of the environment)"
            )
        path = Path(self.token_file).expanduser()
        try:
            with path.open("rb") as fh:
                mode = os.fstat(fh.fileno()).st_mode
                raw = fh.read()
        except OSError as exc:
            raise ConfigError(
                f"cannot read the token file {str(path)!r} (GF_TOKEN_FILE): "
                f"{exc.strerror or exc}; point GF_TOKEN_FILE at a readable file holding the token"
            ) from None
        if os.name == "posix" and mode & _SHARED_READ:
            raise ConfigError(
                f"the token file {str(path)!r} (GF_TOKEN_FILE) has mode "
                f"{stat.S_IMODE(mode):04o}: its group or other users can read the token; "
                f"run chmod 600 {shlex.quote(str(path))} and start again"
            )
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ConfigError(
                f"the token file {str(path)!r} (GF_TOKEN_FILE) is not UTF-8 text"
            ) from None
        text = text.removesuffix("\n").removesuffix("\r")
        if not text.strip():
            raise ConfigError(
                f"the token file {str(path)!r} (GF_TOKEN_FILE) is empty; write the token into "
                "it, e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))' > FILE"
            )
        if any(c in text for c in "\r\n"):
            raise ConfigError(
                f"the token file {str(path)!r} (GF_TOKEN_FILE) holds more than one line; "
                "keep only the token in it"
            )
        return text

    def write_bearer_token(self) -> str | None:
        """``GF_WRITE_TOKEN``, or None; it must differ from the read token."""
        token = self.write_token.get_secret_value() if self.write_token is not None else None
        if not token:
            return None
        if token == self.bearer_token():
            raise ConfigError(
                "GF_WRITE_TOKEN equals the read token (GF_TOKEN / GF_TOKEN_FILE); give writers "
                "a different token, or unset GF_WRITE_TOKEN so GF_TOKEN may write"
            )
        return token

    @staticmethod
    def parse_timeouts(value: str | None) -> dict[str, float]:
        """``"Base.popen=60,Base.slug=1"`` as ``{"Base.popen": 60.0, ...}``."""
        out: dict[str, float] = {}
        for item in Settings.split(value) or []:
            name, sep, seconds = item.partition("=")
            try:
                timeout = float(seconds) if sep else -1.0
            except ValueError:
                timeout = -1.0
            if timeout <= 0:
                raise ValueError(f"GF_TIMEOUTS item {item!r} must look like Package.func=SECONDS")
            out[name.strip()] = timeout
        return out

    @staticmethod
    def split(value: str | None) -> list[str] | None:
        """A comma-separated setting as a list (None when unset or empty)."""
        items = [v.strip() for v in (value or "").split(",") if v.strip()]
        return items or None
