"""One supervised child process: every isolated thing GlobalFunc runs is started here.

A :class:`ChildSpec` says what to run and under which limits; :meth:`Child.spawn` starts
it with the same rules for every caller (the isolated worker pool, the AIGES process
engine):

- **environment scrub**: the child gets ours without any ``GF_*`` setting (the server's
  token, storage URLs with passwords) plus what the spec adds, with this package
  importable whatever the working folder;
- **an unprivileged user**: when we run as root and the spec names a user (the edge passes
  ``GF_WORKER_USER``, ``nobody`` by default), the child runs as that user with no
  supplementary groups, so it can read neither root's files nor ``/proc/<server pid>/environ``;
  util-linux's ``setpriv`` switches after the exec, so the spawn stays a ``vfork``: a full
  ``fork()`` of a server with gRPC threads runs gRPC's fork handlers, which restarted its
  pollers inside the child and crashed it (7 of 2,000 spawns died of SIGABRT/SIGSEGV
  before its exec);
- **a memory cap**: ``RLIMIT_AS``, set by the child on itself before our command runs
  (util-linux's ``prlimit`` execs it; lowering one's own limit needs no privilege), with
  ``MALLOC_ARENA_MAX`` lowered so glibc's per-thread arenas do not eat the cap;
- **its own session**: a terminal's Ctrl-C reaches the server, which decides;
- **a death certificate**: :meth:`Child.exit_description` says how it ended (exit code or
  signal, and a hint when the memory cap was the likely cause).

Exit is observable without blocking or polling: :attr:`Child.exit_fd` is a pidfd that
becomes readable when the process ends, so an event loop can watch it.

What it does not do: speak any protocol with the child, decide when to replace it, or
retry. That is the pool's job (:mod:`globalfunc.executor.pool`) or the engine's.
"""

from __future__ import annotations

import contextlib
import functools
import grp
import logging
import os
import pwd
import resource
import shutil
import signal
import subprocess
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from globalfunc.errors import ConfigError

__all__ = [
    "DEFAULT_WORKER_USER",
    "Child",
    "ChildSpec",
    "adopt_orphans",
    "child_env",
    "import_root",
    "kill_orphans",
    "worker_uid",
]

log = logging.getLogger(__name__)

DEFAULT_WORKER_USER = "nobody"
_PRLIMIT = shutil.which("prlimit")  # util-linux; without it the parent caps the child
_SETPRIV = shutil.which("setpriv")  # util-linux; without it Popen switches user (a fork)
_ENV = shutil.which("env")  # coreutils


@functools.cache
def _warn_no_setpriv() -> None:
    log.warning(
        "setpriv (util-linux) is not installed: children switch user inside a full fork(), "
        "which gRPC's fork handlers can crash; install util-linux"
    )


def import_root() -> str:
    """The folder that holds the ``globalfunc`` package (and ``server``, ``gfgo``...)."""
    return str(Path(__file__).resolve().parents[2])


def child_env(
    extra: Mapping[str, str] | None = None,
    *,
    base: Mapping[str, str] | None = None,
    memory_capped: bool = False,
) -> dict[str, str]:
    """Our environment without ``GF_*`` settings, plus ``extra``; this package importable."""
    source = os.environ if base is None else base
    env = {k: v for k, v in source.items() if not k.startswith("GF_")}
    here = import_root()
    parts = [here, *[p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != here]]
    env["PYTHONPATH"] = os.pathsep.join(parts)
    if memory_capped:
        # Under an address-space cap, glibc's per-thread malloc arenas (64 MiB of address
        # space each) would use it up before the user's code does.
        env.setdefault("MALLOC_ARENA_MAX", "2")
    if extra:
        env.update(extra)
    return env


@dataclass(frozen=True, slots=True)
class ChildSpec:
    """What to run, and under which limits."""

    argv: Sequence[str]
    env: Mapping[str, str] = field(default_factory=dict)  # added to the scrubbed environment
    memory_mb: int | None = None
    user: str | None = None  # taken only when we run as root
    cwd: str | None = None
    stdin_pipe: bool = True
    stdout_pipe: bool = True
    stderr: int | None = None  # an fd for the child's stderr; ours when None

    def __post_init__(self) -> None:
        if not self.argv:
            raise ConfigError("a child process needs a command")
        if self.memory_mb is not None and self.memory_mb < 64:
            raise ConfigError(f"memory cap must be at least 64 MiB, got {self.memory_mb}")


@dataclass(frozen=True, slots=True)
class _Identity:
    uid: int
    gid: int
    name: str


