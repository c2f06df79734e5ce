"""The C fast path's two claims, measured in one run (issue 12).

(a) zero copy: a 64 MiB payload to a wrapper that reads its first and last byte, through
    ``libwrapper.so``'s ``wrapperExec`` (loaded with ctypes into this process, which it
    joins): request data as ``aiges_embed.Buffer`` views (the default) vs the same calls
    with ``wrapper.copy_request = true`` (each payload copied into ``bytes`` first).
    Target: the zero-copy path at least 20x faster.
(b) per-call cost of a trivial once exec (``tests/data/aiges/echo``, 11 bytes): the C test
    driver (``tests/native/driver.c bench``) calling ``wrapperExec``+``wrapperExecFree``
    sequentially, vs our gRPC plugin on the C++ server driven by the C++ client
    (``native/build/aiges-bench-client``, 1 in flight, as in bench_aiges.py).
    Target: the C ABI at most 0.1x.

(c) peak memory of one large request on each gRPC plugin server (C++ and grpcio): the
    plugin process's VmHWM (``/proc/PID/status``) before and after one ``--payload-mib``
    request to a wrapper that reads its first and last byte, driven by the loader client;
    a fresh plugin per run, median growth of ``--repeats`` runs.

``--write`` replaces this benchmark's section of bench/RESULTS.md. Needs the native parts
built (``pip install -e .`` with scripts/system-deps.sh done) and ``make native`` (client).
"""

from __future__ import annotations

import argparse
import ctypes
import itertools
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import bench_aiges  # noqa: E402

from server.aiges.client import LoaderClient, loader_env  # noqa: E402
from server.aiges.native import libwrapper_path  # noqa: E402
from server.aiges.proto import aiges_pb2  # noqa: E402

RESULTS = REPO / "bench" / "RESULTS.md"
SECTION = "## Native fast path (bench/bench_native.py)"
MIB = 1 << 20

FIRST_LAST = """
from aiges_embed import Response, ResponseData

class Wrapper:
    def wrapperInit(self, config):
        return 0

    def wrapperOnceExec(self, params, reqData):
        data = reqData.list[0].data
        return Response([ResponseData(key="ends", data=bytes([data[0], data[-1]]))])

    def wrapperFini(self):
        return 0
"""


PEAK_WRAPPER = """
from aiges.dto import Response, ResponseData

class Wrapper:
    def wrapperInit(self, config):
        return 0

    def wrapperOnceExec(self, params, reqData):
        data = reqData.list[0].data
        return Response([ResponseData(key="ends", data=bytes([data[0], data[-1]]))])

    def wrapperFini(self):
        return 0
"""


def _peak_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM in /proc/{pid}/status")


def _plugin_pid(client: LoaderClient) -> int:
    assert client.process is not None
    pid = client.process.pid  # bash -c execs a single command; else its one child
    if b"server.aiges" in Path(f"/proc/{pid}/cmdline").read_bytes():
        return pid
    return int(Path(f"/proc/{pid}/task/{pid}/children").read_text().split()[0])


def peak_growth(server: str, payload_mib: int, repeats: int) -> list[float]:
    """(c): MiB the plugin's VmHWM grows by for one request, per run (fresh plugin each)."""
    folder = Path(tempfile.mkdtemp(prefix="bench-native-peak-"))
    (folder / "wrapper.py").write_text(PEAK_WRAPPER)
    payload = bytearray(payload_mib * MIB)
    payload[0], payload[-1] = ord("A"), ord("Z")
    item = aiges_pb2.RequestData(key="data", data=bytes(payload), type=4, status=3)
    del payload
    command = f"{sys.executable} -m server.aiges --server {server} --wrapper {folder}"
    runs = []
    try:
        for _ in range(repeats):
            client = LoaderClient.start(
                command, env=loader_env(PYTHONPATH=str(REPO)), cwd=folder, timeout=30
            )
            try:
                if client.init() != 0:
                    raise RuntimeError(f"{server} plugin: wrapperInit failed")
                pid = _plugin_pid(client)
                client.once(items=[aiges_pb2.RequestData(key="data", data=b"ab", status=3)])
                before = _peak_mib(pid)
                result = client.once(items=[item], timeout=300)
                runs.append(_peak_mib(pid) - before)
                if [d.data for d in result.list] != [b"AZ"]:
                    raise RuntimeError(f"{server} plugin: wrong answer {result}")
            finally:
                client.shutdown()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return runs


