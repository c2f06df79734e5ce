"""libwrapper.so, the loader's C mode, driven as the loader drives it.

``tests/native/driver.c`` is compiled here with the system C compiler against
``tests/native/wrapper_abi.h`` (written from the doc, not shared with the library), and
loads the library with ``dlopen("libwrapper.so")`` by its bare name, the folder coming from
``gf aiges libpath`` through ``LD_LIBRARY_PATH``. Outputs are compared byte for byte with
what the gRPC plugin (the C++ server) answers for the same wrapper and input.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from server.aiges.chost import ERRORS
from server.aiges.native import libwrapper_path, native_required, why_missing
from tests.integration.aiges_support import DATA, REPO, start

pytestmark = pytest.mark.integration

NATIVE_TESTS = REPO / "tests" / "native"


def _need_library() -> None:
    if libwrapper_path().is_file():
        return
    if native_required():
        pytest.fail(why_missing("libwrapper"))
    pytest.skip(why_missing("libwrapper"))


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Path:
    _need_library()
    cc = shutil.which(os.environ.get("CC", "cc"))
    assert cc, "no C compiler (cc) to build the test driver"
    out = tmp_path_factory.mktemp("driver") / "driver"
    subprocess.run(
        [
            cc,
            "-O1",
            "-g",
            "-Wall",
            "-Werror",
            "-o",
            str(out),
            str(NATIVE_TESTS / "driver.c"),
            "-ldl",
            "-lpthread",
        ],
        check=True,
    )
    return out


@pytest.fixture(scope="module")
def libdir() -> str:
    _need_library()
    done = subprocess.run(
        [sys.executable, "-m", "globalfunc.cli", "aiges", "libpath"],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    folder = done.stdout.strip()
    assert (Path(folder) / "libwrapper.so").is_file()
    return folder


def run(
    driver: Path, libdir: str, *args: str, cwd: Path, timeout: float = 120, **extra: str
) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "LD_LIBRARY_PATH")}
    env["LD_LIBRARY_PATH"] = libdir
    env["PYTHONPATH"] = str(REPO)
    env.update(extra)
    done = subprocess.run(
        [str(driver), *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout
    )
    assert done.returncode == 0, f"driver {args} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def grpc_result(params: dict[str, str], payload: bytes, wrapper: Path) -> bytes:
    """The driver's result format for what the C++ gRPC plugin answers."""
    with start("native", "--wrapper", str(wrapper)) as client:
        assert client.init() == 0
        reply = client.once(params, [client.text("text", payload)])
    out = f"ret {reply.ret}\n".encode()
    for item in reply.list:
        out += f"{item.key} {item.type} {item.status} {len(item.data)}\n".encode()
        out += item.data + b"\n"
    return out


def test_layout_matches_the_doc_and_all_15_symbols_resolve(driver: Path, libdir: str) -> None:
    assert run(driver, libdir, "layout", cwd=REPO).strip() == "layout ok"


@pytest.mark.parametrize("mode", ["once", "async"])
def test_exec_answers_the_same_bytes_as_the_grpc_plugin(
    driver: Path, libdir: str, tmp_path: Path, mode: str
) -> None:
    payload = "héllo wörld, C mode \x00 end".encode()
    (tmp_path / "in").write_bytes(payload)
    echo = DATA / "echo"
    run(
        driver,
        libdir,
        "-p",
        "mode=upper",
        mode,
        str(tmp_path / "in"),
        str(tmp_path / "out"),
        cwd=echo,
    )
    got = (tmp_path / "out").read_bytes()
    assert got.startswith(b"ret 0\nresult 0 3 ")
    assert got == grpc_result({"mode": "upper"}, payload, echo)


def test_a_session_through_callbacks_and_wrapper_read(
    driver: Path, libdir: str, tmp_path: Path
) -> None:
    run(driver, libdir, "-p", "lang=en", "session", str(tmp_path / "out"), cwd=DATA / "stream")
    assert (tmp_path / "out").read_text().splitlines() == [
        "frame 0 ret 0 en:FIRST",
        "frame 1 ret 0 en:SECOND",
        "frame 2 ret 0 en:THIRD",
        "read en:PULLED",
    ]


def test_eight_threads_at_once_exec_and_async(driver: Path, libdir: str) -> None:
    out = run(driver, libdir, "threads", "8", "300", cwd=DATA / "echo")
    assert out.strip() == "threads ok 2400 calls"


