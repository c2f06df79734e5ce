"""The normalized AST fingerprint: what it ignores (own name, local names, formatting,
comments, docstrings, annotations) and what it does not (other logic, global names,
attributes, constants, keyword names, order of operands)."""

from __future__ import annotations

import pytest

from globalfunc.fingerprint import fingerprint, fingerprint_of
from globalfunc.record import FunctionInfo
from globalfunc.scan import Scanner

BASE = '''
def total_price(items, tax=0.2):
    """Sum the prices of items and add the tax."""
    subtotal = 0
    for item in items:
        subtotal += item.price * item.count
    return round(subtotal * (1 + tax), 2)
'''

SAME = {
    "other local and parameter names": '''
def total_price(things, rate=0.2):
    """Sum the prices of items and add the tax."""
    acc = 0
    for thing in things:
        acc += thing.price * thing.count
    return round(acc * (1 + rate), 2)
''',
    "another function name": BASE.replace("def total_price", "def price_sum"),
    "formatting and comments": '''
def total_price( items,tax = 0.2 ) :
    """Sum the prices of items and add the tax."""
    subtotal=0   # running total
    for item in items :
        # each line of the order
        subtotal += ( item.price*item.count )
    return round( subtotal*(1+tax) , 2 )
''',
    "another or no docstring": BASE.replace(
        '"""Sum the prices of items and add the tax."""', '"""Price of an order."""'
    ),
    "no docstring at all": BASE.replace('    """Sum the prices of items and add the tax."""\n', ""),
    "type annotations": BASE.replace(
        "def total_price(items, tax=0.2):",
        "def total_price(items: list, tax: float = 0.2) -> float:",
    ),
    "a bare string used as a comment": BASE.replace(
        "    return", '    "the total with tax"\n    return'
    ),
}

DIFFERENT = {
    "another builtin": BASE.replace("round(", "abs(").replace(", 2)", ")"),
    "another attribute": BASE.replace("item.count", "item.quantity"),
    "another constant": BASE.replace("(1 + tax)", "(2 + tax)"),
    "another default": BASE.replace("tax=0.2", "tax=0.3"),
    "operands swapped": BASE.replace("item.price * item.count", "item.count * item.price"),
    "another operator": BASE.replace("+=", "-="),
    "a statement more": BASE.replace("    return", "    subtotal += 1\n    return"),
    "a global instead of a local": BASE.replace("subtotal = 0\n", "")
    .replace("subtotal +=", "TOTAL +=")
    .replace("round(subtotal", "round(TOTAL"),
    "two locals swapped in use": BASE.replace(
        "item.price * item.count", "items.price * item.count"
    ),
}


def fp(code: str) -> str:
    name = code.split("def ", 1)[1].split("(", 1)[0].strip()
    return fingerprint(code, name)


@pytest.mark.parametrize("variant", sorted(SAME))
def test_the_same_logic_has_the_same_fingerprint(variant: str) -> None:
    assert fp(SAME[variant]) == fp(BASE)


@pytest.mark.parametrize("variant", sorted(DIFFERENT))
def test_other_logic_has_another_fingerprint(variant: str) -> None:
    assert DIFFERENT[variant] != BASE  # the replacement took
    assert fp(DIFFERENT[variant]) != fp(BASE)


def test_keyword_argument_names_of_calls_are_kept() -> None:
    a = "def f(x):\n    return sorted(x, reverse=True)\n"
    b = "def f(x):\n    return sorted(x, key=True)\n"
    assert fingerprint(a, "f") != fingerprint(b, "f")


def test_names_are_numbered_by_first_appearance_so_a_swap_of_roles_differs() -> None:
    a = "def f(a, b):\n    return a - b\n"
    b = "def f(b, a):\n    return a - b\n"  # the second parameter minus the first
    c = "def f(p, q):\n    return p - q\n"
    assert fingerprint(a, "f") == fingerprint(c, "f")
    assert fingerprint(a, "f") != fingerprint(b, "f")


def test_recursion_under_another_name_is_the_same() -> None:
    a = "def fact(n):\n    return 1 if n < 2 else n * fact(n - 1)\n"
    b = "def factorial(k):\n    return 1 if k < 2 else k * factorial(k - 1)\n"
    assert fingerprint(a, "fact") == fingerprint(b, "factorial")


def test_a_global_declared_name_is_not_renamed() -> None:
    a = "def f():\n    global counter\n    counter = 1\n"
    b = "def f():\n    global other\n    other = 1\n"
    assert fingerprint(a, "f") != fingerprint(b, "f")


def test_code_that_does_not_parse_is_fingerprinted_by_its_text() -> None:
    broken = "def f(:\n    return 1\n"
    assert fingerprint(broken, "f").startswith("text:")
    assert fingerprint(broken, "f") == fingerprint(broken, "f")
    assert fingerprint(broken, "f") != fingerprint(broken + " ", "f")