class ParamList(ctypes.Structure):
    pass


ParamList._fields_ = [
    ("key", ctypes.c_char_p),
    ("value", ctypes.c_char_p),
    ("vlen", ctypes.c_uint),
    ("next", ctypes.POINTER(ParamList)),
]


class DataList(ctypes.Structure):
    pass


DataList._fields_ = [
    ("key", ctypes.c_char_p),
    ("data", ctypes.c_void_p),
    ("len", ctypes.c_uint),
    ("type", ctypes.c_int),
    ("status", ctypes.c_int),
    ("desc", ctypes.POINTER(ParamList)),
    ("next", ctypes.POINTER(DataList)),
]


def params(pairs: dict[str, str]) -> tuple[Any, list[ParamList]]:
    """A ParamList chain (and the nodes, to keep alive while it is used)."""
    nodes = [ParamList(k.encode(), v.encode(), len(v.encode()), None) for k, v in pairs.items()]
    for a, b in itertools.pairwise(nodes):
        a.next = ctypes.pointer(b)
    return (ctypes.pointer(nodes[0]) if nodes else None), nodes


def zero_copy(payload_mib: int, calls: int, repeats: int) -> dict[str, float]:
    """(a): median seconds per call, views vs copies, through wrapperExec in-process."""
    folder = Path(tempfile.mkdtemp(prefix="bench-native-"))
    (folder / "wrapper.py").write_text(FIRST_LAST)
    lib = ctypes.CDLL(str(libwrapper_path()))
    lib.wrapperExec.argtypes = [
        ctypes.c_char_p,
        ctypes.POINTER(ParamList),
        ctypes.POINTER(DataList),
        ctypes.POINTER(ctypes.POINTER(DataList)),
        ctypes.c_void_p,
        ctypes.c_int,
    ]
    lib.wrapperExecFree.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.POINTER(DataList))]
    lib.wrapperInit.argtypes = [ctypes.POINTER(ParamList)]
    payload = ctypes.create_string_buffer(payload_mib * MIB)
    payload[0], payload[len(payload) - 1] = b"A", b"Z"
    request = DataList(b"data", ctypes.cast(payload, ctypes.c_void_p), len(payload), 4, 3)
    out: dict[str, float] = {}
    try:
        for mode, copy in (("zero-copy", "false"), ("copy", "true")):
            cfg, keep = params(
                {"wrapper.file": str(folder / "wrapper.py"), "wrapper.copy_request": copy}
            )
            assert lib.wrapperInit(cfg) == 0, "wrapperInit failed"
            runs = []
            for _ in range(repeats):
                start = time.perf_counter()
                for _ in range(calls):
                    resp = ctypes.POINTER(DataList)()
                    assert (
                        lib.wrapperExec(
                            b"t", None, ctypes.byref(request), ctypes.byref(resp), None, 0
                        )
                        == 0
                    )
                    assert ctypes.string_at(resp.contents.data, 2) == b"AZ"
                    lib.wrapperExecFree(b"t", ctypes.byref(resp))
                runs.append((time.perf_counter() - start) / calls)
            lib.wrapperFini()
            out[mode] = statistics.median(runs)
            del keep
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return out


