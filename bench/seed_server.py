"""The seed's minimal tornado server (seed 004, section 4), rebuilt as the benchmark baseline.

``IndexHandler`` is the seed's; ``GFGoHandler`` does what the seed's ``/gfgo/`` did:
``json.loads`` the body, follow the ``getattr`` chain from the functions package to
``pack_func``, call it with ``kwargs``, ``json.dumps`` the result. No validation, no
auth, no metrics, no access log (tornado's logging is not configured, as in the seed).
The seed's ``print`` calls are left out so the baseline is as fast as it can be.

    python bench/seed_server.py --port 8001 --packages packages
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import types

import tornado.httpserver
import tornado.ioloop
import tornado.web


def get_func_by_para(some_func_pack, full_func_name):  # the seed's getattr chain
    obj = some_func_pack
    for part in full_func_name.split("."):
        obj = getattr(obj, part)
    return obj


class IndexHandler(tornado.web.RequestHandler):
    def get(self):
        self.write("【GET】This is Website for Internal API System")
        self.write("Please Refer to API document")

    def post(self):
        some_dict = json.loads(self.request.body)
        msg_dict = {
            "info": "【POST】This is Website for Internal API System",
            "input_dict": some_dict,
        }
        self.write(json.dumps(msg_dict))


class GFGoHandler(tornado.web.RequestHandler):
    def initialize(self, funcs):
        self.funcs = funcs

    def post(self):
        some_dict = json.loads(self.request.body)
        func = get_func_by_para(self.funcs, some_dict["pack_func"])
        result = func(**some_dict.get("kwargs", {}))
        self.write(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--packages", default="packages")
    args = parser.parse_args()
    sys.path.insert(0, args.packages)
    funcs = types.ModuleType("GlobalFunc")  # the seed's `import GlobalFunc as funcs`
    funcs.Base = importlib.import_module("Base")  # type: ignore[attr-defined]
    app = tornado.web.Application(
        [(r"/", IndexHandler), (r"/gfgo/", GFGoHandler, {"funcs": funcs})]
    )
    server = tornado.httpserver.HTTPServer(app)
    server.listen(args.port, "127.0.0.1")
    print(f"seed serving http://127.0.0.1:{args.port}/", flush=True)
    tornado.ioloop.IOLoop.current().start()


if __name__ == "__main__":
    main()
