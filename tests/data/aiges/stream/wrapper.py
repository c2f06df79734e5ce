"""A streaming wrapper in the style of the public demos: a session pool of
``StreamHandleThread`` workers, ``callback`` pushes, ``getFileLogger``, ``aiges.core.types``
constants, and the older ``wrapperCreate(cls, params, sid, persId=0)`` signature.

Each written frame comes back upper-cased with its status; a frame with status 2 (last)
is answered by a final frame with status 2.
"""

try:
    from aiges_embed import DataListCls, Response, ResponseData, SessionCreateResponse, callback
except ImportError:
    from aiges.callback import callback
    from aiges.dto import DataListCls, Response, ResponseData, SessionCreateResponse

from aiges.core.types import DataEnd, DataText
from aiges.sdk import StringBodyField, StringParamField, WrapperBase
from aiges.stream import StreamHandleThread
from aiges.utils.log import getFileLogger

log = getFileLogger()


class UserRequest:
    lang = StringParamField(key="lang", value="en")
    audio = StringBodyField(key="text")


class UserResponse:
    result = StringBodyField(key="result")


class SessionThread(StreamHandleThread):
    def __init__(self, session_thread, in_q, out_q):
        super().__init__(session_thread, in_q, out_q)
        self.model = None

    def init_model(self, *args, **kwargs):
        self.model = str.upper

    def run(self):
        self.init_model()
        while not self.is_stopping:
            req = self.in_q.get()
            for node in req.list:
                res = Response()
                item = ResponseData()
                item.key = "result"
                item.type = DataText
                item.status = node.status
                prefix = self.session_thread.params.get("lang", "")
                item.setData((prefix + ":" + self.model(node.data.decode())).encode())
                res.list = [item]
                self.session_thread.callback_fn(res, self.session_thread.sid)
                if node.status == DataEnd:
                    log.info("session %s finished", self.session_thread.sid)


class Wrapper(WrapperBase):
    serviceId = "stream"
    version = "v1"
    requestCls = UserRequest()
    responseCls = UserResponse()

    def wrapperInit(cls, config) -> int:
        cls.session.init_wrapper_config(config)
        cls.session.init_handle_pool("thread", int(config.get("pool", 2)), SessionThread)
        return 0

    def wrapperCreate(cls, params, sid, persId=0):
        handle = cls.session.get_idle_handle()
        if not handle:
            return SessionCreateResponse(error_code=10012)
        s = cls.session.get_session(handle)
        s.setup_params(params)
        s.setup_sid(sid)
        s.setup_callback_fn(callback)
        return SessionCreateResponse(handle=handle, error_code=0)

    def wrapperWrite(cls, handle, req: DataListCls, sid) -> int:
        s = cls.session.get_session(handle)
        if s is None:
            return 10013
        s.in_q.put(req)
        return 0

    def wrapperDestroy(cls, handle) -> int:
        s = cls.session.get_session(handle)
        if s is not None:
            s.reset()
        return 0
