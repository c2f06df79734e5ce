"""A wrapper that misbehaves on request (``params["do"]``), for the server's isolation tests.

hang: never returns; crash: exits the process; segv: dereferences NULL; hog: allocates
far past any sane memory cap; anything else: answers with this process's pid, so a test
can tell a replaced process from the first one.
"""

import ctypes
import os
import time

try:
    from aiges_embed import DataListCls, Response, ResponseData
except ImportError:
    from aiges.dto import DataListCls, Response, ResponseData

from aiges.sdk import StringBodyField, StringParamField, WrapperBase


class UserRequest:
    do = StringParamField(key="do", enums=["hang", "crash", "segv", "hog", "pid"], value="pid")


class UserResponse:
    result = StringBodyField(key="result")


class Wrapper(WrapperBase):
    serviceId = "misbehave"
    version = "v1"
    requestCls = UserRequest()
    responseCls = UserResponse()

    def wrapperInit(self, config) -> int:
        return 0

    def wrapperOnceExec(self, params, reqData: DataListCls, persId: int = 0):
        what = params.get("do", "pid")
        if what == "hang":
            time.sleep(3600)
        elif what == "crash":
            os._exit(7)
        elif what == "segv":
            ctypes.string_at(0)
        elif what == "hog":
            hoard = [bytearray(64 * 1024 * 1024) for _ in range(64)]  # 4 GiB
            return len(hoard)
        res = Response()
        res.list = [ResponseData("result", str(os.getpid()).encode(), 0, 0, 3)]
        return res
