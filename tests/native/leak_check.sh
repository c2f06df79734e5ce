#!/usr/bin/env bash
# Leak check of libwrapper.so (`make test-native`, part of `make test`): the C test driver
# makes N wrapperExec+wrapperExecFree calls (and N/10 wrapperExecAsync) under valgrind, for
# N = 1,000 and N = 10,000; the bytes valgrind calls definitely or indirectly lost must not
# grow with N (what CPython itself keeps for the process's life does not depend on N).
# Then the async timeout and wrapperFini-with-pending-calls paths (driver modes `timeouts`
# and `fini-pending`) under valgrind: no invalid read, write or free (a result freed twice,
# a call used after it was answered), and no more lost than the 1,000-call loop.
set -euo pipefail
cd "$(dirname "$0")/../.."
python=${PYTHON:-.venv/bin/python}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cc -O1 -g -Wall -o "$work/driver" tests/native/driver.c -ldl -lpthread
libdir=$("$python" -m globalfunc.cli aiges libpath)
lost() {  # $1 = log name, then the driver's arguments; prints "definitely+indirectly lost" bytes
  local name=$1
  shift
  (cd tests/data/aiges/echo && LD_LIBRARY_PATH="$libdir" PYTHONPATH="$OLDPWD" PYTHONMALLOC=malloc \
    valgrind --leak-check=full --show-leak-kinds=definite,indirect --log-file="$work/vg-$name.log" \
    "$work/driver" "$@" >"$work/out-$name.txt" 2>"$work/err-$name.txt") || {
    echo "leak check: the driver failed ($*):" >&2
    cat "$work/err-$name.txt" "$work/vg-$name.log" >&2
    exit 1
  }
  if grep -qE "Invalid (read|write|free)|Mismatched free" "$work/vg-$name.log"; then
    echo "leak check FAILED: invalid memory access ($*):" >&2
    grep -A12 -E "Invalid (read|write|free)|Mismatched free" "$work/vg-$name.log" | head -60 >&2
    exit 1
  fi
  awk '/definitely lost:|indirectly lost:/ { gsub(",", "", $4); sum += $4 } END { print sum + 0 }' \
    "$work/vg-$name.log"
}
small=$(lost 1000 loop 1000)
large=$(lost 10000 loop 10000)
echo "leak check: definitely+indirectly lost after 1,000 calls: $small bytes; after 10,000: $large bytes"
if [ "$large" -gt "$small" ]; then
  echo "leak check FAILED: lost memory grows with the number of calls" >&2
  grep -A12 "definitely lost in" "$work/vg-10000.log" | head -60 >&2 || true
  exit 1
fi
timeouts=$(lost timeouts -c wrapper.workers=24 timeouts 4 20 200)
pending=$(lost pending -c wrapper.workers=1 fini-pending 3)
echo "leak check: async timeouts: $timeouts bytes lost; wrapperFini with pending calls: $pending"
if [ "$timeouts" -gt "$small" ] || [ "$pending" -gt "$small" ]; then
  echo "leak check FAILED: the timeout or wrapperFini path loses memory" >&2
  grep -A12 "definitely lost in" "$work/vg-timeouts.log" "$work/vg-pending.log" | head -60 >&2 || true
  exit 1
fi
echo "leak check passed"
# The paths valgrind cannot judge (a read of a freed deadline, out-of-range enum loads):
bash tests/native/asan_check.sh
