#!/usr/bin/env bash
# Build every image of docker/ with podman, one after another, and check what can be checked
# on a machine where containers cannot run (`make images`; see docker/README.md).
#
# Builds: `podman build --format docker --isolation chroot --pull=never -f docker/<X> .` from
# the repository root, on the stand-in base of scripts/podman-base.sh (run first; it does
# nothing when the base exists). `--format docker` keeps HEALTHCHECK (the OCI format drops it).
# Checks, on each image's files (a created, never started container's root, mounted; commands
# run in it with chroot as the image's user, with the host's /dev bound in):
#   - the image's user is 10001, its entrypoint/command and (but aiges) healthcheck are set;
#   - no build output of this machine was copied in (no .globalfunc registry state, no
#     native part in the pure-Python images);
#   - `gf --help` and the imports the image's command needs work;
#   - aiges: the wheel's native parts (_native*.so, _embed*.so, lib/libwrapper.so) are in
#     site-packages, native-build.json says all three were built, their ELF machine is this
#     machine's, `ldd` finds every library (libgrpc++, libprotobuf, libpython) in the final
#     stage, both modules import and libwrapper.so loads with its wrapper* symbols;
#   - worker: git sees the packages' commit; ray: `ray --version`.
# Not checked (cannot be here): starting a container, its network, its healthcheck, compose.
# Environment: PODMAN (default `podman`; "podman --storage-driver vfs" where overlay fails),
# IMAGES (default: all four, as file:tag pairs), BUILD_FLAGS (e.g. --no-cache, to time
# builds from scratch). Logs: build/images/<tag>.log.
# `A && ok ... || fail ...` is if-then-else here: ok only echoes, it cannot fail.
# shellcheck disable=SC2015
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
read -r -a PODMAN <<<"${PODMAN:-podman}"
read -r -a BUILD_FLAGS <<<"${BUILD_FLAGS:-}"
CHROOT=$(command -v chroot)
IMAGES=${IMAGES:-"Dockerfile:globalfunc worker.Dockerfile:globalfunc-worker aiges.Dockerfile:globalfunc-aiges ray.Dockerfile:globalfunc-ray"}
LOGS=build/images
SITE=""  # the image's site-packages (where `server` is installed), found in each image
mkdir -p "$LOGS"

failed=0
fail() {
    echo "  FAIL: $*" >&2
    failed=1
}
ok() { echo "  ok: $*"; }

bash scripts/podman-base.sh

# A created (never started) container of image $1, its root mounted at $root with /dev bound.
root=""
cid=""
open_image() {
    cid=$("${PODMAN[@]}" create --no-healthcheck "$1" true)
    root=$("${PODMAN[@]}" mount "$cid")
    mount --bind /dev "$root/dev"
    if SITE=$(inside "python -c 'import pathlib, server; print(pathlib.Path(server.__file__).parent.parent)'"); then
        ok "GlobalFunc installed in $SITE"
    else
        fail "GlobalFunc is not importable in $1"
        SITE=/nonexistent
    fi
}
close_image() {
    if [[ -n $cid ]]; then
        umount "$root/dev" 2>/dev/null || true
        "${PODMAN[@]}" umount "$cid" >/dev/null || true
        "${PODMAN[@]}" rm "$cid" >/dev/null || true
    fi
    cid=""
    root=""
}
trap close_image EXIT

# Run a command in the image's root as its user, with its PATH.
inside() {
    env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/tmp LANG=C.UTF-8 PYTHONDONTWRITEBYTECODE=1 \
        "$CHROOT" --userspec=10001:10001 "$root" sh -c "cd /tmp && $1"
}

elf_machine() { readelf -h "$1" | sed -n 's/^ *Machine: *//p'; }

check_common() {
    local tag=$1 file=$2
    local user
    user=$("${PODMAN[@]}" image inspect --format '{{.Config.User}}' "$tag")
    [[ $user == 10001 ]] && ok "user $user" || fail "user is '$user', not 10001"
    if [[ $file != aiges.Dockerfile ]]; then
        "${PODMAN[@]}" image inspect --format '{{.Config.Healthcheck}}' "$tag" | grep -q CMD &&
            ok "healthcheck kept" || fail "no healthcheck in the image config"
    fi
    if [[ -e $root/srv/packages/.globalfunc ]]; then
        fail "/srv/packages/.globalfunc: this machine's registry state was copied in"
    fi
    inside 'gf --help >/dev/null' && ok "gf --help" || fail "gf --help failed"
}

