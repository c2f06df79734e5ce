"""Names: call names, scan keys, storage keys and branch encoding, validated in one place.

Three spellings of one function, from the user's design:

- call name   ``Base.to_pickle``            (nested packages: ``pkg.sub.func``)
- scan key    ``Base.to_pickle.py``         (a file under the packages root)
- storage key ``sp_GlobalFunc.Base_master.to_pickle`` = ``<tier1>.<tier2>.<name>``

``tier2`` is ``<package>_<branch>``. To keep that split unambiguous for every package and
branch, the package part doubles its underscores and writes nested dots as ``-``, and the
branch part writes ``/`` as ``+``, ``.`` as ``=``, a leading ``_`` as ``%5F``, and
anything else outside ``[A-Za-z0-9_-]`` as ``%HH`` (UTF-8 bytes). So ``Base``/``master``
stays ``Base_master`` (the seed's key), ``my_pkg``/``feature/x`` becomes
``my__pkg_feature+x``, ``Base``/``_x_y`` becomes ``Base_%5Fx_y`` (unescaped it would read
as ``Base_x``/``y``), and decoding gives back exactly the package and branch that went
in: the encoding is one-to-one for every branch name git accepts. Only the canonical
spelling decodes (``Base_%6Daster`` is refused, not read as ``master``), so one function
never has two keys.

Every invalid name raises :class:`~globalfunc.errors.InvalidName` saying what was wrong.
This module does no I/O.
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass
from functools import lru_cache

from globalfunc.errors import InvalidName

DEFAULT_TIER1 = "sp_GlobalFunc"
MAX_PART = 100
MAX_NAME = 255
MAX_BRANCH = 200

_IDENT = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")
_TIER1 = re.compile(r"[A-Za-z][A-Za-z0-9_-]*\Z")
_BRANCH_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
# git check-ref-format: no control chars, space, ~ ^ : ? * [ \ , no "..", no "@{", no
# empty component, no component starting with "." or ending with ".lock".
_BRANCH_FORBIDDEN = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]|\.\.|@\{|//|/\.|\.lock/")


@dataclass(frozen=True, slots=True)
class CallName:
    """A validated ``package.func`` name; ``package`` may be dotted (``pkg.sub``)."""

    package: str
    func: str

    def __str__(self) -> str:
        return f"{self.package}.{self.func}"

    @property
    def scan_key(self) -> str:
        """The seed's scan key for this function's file: ``Base.to_pickle.py``."""
        return f"{self}.py"

    @property
    def relpath(self) -> str:
        """The file's path under the packages root, with ``/`` separators."""
        return "/".join([*self.package.split("."), f"{self.func}.py"])


@dataclass(frozen=True, slots=True)
class StorageKey:
    """A validated ``tier1.tier2.name`` key with tier2 decoded into package and branch."""

    tier1: str
    package: str
    branch: str
    func: str

    @property
    def tier2(self) -> str:
        return encode_tier2(self.package, self.branch)

    @property
    def space(self) -> str:
        """``tier1.tier2``: the seed's variable space name."""
        return f"{self.tier1}.{self.tier2}"

    @property
    def call_name(self) -> CallName:
        return CallName(self.package, self.func)

    def __str__(self) -> str:
        return f"{self.tier1}.{self.tier2}.{self.func}"


def check_identifier(part: str, what: str = "name") -> str:
    """Validate one name part: an identifier, not private, not a keyword, not too long."""
    if not isinstance(part, str) or not part:
        raise InvalidName(f"{what} is empty; expected a Python identifier such as 'to_pickle'")
    if len(part) > MAX_PART:
        raise InvalidName(f"{what} {part[:40]!r}... is {len(part)} characters; at most {MAX_PART}")
    if part.startswith("_"):
        raise InvalidName(
            f"{what} {part!r} starts with '_'; private and dunder names cannot be registered or called"
        )
    if "/" in part or "\\" in part or ".." in part:
        raise InvalidName(f"{what} {part!r} contains a path separator or '..'")
    if not _IDENT.match(part):
        raise InvalidName(
            f"{what} {part!r} is not a valid identifier (letters, digits and '_', "
            "starting with a letter)"
        )
    if keyword.iskeyword(part) or keyword.issoftkeyword(part):
        raise InvalidName(f"{what} {part!r} is a Python keyword")
    return part


