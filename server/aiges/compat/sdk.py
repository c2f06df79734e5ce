"""``aiges.sdk``: ``WrapperBase`` and the schema field descriptors wrapper files declare.

Fields are plain descriptors: a ``requestCls`` instance whose class attributes are
``*ParamField`` (HTTP ``parameter``) and ``*BodyField`` (HTTP ``payload``) objects, and a
``responseCls`` listing the outputs. :mod:`server.aiges.schema` turns them into the
``wrapperSchema`` JSON; nothing here depends on pydantic.
"""

from __future__ import annotations

import logging
from typing import Any

from server.aiges.compat import types as aiges_types
from server.aiges.compat.dto import DataListCls, Response, SessionCreateResponse
from server.aiges.compat.stream import SessionManager

__all__ = [
    "AudioBodyField",
    "BooleanParamField",
    "Field",
    "ImageBodyField",
    "IntegerParamField",
    "JsonBodyField",
    "NumberParamField",
    "ParamField",
    "PayloadField",
    "StringBodyField",
    "StringParamField",
    "WrapperBase",
]

log = logging.getLogger(__name__)


class Field:
    """A declared input or output; ``data_type`` is an AIGES type code or a JSON type name."""

    def __init__(self, key: str, data_type: int | str) -> None:
        self.key = key
        self.data_type = data_type
        self.description = ""
        self.title = ""

    def __repr__(self) -> str:
        return f"<{type(self).__name__}:{self.key}>"


class ParamField(Field):
    """A scalar request parameter (``parameter.<svc>.<key>``)."""

    required: bool = False


class PayloadField(Field):
    """A data item (``payload.<key>``) of a request or a response."""

    status: int = aiges_types.DataOnce
    encoding: str = ""


class StringParamField(ParamField):
    def __init__(
        self,
        key: str,
        minLength: int = 0,
        maxLength: int = 1024,
        enums: list[str] | None = None,
        required: bool = False,
        value: str = "",
        description: str = "",
        title: str = "",
    ) -> None:
        super().__init__(key, "string")
        self.min_length = minLength
        self.max_length = maxLength
        self.enums = list(enums or [])
        self.required = required
        self.value = value
        self.description = description
        self.title = title


class NumberParamField(ParamField):
    json_type = "number"

    def __init__(
        self,
        key: str,
        minimum: float = 0,
        maximum: float = 100,
        enums: list[float] | None = None,
        required: bool = False,
        value: float = 0,
        description: str = "",
        title: str = "",
    ) -> None:
        super().__init__(key, self.json_type)
        self.minimum = minimum
        self.maximum = maximum
        self.enums = list(enums or [])
        self.required = required
        self.value = value
        self.description = description
        self.title = title


class IntegerParamField(NumberParamField):
    json_type = "integer"


class BooleanParamField(ParamField):
    def __init__(
        self,
        key: str,
        title: str = "",
        default: bool = False,
        required: bool = False,
        description: str = "",
    ) -> None:
        super().__init__(key, "boolean")
        self.title = title
        self.default = default
        self.value = default
        self.required = required
        self.description = description


class StringBodyField(PayloadField):
    def __init__(
        self,
        key: str,
        value: bytes | str = b" ",
        need_base64: bool = False,
        encoding: str = "utf8",
        format: str = "plain",
        compress: str = "raw",
        status: int = aiges_types.DataOnce,
    ) -> None:
        super().__init__(key, aiges_types.STRING)
        self.value = value
        self.need_base64 = need_base64
        self.encoding = encoding
        self.format = format
        self.compress = compress
        self.status = status


class JsonBodyField(StringBodyField):
    def __init__(self, key: str, value: bytes | str = "", need_base64: bool = False) -> None:
        super().__init__(key, value, need_base64, encoding="utf8", format="json")


class AudioBodyField(PayloadField):
    def __init__(
        self,
        key: str,
        path: str = "",
        encoding: str = "raw",
        format: str = "plain",
        compress: str = "raw",
        status: int = aiges_types.DataOnce,
        sample_rate: int = 16000,
        channels: int = 1,
        bit_depth: int = 16,
    ) -> None:
        super().__init__(key, aiges_types.AUDIO)
        self.path = path
        self.encoding = encoding
        self.format = format
        self.compress = compress
        self.status = status
        self.sample_rate = sample_rate
        self.channels = channels
        self.bit_depth = bit_depth


class ImageBodyField(PayloadField):
    def __init__(
        self,
        key: str,
        path: str = "",
        need_base64: bool = False,
        encoding: str = "jpg",
        status: int = aiges_types.DataOnce,
    ) -> None:
        super().__init__(key, aiges_types.IMAGE)
        self.path = path
        self.need_base64 = need_base64
        self.encoding = encoding
        self.status = status


class WrapperBase:
    """Base of a user's ``Wrapper``: default methods and the ``self.session`` pool helper."""

    serviceId: str = "wrapper"
    version: str = "v1"
    requestCls: Any = None
    responseCls: Any = None
    config: dict[str, Any] = {}  # noqa: RUF012 - class-level default the SDK also exposes

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.session = SessionManager()

    def wrapperInit(self, config: dict[str, Any]) -> int:
        return 0

    def wrapperFini(self) -> int:
        return 0

    def wrapperError(self, ret: int) -> str:
        return f"user error code {ret}"

    def wrapperLoadRes(self, reqData: DataListCls, resId: int) -> int:
        return 0

    def wrapperUnloadRes(self, resId: int) -> int:
        return 0

    def wrapperOnceExec(
        self, params: dict[str, Any], reqData: DataListCls, usrTag: str = "", persId: int = 0
    ) -> Response:
        raise NotImplementedError(f"{type(self).__name__} does not implement wrapperOnceExec")

    def wrapperCreate(
        self, params: dict[str, Any], sid: str, persId: int = 0, userTag: str = ""
    ) -> SessionCreateResponse:
        raise NotImplementedError(f"{type(self).__name__} does not implement wrapperCreate")

    def wrapperWrite(self, handle: str, reqData: DataListCls, sid: str = "") -> int:
        raise NotImplementedError(f"{type(self).__name__} does not implement wrapperWrite")

    def wrapperRead(self, handle: str) -> list[Any]:
        return []

    def wrapperDestroy(self, handle: str) -> int:
        slot = self.session.get_session(handle)
        if slot is not None:
            slot.reset()
        return 0
