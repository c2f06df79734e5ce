#!/usr/bin/env bash
# ASan+UBSan check of libwrapper.so (manual; about a minute on 2 cores, most of it the
# compile): builds native/aiges/libwrapper.cc and the C test driver with
# -fsanitize=address,undefined into a temporary folder and runs the driver modes valgrind
# cannot judge: `deadlines` (the timer must not read a deadline a worker erased: a
# heap-use-after-free before the fix), `badutf8` (data type/status outside the enums:
# UBSan's "load of value ... not a valid value for type"), `concinit`, `finicb` and
# `timeouts`. Any sanitizer report fails it.
#   PYTHON=.venv/bin/python bash tests/native/asan_check.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
python=${PYTHON:-.venv/bin/python}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
read -r inc pyinc libdir ldver exe < <("$python" - <<'PY'
import sys, sysconfig, pybind11
print(pybind11.get_include(), sysconfig.get_paths()["include"], sysconfig.get_config_var("LIBDIR"),
      sysconfig.get_config_var("LDVERSION"), sys.executable)
PY
)
san="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined"
g++ -std=c++17 -O1 -g -fPIC -shared $san -I"$inc" -I"$pyinc" -DGF_PYTHON_EXECUTABLE="\"$exe\"" \
  native/aiges/libwrapper.cc -o "$work/libwrapper.so" -L"$libdir" -Wl,-rpath,"$libdir" \
  -lpython"$ldver" -ldl -lpthread
cc -O1 -g $san -o "$work/driver" tests/native/driver.c -ldl -lpthread
run() {  # the driver's arguments
  (cd tests/data/aiges/echo && LD_LIBRARY_PATH="$work" PYTHONPATH="$OLDPWD" PYTHONMALLOC=malloc \
    ASAN_OPTIONS=detect_leaks=0 "$work/driver" "$@" >"$work/out.txt" 2>"$work/err.txt") || {
    echo "asan check FAILED ($*):" >&2
    grep -v " INFO \| WARNING " "$work/err.txt" | head -60 >&2
    exit 1
  }
  if grep -qE "runtime error:|AddressSanitizer" "$work/err.txt"; then
    echo "asan check FAILED: sanitizer report ($*):" >&2
    grep -A20 -E "runtime error:|AddressSanitizer" "$work/err.txt" | head -60 >&2
    exit 1
  fi
  echo "asan check: $* ok"
}
run deadlines
run badutf8 "$work/bad.out"
run concinit
run finicb 3
run -c wrapper.workers=2 timeouts 4 20 25
echo "asan check passed"