def parse_call_name(name: str) -> CallName:
    """Parse ``Package.func`` (or ``pkg.sub.func``) into a :class:`CallName`.

    >>> parse_call_name("Base.to_pickle")
    CallName(package='Base', func='to_pickle')
    """
    if isinstance(name, CallName):
        return name
    if not isinstance(name, str) or not name:
        raise InvalidName("function name is empty; expected 'Package.func', e.g. 'Base.to_pickle'")
    if len(name) > MAX_NAME:
        raise InvalidName(f"function name is {len(name)} characters; at most {MAX_NAME}")
    parts = name.split(".")
    if len(parts) < 2:
        raise InvalidName(
            f"function name {name!r} has no package; expected 'Package.func', e.g. 'Base.{name}'"
        )
    for i, part in enumerate(parts):
        check_identifier(part, "function name" if i == len(parts) - 1 else "package name")
    return CallName(".".join(parts[:-1]), parts[-1])


def parse_package(package: str) -> str:
    """Validate a (possibly dotted) package name and return it."""
    if not isinstance(package, str) or not package:
        raise InvalidName("package name is empty; expected e.g. 'Base'")
    for part in package.split("."):
        check_identifier(part, "package name")
    return package


def parse_scan_key(key: str) -> CallName:
    """Parse the seed's scan key ``Base.to_pickle.py`` into a :class:`CallName`."""
    if not isinstance(key, str) or not key.endswith(".py"):
        raise InvalidName(f"scan key {key!r} must name a file, e.g. 'Base.to_pickle.py'")
    return parse_call_name(key[:-3])


def check_tier1(tier1: str) -> str:
    """Validate a tier1 space name such as ``sp_GlobalFunc``."""
    if not isinstance(tier1, str) or not _TIER1.match(tier1) or len(tier1) > MAX_PART:
        raise InvalidName(
            f"tier1 {tier1!r} must start with a letter and hold only letters, digits, '_' and '-'"
        )
    return tier1


def check_branch(branch: str) -> str:
    """Validate a git branch name (the subset of git's rules that matters for keys)."""
    if not isinstance(branch, str) or not branch:
        raise InvalidName("branch name is empty")
    return _check_branch(branch)


@lru_cache(maxsize=1024)
def _check_branch(branch: str) -> str:
    if len(branch) > MAX_BRANCH:
        raise InvalidName(f"branch name is {len(branch)} characters; at most {MAX_BRANCH}")
    if (
        _BRANCH_FORBIDDEN.search(branch)
        or branch.startswith(("-", "/", "."))
        or branch.endswith(("/", ".", ".lock"))
        or branch == "@"
    ):
        raise InvalidName(f"branch name {branch!r} is not a valid git branch name")
    return branch


def _encode_branch(branch: str) -> str:
    out: list[str] = []
    for i, ch in enumerate(branch):
        if ch == "_" and i == 0:
            out.append("%5F")  # "_" right after the separator would join the package part
        elif ch in _BRANCH_SAFE:
            out.append(ch)
        elif ch == "/":
            out.append("+")
        elif ch == ".":
            out.append("=")
        else:
            out.extend(f"%{b:02X}" for b in ch.encode("utf-8"))
    return "".join(out)


