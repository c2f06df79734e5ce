"""The wrapperSchema document built from field descriptors and from a function signature."""

from __future__ import annotations

import json
from typing import Any

from server.aiges import compat

compat.install()

from aiges.sdk import (  # noqa: E402
    AudioBodyField,
    BooleanParamField,
    ImageBodyField,
    IntegerParamField,
    NumberParamField,
    StringBodyField,
    StringParamField,
)

from server.aiges.schema import field_descriptors, function_schema, wrapper_schema  # noqa: E402


class Req:
    mode = StringParamField(key="mode", enums=["a", "b"], value="a", required=True)
    n = IntegerParamField(key="n", minimum=1, maximum=5, value=2)
    x = NumberParamField(key="x", minimum=0.5, maximum=1.5)
    flag = BooleanParamField(key="flag", default=True)
    img = ImageBodyField(key="img", encoding="png")
    wav = AudioBodyField(key="wav")
    txt = StringBodyField(key="txt")


class Resp:
    out = StringBodyField(key="out", format="json")
    pic = ImageBodyField(key="pic")


class W:
    serviceId = "svc"
    version = "v2"
    requestCls = Req()
    responseCls = Resp()


def _params(doc: dict[str, Any], svc: str) -> dict[str, Any]:
    return doc["schemainput"]["properties"]["parameter"]["properties"][svc]


def test_meta_lists_inputs_outputs_and_the_route() -> None:
    doc = wrapper_schema(W)
    json.dumps(doc)
    meta = doc["meta"]
    assert meta["route"] == "/v2/private/svc" and meta["serviceId"] == "svc"
    assert meta["svc"]["input"] == {
        "img": {"dataType": "image"},
        "wav": {"dataType": "audio"},
        "txt": {"dataType": "text"},
    }
    assert meta["svc"]["accept"] == {"out": {"dataType": "text"}, "pic": {"dataType": "image"}}


def test_parameters_carry_types_limits_defaults_and_required() -> None:
    params = _params(wrapper_schema(W()), "svc")
    props = params["properties"]
    assert props["mode"] == {
        "type": "string",
        "minLength": 0,
        "maxLength": 1024,
        "enum": ["a", "b"],
        "defaultVal": "a",
    }
    assert props["n"] == {"type": "integer", "minimum": 1, "maximum": 5, "defaultVal": 2}
    assert props["x"]["type"] == "number" and props["flag"] == {
        "type": "boolean",
        "defaultVal": True,
    }
    assert params["required"] == ["mode"]
    assert (
        props["out"]["type"] == "object" and "json" in props["out"]["properties"]["format"]["enum"]
    )


def test_payload_schemas_match_the_data_type() -> None:
    doc = wrapper_schema(W)
    payload = doc["schemainput"]["properties"]["payload"]["properties"]
    assert (
        "image" in payload["img"]["properties"]
        and "png" in payload["img"]["properties"]["encoding"]["enum"]
    )
    assert "audio" in payload["wav"]["properties"] and "sample_rate" in payload["wav"]["properties"]
    assert "text" in payload["txt"]["properties"]
    out = doc["schemaoutput"]["properties"]["payload"]["properties"]
    assert set(out) == {"out", "pic"}


def test_instance_attributes_count_as_fields_and_other_attributes_do_not() -> None:
    holder = Req()
    holder.extra = StringBodyField(key="extra")  # type: ignore[attr-defined]
    keys = [f.key for f in field_descriptors(holder)]
    assert keys == ["mode", "n", "x", "flag", "img", "wav", "txt", "extra"]
    assert field_descriptors(None) == []


def test_a_wrapper_without_descriptors_still_gets_a_valid_schema() -> None:
    class Bare:
        serviceId = "bare"

    doc = wrapper_schema(Bare)
    assert doc["meta"]["route"] == "/v1/private/bare"
    assert doc["meta"]["bare"] == {"input": {}, "accept": {}}


def test_function_schema_declares_kwargs_in_and_result_out() -> None:
    doc = function_schema("Base.f", {"a": {"type": "integer"}}, [])
    assert doc["meta"]["Base.f"] == {
        "input": {"kwargs": {"dataType": "text"}},
        "accept": {"result": {"dataType": "text"}},
    }
    assert _params(doc, "Base.f")["properties"]["a"] == {"type": "integer"}