check_pure() {
    local found
    found=$(find "$root$SITE/server" -name '*.so' 2>/dev/null | head -n 3)
    [[ -z $found ]] && ok "no native part (pure-Python install)" ||
        fail "a native part in a pure-Python image (copied from the build machine?): ${found//"$root"/}"
}

check_aiges() {
    local host_machine
    host_machine=$(elf_machine "$(readlink -f /bin/sh)")
    for pattern in '_native*.so' '_embed*.so' 'libwrapper.so'; do
        local so
        so=$(find "$root$SITE/server/aiges" -name "$pattern" | head -n 1)
        if [[ -z $so ]]; then
            fail "no $pattern under $SITE/server/aiges"
            continue
        fi
        local rel=${so#"$root"} machine
        machine=$(elf_machine "$so")
        [[ $machine == "$host_machine" ]] && ok "$rel: ELF machine $machine" ||
            fail "$rel: ELF machine '$machine', this machine's is '$host_machine'"
        local deps
        if ! deps=$(inside "ldd $rel"); then
            fail "ldd $rel failed"
            continue
        fi
        if grep -q 'not found' <<<"$deps"; then
            fail "$rel: $(grep 'not found' <<<"$deps" | tr -s ' \t\n' ' ')"
        else
            ok "$rel: ldd finds every library"
        fi
        case $pattern in
            _native*) for lib in 'libgrpc++.so' libprotobuf.so; do
                grep -qF "$lib" <<<"$deps" && ok "  links $lib" ||
                    fail "$rel does not link $lib"
            done ;;
            libwrapper*) grep -q libpython <<<"$deps" && ok "  links libpython" ||
                fail "$rel does not link libpython" ;;
        esac
    done
    inside "python -c 'import json, server.aiges as a, pathlib; r = json.loads((pathlib.Path(a.__file__).parent / \"native-build.json\").read_text()); assert sorted(r[\"built\"]) == [\"libwrapper\", \"server.aiges._embed\", \"server.aiges._native\"] and not r[\"missing\"], r'" &&
        ok "native-build.json: all three built" || fail "native-build.json does not say all three were built"
    inside "python -c 'import ctypes, server.aiges._native, server.aiges._embed; from server.aiges.native import libwrapper_path; lib = ctypes.CDLL(str(libwrapper_path())); assert all(hasattr(lib, f) for f in (\"wrapperInit\", \"wrapperExec\", \"wrapperExecFree\", \"wrapperFini\"))'" &&
        ok "_native and _embed import; libwrapper.so loads with its wrapper* symbols" ||
        fail "importing the native parts or loading libwrapper.so failed"
    inside 'gf aiges libpath' | grep -qx "$SITE/server/aiges/lib" &&
        ok "gf aiges libpath: $SITE/server/aiges/lib" || fail "gf aiges libpath does not print $SITE/server/aiges/lib"
}

for pair in $IMAGES; do
    file=${pair%%:*}
    tag=localhost/${pair#*:}:check
    echo "== docker/$file -> $tag"
    start=$SECONDS
    if ! "${PODMAN[@]}" build "${BUILD_FLAGS[@]}" --format docker --isolation chroot --pull=never \
        -f "docker/$file" -t "$tag" . >"$LOGS/${pair#*:}.log" 2>&1; then
        tail -n 40 "$LOGS/${pair#*:}.log" >&2
        fail "docker/$file did not build (log: $LOGS/${pair#*:}.log)"
        continue
    fi
    echo "  built in $((SECONDS - start)) s ($("${PODMAN[@]}" image inspect --format '{{.Size}}' "$tag") bytes)"
    open_image "$tag"
    check_common "$tag" "$file"
    case $file in
        aiges.Dockerfile) check_aiges ;;
        ray.Dockerfile)
            check_pure
            inside 'ray --version' && ok "ray --version" || fail "ray --version failed"
            inside 'python -c "import globalfunc.distributed"' && ok "import globalfunc.distributed" ||
                fail "import globalfunc.distributed failed" ;;
        *)
            check_pure
            inside 'git -C /srv/packages log --oneline' | grep -q 'image packages' &&
                ok "/srv/packages: a git repository with the image's commit" ||
                fail "/srv/packages has no commit" ;;
    esac
    close_image
done
exit "$failed"