def _decode_branch(text: str) -> str:
    raw = bytearray()
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "%":
            try:
                raw.append(int(text[i + 1 : i + 3], 16))
            except ValueError:
                raise InvalidName(f"bad escape in branch part {text!r}") from None
            i += 3
            continue
        if ch == "+":
            raw += b"/"
        elif ch == "=":
            raw += b"."
        elif ch in _BRANCH_SAFE:
            raw += ch.encode()
        else:
            raise InvalidName(f"character {ch!r} cannot appear in the branch part {text!r}")
        i += 1
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidName(f"branch part {text!r} does not decode to UTF-8") from None


def encode_tier2(package: str, branch: str) -> str:
    """``<package>_<branch>`` with both parts escaped so the split is unambiguous."""
    if not isinstance(package, str) or not isinstance(branch, str):
        raise InvalidName(f"package {package!r} and branch {branch!r} must be strings")
    return _encode_tier2(package, branch)


@lru_cache(maxsize=4096)  # few (package, branch) pairs, each asked for once per record
def _encode_tier2(package: str, branch: str) -> str:
    parse_package(package)
    check_branch(branch)
    return package.replace("_", "__").replace(".", "-") + "_" + _encode_branch(branch)


def key_prefix(tier1: str, package: str | None = None) -> str:
    """What every storage key in ``tier1`` (of ``package``, on any branch) starts with.

    No validation: a name that could not be in a key gives a prefix no key has.
    """
    if package is None:
        return f"{tier1}."
    return f"{tier1}.{package.replace('_', '__').replace('.', '-')}_"


def decode_tier2(tier2: str) -> tuple[str, str]:
    """Split a tier2 back into ``(package, branch)``; the inverse of :func:`encode_tier2`."""
    i = 0
    while i < len(tier2):
        if tier2[i] == "_":
            if tier2[i + 1 : i + 2] == "_":
                i += 2
                continue
            package = tier2[:i].replace("-", ".").replace("__", "_")
            branch = _decode_branch(tier2[i + 1 :])
            if _encode_tier2(package, branch) != tier2:
                raise InvalidName(
                    f"tier2 {tier2!r} is not the canonical spelling of package {package!r} "
                    f"and branch {branch!r} ({_encode_tier2(package, branch)!r})"
                )
            return package, branch
        i += 1
    raise InvalidName(f"tier2 {tier2!r} has no '_' between package and branch (e.g. 'Base_master')")


def make_storage_key(name: str | CallName, branch: str, tier1: str = DEFAULT_TIER1) -> StorageKey:
    """Build the storage key of a call name on a branch: ``sp_GlobalFunc.Base_master.to_pickle``."""
    call = parse_call_name(name) if isinstance(name, str) else name
    check_tier1(tier1)
    check_branch(branch)
    return StorageKey(tier1, call.package, branch, call.func)


def key_text(tier1: str, package: str, branch: str, func: str) -> str:
    """``make_storage_key(...)`` as text, validated once per distinct key and then cached."""
    if not (type(tier1) is type(package) is type(branch) is type(func) is str):
        raise InvalidName(f"key parts must be strings: {(tier1, package, branch, func)!r}")
    return _key_text(tier1, package, branch, func)


@lru_cache(maxsize=1 << 16)
def _key_text(tier1: str, package: str, branch: str, func: str) -> str:
    call = CallName(parse_package(package), check_identifier(func, "function name"))
    return str(make_storage_key(call, branch, tier1))


def parse_storage_key(key: str) -> StorageKey:
    """Parse ``tier1.tier2.name`` into a :class:`StorageKey`."""
    if not isinstance(key, str):
        raise InvalidName(f"storage key {key!r} is not a string")
    parts = key.split(".")
    if len(parts) != 3:
        raise InvalidName(
            f"storage key {key!r} must have three parts 'tier1.tier2.name', "
            "e.g. 'sp_GlobalFunc.Base_master.to_pickle'"
        )
    tier1, tier2, func = parts
    check_tier1(tier1)
    package, branch = decode_tier2(tier2)
    check_identifier(func, "function name")
    return StorageKey(tier1, package, branch, func)
