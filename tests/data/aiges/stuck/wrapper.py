"""A wrapper whose calls never end, for the plugin's exit-time tests (``params["do"]``).

hang: sleeps for an hour holding the model lock (which ``wrapperFini`` also takes, so fini
hangs too); busy: spins in pure Python forever; anything else: answers ``ok``.
``wrapperCreate`` with ``do=hang`` never returns either. Each stuck call first creates the
file named by ``params["marker"]``, so a test knows the call is running.
"""

import threading
import time
from pathlib import Path

try:
    from aiges_embed import DataListCls, Response, ResponseData, SessionCreateResponse
except ImportError:
    from aiges.dto import DataListCls, Response, ResponseData, SessionCreateResponse

from aiges.sdk import StringBodyField, StringParamField, WrapperBase

MODEL_LOCK = threading.Lock()


class UserRequest:
    do = StringParamField(key="do")
    text = StringBodyField(key="text")


class UserResponse:
    result = StringBodyField(key="result")


def _stuck(params) -> None:
    marker = params.get("marker")
    what = params.get("do")
    if what == "hang":
        with MODEL_LOCK:
            if marker:
                Path(marker).touch()
            time.sleep(3600)
    elif what == "busy":
        if marker:
            Path(marker).touch()
        n = 0
        while True:
            n += 1


class Wrapper(WrapperBase):
    serviceId = "stuck"
    version = "v1"
    requestCls = UserRequest()
    responseCls = UserResponse()

    def wrapperInit(self, config) -> int:
        return 0

    def wrapperOnceExec(self, params, reqData: DataListCls, usrTag: str = "", persId: int = 0):
        _stuck(params)
        res = Response()
        res.list = [ResponseData("result", b"ok", 2, 0, 3)]
        return res

    def wrapperCreate(self, params, sid, persId=0):
        _stuck(params)
        return SessionCreateResponse(handle=sid or "h", error_code=0)

    def wrapperFini(self) -> int:
        with MODEL_LOCK:
            return 0
