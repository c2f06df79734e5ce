"""A wrapper whose results break the AIGES value ranges on request (``params["bad"]``).

ret_big: error_code 2**40; ret_text: error_code "oops"; type_big: type 2**33; type_neg:
type -1; type_7: type 7; status_9: status 9; desc_mixed: a desc
with bytes and int values (valid: sent as strings); anything else: a plain text result.
Both plugin servers must answer the out-of-range ones with 30003 and no items.
"""

try:
    from aiges_embed import DataListCls, Response, ResponseData
except ImportError:
    from aiges.dto import DataListCls, Response, ResponseData

from aiges.sdk import StringBodyField, StringParamField, WrapperBase


class UserRequest:
    bad = StringParamField(key="bad")
    text = StringBodyField(key="text")


class UserResponse:
    result = StringBodyField(key="result")


class Wrapper(WrapperBase):
    serviceId = "outofrange"
    version = "v1"
    requestCls = UserRequest()
    responseCls = UserResponse()

    def wrapperInit(self, config) -> int:
        return 0

    def wrapperOnceExec(self, params, reqData: DataListCls, usrTag: str = "", persId: int = 0):
        bad = params.get("bad", "")
        item = ResponseData("result", b"ok", 2, 0, 3)
        res = Response()
        res.list = [item]
        if bad == "ret_big":
            return res.response_err(2**40)
        if bad == "ret_text":
            return res.response_err("oops")
        if bad == "type_big":
            item.type = 2**33
        elif bad == "type_neg":
            item.type = -1
        elif bad == "type_7":
            item.type = 7
        elif bad == "status_9":
            item.status = 9
        elif bad == "desc_mixed":
            item.desc = {"raw": b"bytes", "n": 7}
        return res
