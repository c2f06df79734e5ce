#!/usr/bin/env bash
# When GlobalFunc runs as root, isolated workers run as an unprivileged user
# (GF_WORKER_USER, default nobody). That user must be able to reach the Python
# interpreter and this project: grant it traverse (x) rights on the folders on the way,
# with an ACL for that user alone (nothing becomes readable to anyone else).
# Usage: scripts/worker-user.sh PYTHON   (run by `make setup`; a no-op when not root)
set -euo pipefail
python="$(realpath -s "${1:?usage: worker-user.sh PYTHON}")"
[ "$(id -u)" -eq 0 ] || exit 0
user="${GF_WORKER_USER-nobody}"
[ -n "$user" ] || exit 0
if ! id "$user" >/dev/null 2>&1; then
  echo "worker user '$user' does not exist: create it, or set GF_WORKER_USER to an unprivileged user" >&2
  exit 1
fi
project="$(cd "$(dirname "$0")/.." && pwd)"
can_run() {
  (cd / && runuser -u "$user" -- env PYTHONPATH="$project" "$python" -c 'import globalfunc.executor.worker, orjson') >/dev/null 2>&1
}
can_run && exit 0
if ! command -v setfacl >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq acl >/dev/null
fi
prefix="$("$python" -c 'import sys; print(sys.base_prefix)')"
for target in "$(readlink -f "$python")" "$prefix" "$project"; do
  [ -d "$target" ] || target="$(dirname "$target")"
  path=""
  IFS=/ read -ra parts <<<"${target#/}"
  for part in "${parts[@]}"; do  # from the top down: a folder is reachable once its parents are
    path="$path/$part"
    if ! runuser -u "$user" -- test -x "$path"; then
      setfacl -m "u:$user:x" "$path"
      echo "granted $user traverse rights on $path (an ACL entry for that user only)"
    fi
  done
done
if ! can_run; then
  echo "worker user '$user' still cannot run $python with this project; make them readable to it, or set GF_WORKER_USER" >&2
  exit 1
fi
