#!/usr/bin/env bash
# Leak check of libwrapper.so (`make test-native`, part of `make test`): the C test driver
# makes N wrapperExec+wrapperExecFree calls (and N/10 wrapperExecAsync) under valgrind, for
# N = 1,000 and N = 10,000; the bytes valgrind calls definitely or indirectly lost must not
# grow with N (what CPython itself keeps for the process's life does not depend on N).
set -euo pipefail
cd "$(dirname "$0")/../.."
python=${PYTHON:-.venv/bin/python}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cc -O1 -g -Wall -o "$work/driver" tests/native/driver.c -ldl -lpthread
libdir=$("$python" -m globalfunc.cli aiges libpath)
lost() {  # $1 = calls; prints "definitely+indirectly lost" bytes
  (cd tests/data/aiges/echo && LD_LIBRARY_PATH="$libdir" PYTHONPATH="$OLDPWD" PYTHONMALLOC=malloc \
    valgrind --leak-check=full --show-leak-kinds=definite,indirect --log-file="$work/vg-$1.log" \
    "$work/driver" loop "$1" >"$work/out-$1.txt" 2>"$work/err-$1.txt") || {
    echo "leak check: the driver failed at $1 calls:" >&2
    cat "$work/err-$1.txt" "$work/vg-$1.log" >&2
    exit 1
  }
  awk '/definitely lost:|indirectly lost:/ { gsub(",", "", $4); sum += $4 } END { print sum + 0 }' \
    "$work/vg-$1.log"
}
small=$(lost 1000)
large=$(lost 10000)
echo "leak check: definitely+indirectly lost after 1,000 calls: $small bytes; after 10,000: $large bytes"
if [ "$large" -gt "$small" ]; then
  echo "leak check FAILED: lost memory grows with the number of calls" >&2
  grep -A12 "definitely lost in" "$work/vg-10000.log" | head -60 >&2 || true
  exit 1
fi
echo "leak check passed"