def _identity(user: str | None) -> _Identity | None:
    """The user to switch to, or None when we are not root or none is asked for."""
    if not user or os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise ConfigError(
            f"worker user {user!r} does not exist on this machine; create it or set "
            "GF_WORKER_USER to an existing unprivileged user"
        ) from None
    if entry.pw_uid == 0:
        raise ConfigError(
            f"worker user {user!r} is root; set GF_WORKER_USER to an unprivileged user"
        )
    clash = _numeric_name_clash(entry.pw_uid, entry.pw_gid)
    if clash:
        raise ConfigError(
            f"worker user {user!r}: {clash}, and setpriv reads a name before a number, so its "
            "children could run as that other id; rename it or set GF_WORKER_USER to another user"
        )
    return _Identity(entry.pw_uid, entry.pw_gid, user)


def _numeric_name_clash(uid: int, gid: int) -> str | None:
    """What makes setpriv's ``--reuid=UID``/``--regid=GID`` name another id: a user or group
    whose name is our number (possible in LDAP directories of employee numbers)."""
    with contextlib.suppress(KeyError):
        other = pwd.getpwnam(str(uid))
        if other.pw_uid != uid:
            return f"a user is named '{uid}' but has uid {other.pw_uid}"
    with contextlib.suppress(KeyError):
        group = grp.getgrnam(str(gid))
        if group.gr_gid != gid:
            return f"a group is named '{gid}' but has gid {group.gr_gid}"
    return None


def worker_uid(user: str | None) -> int | None:
    """The uid children run as for ``user`` (None: they run as we do)."""
    identity = _identity(user)
    return None if identity is None else identity.uid


_PR_SET_CHILD_SUBREAPER = 36