def c_abi_per_call(calls: int, repeats: int) -> float:
    """(b), C side: microseconds per wrapperExec+wrapperExecFree from the C driver."""
    work = Path(tempfile.mkdtemp(prefix="bench-native-"))
    try:
        driver = work / "driver"
        subprocess.run(
            [
                "cc",
                "-O2",
                "-o",
                str(driver),
                str(REPO / "tests/native/driver.c"),
                "-ldl",
                "-lpthread",
            ],
            check=True,
        )
        env = {
            **os.environ,
            "LD_LIBRARY_PATH": str(libwrapper_path().parent),
            "PYTHONPATH": str(REPO),
        }
        runs = []
        for _ in range(repeats):
            done = subprocess.run(
                [str(driver), "-p", "mode=upper", "bench", str(calls)],
                cwd=bench_aiges.WRAPPER,
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            runs.append(json.loads(done.stdout.strip().splitlines()[-1])["us_per_call"])
        return statistics.median(runs)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def grpc_per_call(calls: int, repeats: int) -> float:
    """(b), gRPC side: microseconds per round trip, C++ server + C++ client, 1 in flight."""
    bench_aiges.build_native(["native"], ["cpp"])
    runs = []
    for _ in range(repeats):
        client = bench_aiges.start_plugin("native", bench_aiges.ours_command(4, native=True))
        try:
            run = bench_aiges.measure_cpp(client, calls, 1)
        finally:
            bench_aiges.stop_plugin(client)
        runs.append(1e6 / run.calls_per_s)
    return statistics.median(runs)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--payload-mib", type=int, default=64)
    p.add_argument("--big-calls", type=int, default=20)
    p.add_argument("--calls", type=int, default=20000)
    p.add_argument("--grpc-calls", type=int, default=2000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--write", action="store_true", help="update bench/RESULTS.md")
    p.add_argument(
        "--peak-only", action="store_true", help="only (c), printed (no libwrapper, no client)"
    )
    args = p.parse_args(argv)
    if args.peak_only:
        for server in ("native", "python"):
            runs = peak_growth(server, args.payload_mib, args.repeats)
            print(
                f"{server}: one {args.payload_mib} MiB request, VmHWM growth median "
                f"+{statistics.median(runs):.0f} MiB (runs: {', '.join(f'{v:.0f}' for v in runs)})"
            )
        return 0
    if not libwrapper_path().is_file():
        sys.exit("libwrapper.so is not built: run scripts/system-deps.sh, then pip install -e .")
    load = os.getloadavg()[0]
    big = zero_copy(args.payload_mib, args.big_calls, args.repeats)
    c_us = c_abi_per_call(args.calls, args.repeats)
    grpc_us = grpc_per_call(args.grpc_calls, args.repeats)
    peaks = {s: peak_growth(s, args.payload_mib, args.repeats) for s in ("native", "python")}
    ratio_a = big["copy"] / big["zero-copy"]
    ratio_b = c_us / grpc_us
    command = (
        "`.venv/bin/python bench/bench_native.py "
        + " ".join(
            f"--{k.replace('_', '-')} {v}"
            for k, v in vars(args).items()
            if k not in ("write", "peak_only")
        )
        + " --write`"
    )
    lines = [
        SECTION,
        "",
        f"Command: {command}",
        f"Machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
        f"load average {load:.1f} before the run. Medians over {args.repeats} repeats.",
        "",
        "| measure | fast path | compared with | ratio | target | met |",
        "|---|---|---|---|---|---|",
        f"| (a) {args.payload_mib} MiB payload, wrapper reads first+last byte, per call "
        f"(wrapperExec in-process) | {big['zero-copy'] * 1e6:.1f} us (Buffer view) | "
        f"{big['copy'] * 1e6:.1f} us (copied into bytes) | {ratio_a:.0f}x faster | >= 20x | "
        f"{'yes' if ratio_a >= 20 else 'NO'} |",
        f"| (b) trivial once exec (echo, 11 bytes), per call, sequential | {c_us:.1f} us "
        f"(C ABI: wrapperExec+wrapperExecFree from C) | {grpc_us:.1f} us (gRPC plugin: C++ "
        f"server, C++ client, 1 in flight) | {ratio_b:.3f}x | <= 0.1x | "
        f"{'yes' if ratio_b <= 0.1 else 'NO'} |",
        "",
        f"(c) Peak memory of one {args.payload_mib} MiB request to a wrapper reading its first "
        "and last byte (VmHWM of the plugin process before and after, fresh plugin per run, "
        f"median of {args.repeats}; runs in brackets):",
        "",
        "| server | VmHWM growth | x payload |",
        "|---|---|---|",
        *(
            f"| {name} (`--server {s}`) | +{statistics.median(peaks[s]):.0f} MiB "
            f"({', '.join(f'{v:.0f}' for v in peaks[s])}) | "
            f"{statistics.median(peaks[s]) / args.payload_mib:.2f}x |"
            for s, name in (("native", "C++ gRPC server"), ("python", "Python grpcio server"))
        ),
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.write:
        old = RESULTS.read_text()
        if SECTION in old:
            start = old.index(SECTION)
            end = old.find("\n## ", start + len(SECTION))
            old = old[:start] + old[end + 1 :] if end != -1 else old[:start]
        RESULTS.write_text(old.rstrip("\n") + "\n\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