def test_a_16_mib_payload(driver: Path, libdir: str) -> None:
    out = run(driver, libdir, "big", "16", cwd=DATA / "echo")
    assert out.strip() == f"big ok {16 << 20}"


def test_errors_version_and_bad_handles(driver: Path, libdir: str) -> None:
    lines = run(driver, libdir, "errors", cwd=DATA / "echo").splitlines()
    assert lines[0].startswith("before-init 30001 ")
    assert "not loaded or not initialised" in lines[0]
    assert lines[1].startswith("version GlobalFunc libwrapper ")
    assert lines[2] == f"error-30003 {ERRORS[30003]}"  # static in C, as chost.ERRORS says
    assert lines[3] == "error-7 echo error 7"  # the wrapper's own wrapperError
    assert lines[4].startswith("bad-handle unknown session handle")
    assert lines[-1] == "errors ok"


def test_config_names_the_wrapper_file_and_class(driver: Path, libdir: str, tmp_path: Path) -> None:
    (tmp_path / "mine.py").write_text(
        "from aiges_embed import Response, ResponseData\n"
        "class Other:\n"
        "    def wrapperInit(self, config):\n"
        "        return 0\n"
        "    def wrapperOnceExec(self, params, reqData):\n"
        "        node = reqData.list[0]\n"
        "        view = memoryview(node.data)  # zero copy: a view of the loader's memory\n"
        "        item = ResponseData(key='n', data=f'{len(view)}:{view[0]}:{view[-1]}'.encode())\n"
        "        view.release()\n"
        "        return Response([item])\n"
        "    def wrapperFini(self):\n"
        "        return 0\n"
    )
    (tmp_path / "in").write_bytes(b"abcz")
    run(
        driver,
        libdir,
        "-c",
        f"wrapper.file={tmp_path / 'mine.py'}",
        "-c",
        "wrapper.class=Other",
        "once",
        str(tmp_path / "in"),
        str(tmp_path / "out"),
        cwd=tmp_path,
    )
    assert (tmp_path / "out").read_bytes() == b"ret 0\nn 0 3 8\n4:97:122\n"


def test_a_registry_function_named_by_the_config(driver: Path, libdir: str, tmp_path: Path) -> None:
    run(
        driver,
        libdir,
        "-c",
        "wrapper.function=Base.inverse_time_str",
        "-c",
        f"wrapper.root={REPO / 'packages'}",
        "-p",
        "time_str=2024-02-15 11:11:11",
        "-p",
        "bias_hours=-8",
        "once",
        "-",
        str(tmp_path / "out"),
        cwd=tmp_path,
        TZ="UTC",
        GF_CACHE_DIR=str(tmp_path / "cache"),
    )
    out = (tmp_path / "out").read_bytes()
    assert out.startswith(b"ret 0\nresult 0 3 ") and out.endswith(b"\n1707966671\n"), out


def _warned_tags(stderr: str) -> list[str]:
    """The tags of the one-per-call warnings about a result dropped after its callback."""
    tags = []
    for line in stderr.splitlines():
        if (
            "WARNING" in line
            and "wrapperExecAsync (tag " in line
            and "callback already had" in line
        ):
            tags.append(line.split("wrapperExecAsync (tag ", 1)[1].split(")", 1)[0])
    return tags


def _late_counts(stderr: str) -> list[int]:
    """The counts of the aggregated warnings about results that came after their 10102."""
    counts = []
    for line in stderr.splitlines():
        if "WARNING" in line and "result(s) dropped: the wrapper answered after" in line:
            counts.append(int(line.split("wrapperExecAsync: ", 1)[1].split()[0]))
    return counts


def _skipped_counts(stderr: str) -> list[int]:
    """The counts of the aggregated warnings about timed-out calls never run."""
    counts = []
    for line in stderr.splitlines():
        if "WARNING" in line and "call(s) not run:" in line:
            counts.append(int(line.split("wrapperExecAsync: ", 1)[1].split()[0]))
    return counts