def adopt_orphans() -> bool:
    """Make this process the parent of its descendants' orphans (Linux's child subreaper),
    so what a function started and left behind can be found and killed by
    :func:`kill_orphans` instead of living on under init. False where it is not available."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


_LIVE: set[int] = set()  # pids of the children every Child in this process supervises


def kill_orphans(uid: int, keep: Collection[int] = ()) -> list[int]:
    """SIGKILL and reap our child processes that run as ``uid`` and are neither supervised
    by a :class:`Child` of this process nor in ``keep``: what workers that were replaced left
    behind (they are ours through :func:`adopt_orphans`). Returns their pids."""
    found: list[int] = []
    try:
        tasks = list(Path("/proc/self/task").iterdir())
    except OSError:
        return found
    for task in tasks:
        try:
            pids = [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            continue
        for pid in pids:
            if pid in keep or pid in _LIVE:
                continue
            try:
                if os.stat(f"/proc/{pid}").st_uid != uid:
                    continue
                os.kill(pid, signal.SIGKILL)
            except OSError:
                continue
            found.append(pid)
    for pid in found:
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, 0)  # SIGKILLed: it ends at once
    return found


class Child:
    """A running (or ended) child process started from a :class:`ChildSpec`."""

    __slots__ = ("_exit_fd", "identity", "proc", "spec")

    def __init__(
        self, spec: ChildSpec, proc: subprocess.Popen[bytes], identity: _Identity | None
    ) -> None:
        self.spec = spec
        self.proc = proc
        self.identity = identity
        self._exit_fd: int | None = None

    @classmethod
    def spawn(cls, spec: ChildSpec) -> Child:
        """Start the child; ``OSError`` if the command cannot run, ``ConfigError`` for a bad user.

        As another user (through ``setpriv``) the command is found after the switch: one that
        user cannot run ends the child at once with code 126 (not allowed) or 127 (not
        there), and the reason is on its stderr."""
        identity = _identity(spec.user)
        env = child_env(spec.env, memory_capped=spec.memory_mb is not None)
        if identity is not None:
            home = pwd.getpwuid(identity.uid).pw_dir
            env.update(USER=identity.name, LOGNAME=identity.name, HOME=home)
        try:
            proc = cls._popen(spec, env, identity)
        except PermissionError as exc:
            if identity is None:
                raise
            raise ConfigError(
                f"worker user {identity.name!r} cannot run {spec.argv[0]!r} ({exc.strerror}); "
                "run `make setup` (scripts/worker-user.sh grants it the folders on the way) "
                "or set GF_WORKER_USER to a user who can"
            ) from None
        child = cls(spec, proc, identity)
        _LIVE.add(proc.pid)
        if spec.memory_mb is not None and not _PRLIMIT:
            cap = int(spec.memory_mb) * 1024 * 1024
            try:
                resource.prlimit(proc.pid, resource.RLIMIT_AS, (cap, cap))
            except (OSError, ValueError) as exc:
                child.kill()
                raise ConfigError(
                    f"cannot cap the memory of a child process ({exc}); install util-linux's "
                    "prlimit, or turn the cap off (GF_MEMORY_MB=0)"
                ) from None
        return child

    @staticmethod
    def _popen(
        spec: ChildSpec, env: dict[str, str], identity: _Identity | None
    ) -> subprocess.Popen[bytes]:
        # Another user may not reach our working folder: start it from / unless told.
        cwd = spec.cwd if spec.cwd is not None or identity is None else "/"
        argv = list(spec.argv)
        if spec.memory_mb is not None and _PRLIMIT:
            # The child caps itself before it runs anything: lowering one's own limit needs
            # no privilege, while capping another user's process needs CAP_SYS_RESOURCE.
            cap = int(spec.memory_mb) * 1024 * 1024
            argv = [_PRLIMIT, f"--as={cap}:{cap}", "--", *argv]
        popen_user = identity  # who Popen itself switches to: only without setpriv
        if identity is not None and _SETPRIV is not None:
            # After the exec, not before: Popen's own user switch rules out vfork (module doc).
            # setpriv still holds root's capabilities when it execs, so the next program must
            # be one that holds none (prlimit, else env) for the user's own permission checks
            # to decide what it may run.
            if argv[0] != _PRLIMIT and _ENV is not None:
                argv = [_ENV, "--", *argv]
            argv = [
                _SETPRIV,
                f"--reuid={identity.uid}",
                f"--regid={identity.gid}",
                "--clear-groups",
                "--",
                *argv,
            ]
            popen_user = None
        elif identity is not None:
            _warn_no_setpriv()
        return subprocess.Popen(
            argv,
            stdin=subprocess.PIPE if spec.stdin_pipe else subprocess.DEVNULL,
            stdout=subprocess.PIPE if spec.stdout_pipe else subprocess.DEVNULL,
            stderr=spec.stderr,
            env=env,
            cwd=cwd,
            close_fds=True,
            start_new_session=True,
            user=None if popen_user is None else popen_user.uid,
            group=None if popen_user is None else popen_user.gid,
            extra_groups=None if popen_user is None else [],
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def exit_fd(self) -> int:
        """A pidfd readable once the process has ended (opened on first use)."""
        if self._exit_fd is None:
            self._exit_fd = os.pidfd_open(self.proc.pid)
        return self._exit_fd

    def exit_code(self) -> int | None:
        """The exit code (negative: the signal) once it has ended; None while it runs."""
        return self.proc.poll()

    def kill(self) -> None:
        """SIGKILL the process and its process group (no wait). Safe to call more than once.

        The group is the child's own session: whatever it started (a function that forks)
        goes with it. Only before the child is reaped, while its pid still names the group.
        """
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)

    def reap(self, timeout: float = 0.0) -> int | None:
        """Collect the exit status if the process has ended within ``timeout`` seconds; what
        it left running in its group is killed first."""
        if self.proc.returncode is None:
            deadline = time.monotonic() + timeout
            while (state := self._state()) == "running":
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                time.sleep(min(0.01, left))
            if state == "ended":
                self.kill()  # the leader is a zombie: its pid still names the group
        try:
            code = self.proc.wait(timeout=5.0)
        except subprocess.TimeoutExpired:  # pragma: no cover - it had ended already
            return None
        _LIVE.discard(self.proc.pid)
        return code

    def _state(self) -> str:
        """``running``, ``ended`` (not reaped yet) or ``gone`` (reaped), without reaping."""
        try:
            info = os.waitid(os.P_PID, self.proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return "gone"
        return "running" if info is None else "ended"

    def close(self, grace: float = 0.0) -> None:
        """Close its stdin (EOF), give it ``grace`` seconds to leave, kill it, reap it, and
        only then close its stdout: a thread may be blocked reading it, and closing a
        buffered reader waits for that read (the child's end makes it return)."""
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        if grace <= 0 or self.reap(grace) is None:
            self.kill()
            self.reap(5.0)
        if self.proc.stdout is not None:
            with contextlib.suppress(OSError):
                self.proc.stdout.close()
        self._close_exit_fd()

    def _close_exit_fd(self) -> None:
        fd, self._exit_fd = self._exit_fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    def exit_description(self, wait: float = 2.0) -> str:
        """How the process ended, for a message (waits up to ``wait``; kills it after)."""
        code = self.reap(wait)
        if code is None:
            self.kill()
            code = self.reap(5.0)
        if code is None:
            return "did not end"
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            return f"was killed by {name}"
        return f"exited with code {code}"