def test_a_scanned_function_has_its_fingerprint_on_demand(tmp_path: pytest.TempPathFactory) -> None:
    root = tmp_path / "pkgs"  # type: ignore[operator]
    (root / "Shop").mkdir(parents=True)
    (root / "Shop" / "total_price.py").write_text(BASE)
    (root / "Shop" / "price_sum.py").write_text(SAME["another function name"])
    (root / "Shop" / "other.py").write_text(
        DIFFERENT["another builtin"].replace("total_price", "other")
    )
    found = Scanner(root, cache_file=None).scan().functions
    prints = {info.name: fingerprint_of(info) for info in found.values()}
    assert prints["total_price"] == prints["price_sum"] == fp(BASE)
    assert prints["other"] != prints["total_price"]
    assert not any(info.fingerprint for info in found.values())  # a scan does not walk for it


# -- what the function's file defines at module level (a reviewer's finding) -------------
def mfp(code: str) -> str:
    """The fingerprint of the file's last function (the others are helpers)."""
    name = code.rsplit("def ", 1)[1].split("(", 1)[0].strip()
    return fingerprint(code, name)


MODULE_BASE = '''
"""Geometry helpers."""
import math

FACTOR = 2


def _scale(x):
    return x * FACTOR


def area(r):
    return _scale(math.pi * r * r)
'''

MODULE_DIFFERENT = {
    "another module behind the same import name": MODULE_BASE.replace(
        "import math", "import cmath as math"
    ),
    "another module-level constant": MODULE_BASE.replace("FACTOR = 2", "FACTOR = 3"),
    "a helper that does something else": MODULE_BASE.replace(
        "return x * FACTOR", "return x + FACTOR"
    ),
    "a module-level statement more": MODULE_BASE.replace("FACTOR = 2", "FACTOR = 2\nmath.pi = 3"),
}

MODULE_SAME = {
    "another function name": MODULE_BASE.replace("def area", "def disc_area"),
    "another module docstring": MODULE_BASE.replace("Geometry helpers.", "Shapes."),
    "other locals in the helper": MODULE_BASE.replace(
        "def _scale(x):\n    return x * FACTOR", "def _scale(value):\n    return value * FACTOR"
    ),
    "annotations on the constant": MODULE_BASE.replace("FACTOR = 2", "FACTOR: int = 2"),
}


@pytest.mark.parametrize("variant", sorted(MODULE_DIFFERENT))
def test_module_level_definitions_count(variant: str) -> None:
    code = MODULE_DIFFERENT[variant]
    assert code != MODULE_BASE  # the replacement took
    assert mfp(code) != mfp(MODULE_BASE)


@pytest.mark.parametrize("variant", sorted(MODULE_SAME))
def test_module_level_definitions_are_normalized(variant: str) -> None:
    code = MODULE_SAME[variant]
    assert code != MODULE_BASE
    assert mfp(code) == mfp(MODULE_BASE)


def test_the_own_name_is_ignored_at_module_level_too() -> None:
    a = "def f(x):\n    return x + 1\n\nALIAS = f\n"
    b = "def g(x):\n    return x + 1\n\nALIAS = g\n"
    assert fingerprint(a, "f") == fingerprint(b, "g")


def test_a_scan_counts_the_module_level_definitions(tmp_path: pytest.TempPathFactory) -> None:
    root = tmp_path / "pkgs"  # type: ignore[operator]
    (root / "Geo").mkdir(parents=True)
    (root / "Geo" / "area.py").write_text(MODULE_BASE)
    (root / "Geo" / "carea.py").write_text(
        MODULE_BASE.replace("import math", "import cmath as math").replace("def area", "def carea")
    )
    (root / "Geo" / "disc_area.py").write_text(MODULE_BASE.replace("def area", "def disc_area"))
    found = Scanner(root, cache_file=None).scan().functions
    prints = {info.name: fingerprint_of(info) for info in found.values()}
    assert all(p.startswith("m2:") for p in prints.values())
    assert prints["area"] == prints["disc_area"]
    assert prints["area"] != prints["carea"]
    assert prints["area"] == mfp(MODULE_BASE)


def test_an_older_fingerprint_is_recomputed() -> None:
    code = MODULE_BASE
    old = FunctionInfo(
        package="Geo",
        name="area",
        code=code,
        md5="0" * 32,
        sha256="0" * 64,
        size=len(code),
        line_count=code.count("\n"),
        modified_time="2024-01-01 00:00:00",
        fingerprint="ab" * 32,  # a version 1 fingerprint: no prefix
    )
    assert fingerprint_of(old) == mfp(code)
