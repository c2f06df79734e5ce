"""An AIGES-style wrapper as users write it: upper-cases the ``text`` payload.

Written against the SDK (it also runs under the reference ``aiges`` package): the
``try: aiges_embed / except: aiges.dto`` import, field descriptors, the older
``wrapperOnceExec(self, params, reqData, persId=0)`` signature with no tag. The ``sleep``
parameter (seconds) slows a call down for concurrency tests.
"""

import time

try:
    from aiges_embed import DataListCls, Response, ResponseData
except ImportError:
    from aiges.dto import DataListCls, Response, ResponseData

from aiges.sdk import StringBodyField, StringParamField, WrapperBase
from aiges.utils.log import log


class UserRequest:
    mode = StringParamField(key="mode", enums=["upper", "lower"], value="upper")
    sleep = StringParamField(key="sleep", value="0")
    text = StringBodyField(key="text", value=b"hello")


class UserResponse:
    result = StringBodyField(key="result")


class Wrapper(WrapperBase):
    serviceId = "echo"
    version = "v1"
    requestCls = UserRequest()
    responseCls = UserResponse()

    def wrapperInit(self, config: {}) -> int:
        log.info("echo init with %s", config)
        self.prefix = config.get("prefix", "")
        return 0

    def wrapperOnceExec(self, params: {}, reqData: DataListCls, persId: int = 0) -> Response:
        delay = float(params.get("sleep", "0") or 0)
        if delay:
            time.sleep(delay)
        node = reqData.get("text")
        text = node.data.decode("utf-8") if node is not None else ""
        out = text.lower() if params.get("mode") == "lower" else text.upper()
        res = Response()
        item = ResponseData()
        item.key = "result"
        item.setDataType(0)
        item.status = 3
        item.setData((self.prefix + out).encode("utf-8"))
        res.list = [item]
        return res

    def wrapperFini(cls) -> int:
        return 0

    def wrapperError(cls, ret: int) -> str:
        return f"echo error {ret}"
