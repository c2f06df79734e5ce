"""A wrapper that fails on request, the ways real wrappers do (``params["fail"]``).

raise: raises; none: returns None; empty: returns an empty list; code: sets error_code
7001 with a partial result; typed: succeeds with an image-typed item carrying ``desc``.
"""

try:
    from aiges_embed import DataListCls, Response, ResponseData
except ImportError:
    from aiges.dto import DataListCls, Response, ResponseData

from aiges.sdk import StringBodyField, StringParamField, WrapperBase


class UserRequest:
    fail = StringParamField(key="fail", enums=["raise", "none", "empty", "code", "typed"])
    text = StringBodyField(key="text")


class UserResponse:
    result = StringBodyField(key="result")


class Wrapper(WrapperBase):
    serviceId = "failing"
    version = "v2"
    requestCls = UserRequest()
    responseCls = UserResponse()

    def wrapperInit(self, config) -> int:
        return 0

    def wrapperOnceExec(self, params, reqData: DataListCls, usrTag: str = "", persId: int = 0):
        mode = params.get("fail", "")
        if mode == "raise":
            raise RuntimeError("the model fell over")
        if mode == "none":
            return None
        res = Response()
        if mode == "empty":
            res.list = []
            return res
        if mode == "code":
            res.list = [ResponseData("partial", b"half", 4, 0, 3)]
            return res.response_err(7001)
        if mode == "typed":
            item = ResponseData("result", b"\x89PNG", 4, 2, 3)
            item.desc = {"encoding": "png", "tag": usrTag}
            res.list = [item]
            return res
        res.list = [ResponseData("result", b"ok", 2, 0, 3)]
        return res
