"""A FastAPI + uvicorn equivalent of ``POST /gfgo/`` for the benchmark.

A pydantic request model, the same getattr-chain lookup of ``pack_func`` in the
functions package, the result returned as JSON. uvicorn runs with its defaults (one
process, its access log on, written wherever stdout goes).

    python bench/fastapi_server.py --port 8002 --packages packages
"""

from __future__ import annotations

import argparse
import importlib
import sys
import types
from typing import Any

import uvicorn
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, Field


class GfgoBody(BaseModel):
    pack_func: str
    kwargs: dict[str, Any] = Field(default_factory=dict)


def build(packages: str) -> FastAPI:
    sys.path.insert(0, packages)
    funcs = types.ModuleType("GlobalFunc")
    funcs.Base = importlib.import_module("Base")  # type: ignore[attr-defined]
    app = FastAPI()

    @app.post("/gfgo/")
    async def gfgo(body: GfgoBody) -> Any:  # runs on the loop, like our inline mode
        obj: Any = funcs
        try:
            for part in body.pack_func.split("."):
                obj = getattr(obj, part)
        except AttributeError:
            raise HTTPException(status_code=404, detail="no such function") from None
        return obj(**body.kwargs)

    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8002)
    parser.add_argument("--packages", default="packages")
    args = parser.parse_args()
    print(f"fastapi serving http://127.0.0.1:{args.port}/", flush=True)
    uvicorn.run(build(args.packages), host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main()