def run_full(driver: Path, libdir: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "LD_LIBRARY_PATH")}
    env["LD_LIBRARY_PATH"] = libdir
    env["PYTHONPATH"] = str(REPO)
    done = subprocess.run(
        [str(driver), *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=120
    )
    assert done.returncode == 0, f"driver {args} failed:\n{done.stdout}\n{done.stderr}"
    return done


@pytest.mark.parametrize("workers", ["24", "2"])
def test_async_timeout_calls_each_callback_exactly_once(
    driver: Path, libdir: str, workers: str
) -> None:
    # 8 threads x 100 calls, timeout 25 ms, the wrapper sleeping 0, 22..28 or 50 ms: results
    # and deadlines race. 24 workers: every call runs at once; 2 workers: calls also time
    # out while queued (and are then not run). The driver checks exactly one callback per
    # tag (also after wrapperFini), ret 0 with the right data or 10102 with none.
    done = run_full(
        driver,
        libdir,
        "-c",
        f"wrapper.workers={workers}",
        "timeouts",
        "8",
        "100",
        "25",
        cwd=DATA / "echo",
    )
    lines = done.stdout.splitlines()
    summary = lines[-1].split()
    assert summary[:4] == ["timeouts", "ok", "800", "calls"], lines[-1]
    in_time, timed_out = int(summary[4]), int(summary[7])
    assert in_time + timed_out == 800
    assert in_time > 0 and timed_out > 0, "both sides of the deadline must be exercised"
    assert any(line.startswith("error-10102 once timeout: ") for line in lines)
    timed_out_tags = {line.split()[1] for line in lines if line.startswith("timedout ")}
    assert len(timed_out_tags) == timed_out
    # late results are counted in aggregated warnings; only those still running when
    # wrapperFini began (no timer any more) get a line each
    warned = _warned_tags(done.stderr)
    assert len(warned) == len(set(warned)) and len(warned) <= int(workers), warned
    assert set(warned) <= timed_out_tags
    late = _late_counts(done.stderr)
    assert len(late) <= 10, f"{len(late)} aggregated warnings about late results"
    skipped = _skipped_counts(done.stderr)
    if workers == "24":  # nothing queued: every timed-out call's result arrived late
        assert sum(late) + len(warned) == timed_out
    else:
        # calls that timed out while queued were not run: counted in aggregated warnings
        # (at most one a second, plus one at wrapperFini), not one line each
        assert sum(skipped) > 0
        assert len(skipped) <= 10, f"{len(skipped)} aggregated warnings"
    # (calls still queued at wrapperFini are dropped by the pool unlogged)
    assert sum(late) + len(warned) + sum(skipped) <= timed_out, "counted twice"


def test_aggregated_async_warnings_come_from_the_timer_without_more_calls(
    driver: Path, libdir: str
) -> None:
    # One call answers after its 10102, three time out while queued behind a 1 s call (never
    # run); then no call for 3.5 s. The aggregated warnings used to wait for the next
    # skipped call or wrapperFini; the timer thread now writes them within about a second.
    done = run_full(driver, libdir, "-c", "wrapper.workers=1", "quiet", cwd=DATA / "echo")
    assert done.stdout.strip() == "quiet ok"
    before_mark = done.stderr.split("quiet mark")[0]
    skipped = _skipped_counts(before_mark)
    assert sum(skipped) == 3 and len(skipped) <= 3, done.stderr
    assert _late_counts(before_mark) == [1], done.stderr
    assert "(tags to-0)" in before_mark
    assert _skipped_counts(done.stderr) == skipped and _late_counts(done.stderr) == [1]
    assert _warned_tags(done.stderr) == []


def test_fini_with_pending_async_calls_answers_each_once(driver: Path, libdir: str) -> None:
    # One worker: one call runs (3 s, past wrapperFini's 2 s wait), four wait in the queue.
    done = run_full(
        driver, libdir, "-c", "wrapper.workers=1", "fini-pending", "5", cwd=DATA / "echo"
    )
    assert done.stdout.startswith("fini-pending ok 5 calls"), done.stdout
    # the running call's result arrived after wrapperFini: dropped with one warning
    assert _warned_tags(done.stderr) == ["to-0"]


def test_the_timer_never_waits_on_an_erased_deadline(driver: Path, libdir: str) -> None:
    # A call with a 5 s timeout answered at once (its deadline node is erased while the timer
    # waits on it), then one with 100 ms. Before the fix the timer read the freed node (ASan:
    # heap-use-after-free; tests/native/asan_check.sh runs this mode under ASan+UBSan).
    out = run(driver, libdir, "deadlines", cwd=DATA / "echo")
    assert out.strip() == "deadlines ok"


def test_two_threads_calling_wrapper_init_at_once(driver: Path, libdir: str) -> None:
    # A fresh process: both threads used to start Python and the pool (segfault).
    for _ in range(3):
        out = run(driver, libdir, "concinit", cwd=DATA / "echo")
        assert out.startswith("concinit ok"), out


def test_wrapper_fini_from_an_async_callback_returns_promptly(driver: Path, libdir: str) -> None:
    # It used to wait 2.00 s for its own worker thread (the one running the callback).
    out = run(driver, libdir, "finicb", "3", cwd=DATA / "echo").split()
    assert out[:3] == ["finicb", "ok", "3"], out
    assert float(out[4]) < 0.5, f"wrapperFini in a callback took {out[4]} s"
    assert int(out[-1]) <= int(out[-3]), "threads pile up across init/fini rounds"


def test_sessions_with_the_same_usrtag_stay_apart(
    driver: Path, libdir: str, tmp_path: Path
) -> None:
    # Sessions A and B share the usrTag "same", C and D have a NULL one: a result reaches only
    # the session written to (results used to be routed by usrTag, so they crossed).
    run(driver, libdir, "-c", "pool=4", "sametag", str(tmp_path / "out"), cwd=DATA / "stream")
    assert (tmp_path / "out").read_text().split() == ["hits", "1", "0", "1", "2"]


def test_non_utf8_c_strings_are_decoded_with_replace(
    driver: Path, libdir: str, tmp_path: Path
) -> None:
    # A bad byte in a param key, a value, a desc key or the usrTag no longer fails the call
    # (it was 30003); a bad data key arrives with U+FFFD, so the echo finds no "text" item.
    done = run_full(driver, libdir, "badutf8", str(tmp_path / "out"), cwd=DATA / "echo")
    assert (tmp_path / "out").read_bytes() == b"ret 0\nresult 0 3 3\nABC\nret 0\nresult 0 3 0\n\n"
    assert "Traceback" not in done.stderr


def test_wrapper_error_texts_are_bounded_and_follow_a_reinit(driver: Path, libdir: str) -> None:
    stream = DATA / "stream" / "wrapper.py"
    out = run(driver, libdir, "errortexts", "100000", str(stream), cwd=DATA / "echo")
    lines = out.splitlines()
    before, after = (int(x) for x in lines[0].split()[2:4])
    assert after - before < 4096, f"100,000 codes grew VmRSS by {after - before} KiB"
    assert lines[1] == "error-7 echo error 7"
    assert lines[2] != lines[1] and lines[2].startswith("error-7 "), lines


USRTAG_WRAPPER = """
try:
    from aiges_embed import Response, ResponseData, SessionCreateResponse, callback
except ImportError:
    from aiges.callback import callback
    from aiges.dto import Response, ResponseData, SessionCreateResponse


class Wrapper:
    def wrapperInit(self, config):
        return 0

    def wrapperCreate(self, params, sid, persId=0, usrTag=""):
        return SessionCreateResponse(handle="h-" + usrTag, error_code=0)

    def wrapperWrite(self, handle, req, sid=""):
        r = Response()
        text = f"handle={handle} data={bytes(req.list[0].data).decode()}"
        r.list = [ResponseData(key="seen", data=text.encode())]
        callback(r, handle[2:])  # pushed by the usrTag the wrapper was shown
        return 0

    def wrapperDestroy(self, handle):
        return 0

    def wrapperFini(self):
        return 0
"""


def test_a_session_wrapper_sees_the_loaders_usrtag_as_over_grpc(
    driver: Path, libdir: str, tmp_path: Path
) -> None:
    # The wrapper used to be shown "<usrTag>#<n>" (the library's session key) in C mode and
    # the plain usrTag over gRPC, so the same wrapper answered different bytes. Now both show
    # the loader's usrTag, and a result pushed by it still reaches its session.
    (tmp_path / "wrapper.py").write_text(USRTAG_WRAPPER)
    run(driver, libdir, "session", str(tmp_path / "out"), cwd=tmp_path)
    c_lines = (tmp_path / "out").read_text().splitlines()
    grpc_lines = []
    with start("native", "--wrapper", str(tmp_path)) as client:
        assert client.init() == 0
        for tag, frames in (("7", ["first", "second", "third"]), ("pull", ["pulled"])):
            _, handle = client.create(tag=tag)
            assert handle.err_code == 0
            for k, frame in enumerate(frames):
                item = client.text("text", frame.encode())
                item.status = k
                assert client.write(handle.handle, [item]) == 0
                data = client.next_result(tag, timeout=10).list[0].data.decode()
                grpc_lines.append(f"frame {k} ret 0 {data}" if tag == "7" else f"read {data}")
            assert client.destroy(handle.handle) == 0
        client.shutdown()
    assert c_lines == grpc_lines
    assert c_lines[0] == "frame 0 ret 0 handle=h-7 data=first", c_lines
    assert c_lines[-1] == "read handle=h-pull data=pulled", c_lines
