#!/usr/bin/env bash
# Install the system packages GlobalFunc's tests and servers need, only when missing.
set -euo pipefail
# --bench also installs what the benchmarks use (wrk, the HTTP load generator).
need=()
if [ "${1:-}" = "--bench" ]; then command -v wrk >/dev/null || need+=(wrk); fi
command -v git >/dev/null || need+=(git)
command -v redis-server >/dev/null || need+=(redis-server)
command -v g++ >/dev/null || need+=(g++)
command -v chromium >/dev/null || need+=(chromium)  # the console test (Playwright drives it)
# native/ (the AIGES plugin's C++ server): grpc++ and protobuf headers, protoc and its grpc plugin.
command -v pkg-config >/dev/null || need+=(pkg-config)
command -v protoc >/dev/null || need+=(protobuf-compiler)
command -v grpc_cpp_plugin >/dev/null || need+=(protobuf-compiler-grpc)
[ -e /usr/include/grpcpp/grpcpp.h ] || need+=(libgrpc++-dev)
[ -e /usr/include/google/protobuf/message.h ] || need+=(libprotobuf-dev)
# The Python headers and shared libpython the native parts compile and link against (setup.py),
# and valgrind for libwrapper.so's leak check (make test-native).
py_include=$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["include"])' 2>/dev/null || true)
[ -n "$py_include" ] && [ -e "$py_include/Python.h" ] || need+=(python3-dev)
command -v valgrind >/dev/null || need+=(valgrind)
command -v cc >/dev/null || need+=(gcc)
# prlimit and setpriv start worker processes capped and as GF_WORKER_USER (child.py).
{ command -v prlimit && command -v setpriv; } >/dev/null || need+=(util-linux)
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
if ! command -v apt-get >/dev/null; then
  echo "missing: ${need[*]}; install them with your package manager" >&2
  exit 1
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then sudo="sudo"; else
    echo "missing: ${need[*]}; run as root or install them: apt-get install ${need[*]}" >&2
    exit 1
  fi
fi
echo "installing system packages: ${need[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
