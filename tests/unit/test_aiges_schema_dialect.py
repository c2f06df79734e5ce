"""Every schema we emit uses only the AIGES loader's schema keywords (issue 9 item 11).

The real loader exits at start-up on a keyword outside its dialect (a plain ``default``
was the one that stopped it). Walked here: each function of ``packages/Base`` and of
``tests/data/funcs`` (signatures as the scanner reads them, as ``gf serve`` and the
function host see them), a set of annotated functions covering the annotation shapes,
the wrapper of a ``gf aiges create`` project, and the test wrappers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import pytest

from globalfunc.record import Param
from globalfunc.scan import Scanner
from server.aiges import compat
from server.aiges.function_host import FunctionEngine, params_of
from server.aiges.scaffold import create_project
from server.aiges.schema import (
    DIALECT_KEYWORDS,
    dialect_violations,
    standard_json_schema,
    wrapper_schema,
)
from server.aiges.wrapper_host import WrapperEngine

REPO = Path(__file__).resolve().parents[2]
ALLOWED = {
    "type",
    "properties",
    "required",
    "enum",
    "items",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "title",
    "description",
    "examples",
    "$schema",
    "oneOf",
    "defaultVal",
}


def keywords(node: Any) -> set[str]:
    """Every keyword used in a schema tree (property names are names, not keywords)."""
    if not isinstance(node, dict):
        return set()
    found = set(node)
    for key, value in node.items():
        if key == "properties":
            for sub in value.values():
                found |= keywords(sub)
        elif key in ("items", "oneOf"):
            for sub in value if isinstance(value, list) else [value]:
                found |= keywords(sub)
    return found


def assert_dialect(doc: dict[str, Any]) -> None:
    used = keywords(doc["schemainput"]) | keywords(doc["schemaoutput"])
    assert used <= ALLOWED, sorted(used - ALLOWED)
    assert dialect_violations(doc) == []


def function_doc(call_name: str, params: Sequence[Param]) -> dict[str, Any]:
    engine = FunctionEngine(call_name, lambda _name: (lambda **kw: None, list(params)))
    assert engine.init({}) == 0
    return engine.schema(call_name)


def scanned(root: Path, package: str) -> list[tuple[str, list[Param]]]:
    scanner = Scanner(root)
    out = []
    for file in sorted((root / package).glob("*.py")):
        if file.name.startswith("_"):
            continue
        info = scanner.scan_file(file)
        out.append((f"{info.package}.{info.name}", list(info.params)))
    return out


BASE = scanned(REPO / "packages", "Base")
TEST_FUNCS = scanned(REPO / "tests" / "data" / "funcs", "Codec") + scanned(
    REPO / "tests" / "data" / "funcs", "Misbehave"
)


def test_the_module_list_is_the_documented_list() -> None:
    # ALLOWED is copied from the AIGES compatibility notes (section 6), not from the module.
    assert frozenset(ALLOWED) == DIALECT_KEYWORDS


def test_packages_base_has_functions_to_walk() -> None:
    assert len(BASE) >= 10 and any(p for _, p in BASE if any(q.default for q in p))


@pytest.mark.parametrize(
    ("name", "params"), BASE + TEST_FUNCS, ids=[n for n, _ in BASE + TEST_FUNCS]
)
def test_registry_function_schemas_use_only_dialect_keywords(
    name: str, params: list[Param]
) -> None:
    assert_dialect(function_doc(name, params))


def annotated_a(x: int = 3, y: float = 0.5, flag: bool = True, s: str = "upper") -> None:
    """Scalars with defaults."""


def annotated_b(items: list[int] | None = None, mapping: dict[str, Any] | None = None) -> None:
    """Containers, optional."""


def annotated_c(mode: Literal["a", "b"] = "a", u: int | str = 1, *args: Any, **kw: Any) -> None:
    """A literal, a union, var-positional and var-keyword."""


def annotated_d(data: bytes = b"x", t: tuple[int, ...] = (1, 2), when: str | None = None) -> None:
    """Bytes and tuple defaults (not JSON scalars), an optional string."""


def annotated_e(a, b=None, /, c=[1], *, d={"k": 1}, e=-1.5e3) -> None:  # type: ignore[no-untyped-def]  # noqa: B006
    """No annotations: positional-only, list/dict defaults, keyword-only."""


# The typing-module spellings older function files use, as the scanner records them.
TYPING_FORMS = [
    Param("o", "positional_or_keyword", "None", "Optional[int]"),
    Param("u", "positional_or_keyword", "0", "Union[int, float]"),
    Param("l", "keyword_only", "None", "Optional[List[Dict[str, Any]]]"),
    Param("n", "positional_or_keyword", "float('nan')", "float"),
    Param("k", "positional_or_keyword", "'x'", "typing.Literal['x', 'y']"),
    Param("z", "positional_or_keyword", None, "np.ndarray"),
]


ANNOTATED: list[Callable[..., Any]] = [
    annotated_a,
    annotated_b,
    annotated_c,
    annotated_d,
    annotated_e,
]


@pytest.mark.parametrize("func", ANNOTATED, ids=[f.__name__ for f in ANNOTATED])
def test_annotated_function_schemas_use_only_dialect_keywords(func: Callable[..., Any]) -> None:
    doc = function_doc(f"Pkg.{func.__name__}", params_of(func))
    assert_dialect(doc)


def test_typing_module_annotations_use_only_dialect_keywords() -> None:
    assert_dialect(function_doc("Pkg.typing_forms", TYPING_FORMS))


def test_defaults_are_written_as_defaultval() -> None:
    doc = function_doc("Pkg.annotated_a", params_of(annotated_a))
    props = doc["schemainput"]["properties"]["parameter"]["properties"]["Pkg.annotated_a"][
        "properties"
    ]
    assert props["x"]["defaultVal"] == 3 and props["s"]["defaultVal"] == "upper"
    assert props["flag"] == {**props["flag"], "type": "boolean", "defaultVal": True}
    # and back to ordinary JSON Schema for OpenAPI
    plain = standard_json_schema(props["x"])
    assert plain["default"] == 3 and "defaultVal" not in plain


def test_scaffold_wrapper_schema_uses_only_dialect_keywords(tmp_path: Path) -> None:
    root = create_project("dialect", tmp_path)
    engine = WrapperEngine(root / "wrapper" / "wrapper.py")
    assert engine.init({"greeting": ""}) == 0, engine.load_error
    try:
        doc = engine.schema("")
    finally:
        engine.fini()
    mode = doc["schemainput"]["properties"]["parameter"]["properties"]["dialect"]["properties"][
        "mode"
    ]
    assert mode["defaultVal"] == "upper"  # the default the loader choked on, in its own keyword
    assert_dialect(doc)


@pytest.mark.parametrize("name", ["echo", "failing", "stream", "misbehave"])
def test_test_wrapper_schemas_use_only_dialect_keywords(name: str) -> None:
    engine = WrapperEngine(REPO / "tests" / "data" / "aiges" / name / "wrapper.py")
    assert engine.init({}) == 0, engine.load_error
    try:
        assert_dialect(engine.schema(""))
    finally:
        engine.fini()


def test_every_sdk_field_kind_stays_in_the_dialect() -> None:
    compat.install()
    from aiges.sdk import (
        AudioBodyField,
        BooleanParamField,
        ImageBodyField,
        IntegerParamField,
        JsonBodyField,
        NumberParamField,
        StringBodyField,
        StringParamField,
    )

    class Req:
        s = StringParamField(key="s", enums=["x", "y"], value="x", required=True)
        i = IntegerParamField(key="i", minimum=1, maximum=9, value=4)
        n = NumberParamField(key="n", minimum=0.1, maximum=2.0, value=1.5)
        b = BooleanParamField(key="b", default=False)
        img = ImageBodyField(key="img", encoding="png")
        wav = AudioBodyField(key="wav")
        js = JsonBodyField(key="js")
        txt = StringBodyField(key="txt")

    class Resp:
        out = StringBodyField(key="out")
        pic = ImageBodyField(key="pic")

    class W:
        serviceId = "kinds"
        requestCls = Req()
        responseCls = Resp()

    doc = wrapper_schema(W)
    assert_dialect(doc)
    props = doc["schemainput"]["properties"]["parameter"]["properties"]["kinds"]["properties"]
    assert props["b"]["defaultVal"] is False and props["i"]["defaultVal"] == 4


def test_the_checker_names_each_foreign_keyword() -> None:
    bad = {
        "schemainput": {
            "type": "object",
            "properties": {
                "default": {
                    "type": "string",
                    "default": "upper",
                },  # a property named default is fine
                "n": {"type": "number", "exclusiveMinimum": 0, "nullable": True},
                "l": {"type": "array", "items": {"anyOf": [{"type": "string"}]}},
            },
        },
        "schemaoutput": {"type": ["string", "null"]},
    }
    problems = dialect_violations(bad)
    joined = "\n".join(problems)
    assert "schemainput.properties.default.default: keyword 'default'" in joined
    assert "use 'defaultVal'" in joined
    assert "'exclusiveMinimum'" in joined and "'nullable'" in joined
    assert "schemainput.properties.l.items.anyOf" in joined
    assert "schemaoutput.type: must be one type name" in joined
    assert len(problems) == 5
