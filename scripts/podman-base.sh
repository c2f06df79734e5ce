#!/usr/bin/env bash
# A local stand-in for the official python:3.11-slim-bookworm image, for build checks only.
#
# The Dockerfiles in docker/ start FROM python:3.11-slim-bookworm. On a machine that cannot
# reach a container registry (no Docker Hub) but can reach Debian's apt mirror, this script
# makes an image that gives those Dockerfiles what the official image gives them, and tags it
# docker.io/library/python:3.11-slim-bookworm in podman's local storage, so that
# `podman build --pull=never -f docker/<X> .` resolves its FROM lines without pulling:
#   - Debian 12 (bookworm), debootstrap's minbase variant, apt sources for bookworm,
#     bookworm-updates and bookworm-security, no apt lists or caches left behind;
#   - Python 3.11 with pip, venv, the headers and a shared libpython (Debian's python3,
#     python3-pip, python3-venv, python3-dev: the official image has headers and libpython too);
#   - `python`, `python3`, `pip`, `pip3` on PATH (in /usr/local/bin, as in the official image);
#   - `pip install` works as root as it does in the official image: Debian's
#     EXTERNALLY-MANAGED marker is removed (the official image has none) and
#     PIP_BREAK_SYSTEM_PACKAGES=1 is set for good measure;
#   - the certificates of this machine's CA bundle that Debian's lacks (a TLS-inspecting
#     proxy's), so `pip install` reaches PyPI where this machine does.
# It is NOT the official image: Python lives in /usr (Debian's build), not /usr/local, and is
# Debian's 3.11.2, not the latest 3.11. Never push it; `podman rmi` it when done.
#
# Idempotent: when the tag exists already it does nothing (--force rebuilds it). Needs root
# (debootstrap); installs podman and debootstrap with apt-get when they are missing.
# Environment: GF_DEBIAN_MIRROR (default http://deb.debian.org/debian), PODMAN (default
# `podman`; e.g. "podman --storage-driver vfs" where overlay does not work).
set -euo pipefail

TAG=docker.io/library/python:3.11-slim-bookworm
MIRROR=${GF_DEBIAN_MIRROR:-http://deb.debian.org/debian}
read -r -a PODMAN <<<"${PODMAN:-podman}"

force=0
case "${1:-}" in
    --force) force=1 ;;
    "") ;;
    *) echo "usage: $0 [--force]" >&2; exit 2 ;;
esac

if [[ $(id -u) -ne 0 ]]; then
    echo "podman-base.sh: needs root (debootstrap, podman import); run it with sudo" >&2
    exit 1
fi

missing=()
command -v podman >/dev/null || missing+=(podman)
command -v debootstrap >/dev/null || missing+=(debootstrap)
if ((${#missing[@]})); then
    echo "podman-base.sh: installing ${missing[*]} with apt-get"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

if ((!force)) && "${PODMAN[@]}" image exists "$TAG"; then
    echo "podman-base.sh: $TAG exists already (stand-in; --force to rebuild it)"
    exit 0
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/gf-podman-base.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/rootfs

echo "podman-base.sh: debootstrap bookworm (minbase) from $MIRROR"
debootstrap --variant=minbase \
    --include=ca-certificates,python3,python3-pip,python3-venv,python3-dev \
    bookworm "$root" "$MIRROR" >"$work/debootstrap.log" 2>&1 || {
    tail -n 30 "$work/debootstrap.log" >&2
    exit 1
}

security=${MIRROR%/debian}/debian-security
cat >"$root/etc/apt/sources.list" <<EOF
deb $MIRROR bookworm main
deb $MIRROR bookworm-updates main
deb $security bookworm-security main
EOF
# Where this machine's apt ignores Release files' expiry (a clock ahead of the mirror's
# snapshot), the images' `apt-get update` must too, or it fails on "Release file expired".
valid_until=$(apt-config dump --no-empty --format '%v' Acquire::Check-Valid-Until 2>/dev/null || true)
if [[ $valid_until == false ]]; then
    echo 'Acquire::Check-Valid-Until "false";' >"$root/etc/apt/apt.conf.d/99gf-standin"
fi

# Where this machine reaches PyPI through a TLS-inspecting proxy, its CA bundle holds
# certificates Debian's does not: the stand-in trusts them too (in
# /usr/local/share/ca-certificates, so they survive the images' own update-ca-certificates).
host_bundle=/etc/ssl/certs/ca-certificates.crt
if [[ -f $host_bundle ]]; then
    python3 - "$host_bundle" "$root/etc/ssl/certs/ca-certificates.crt" \
        "$root/usr/local/share/ca-certificates" <<'PY'
import re
import sys
from pathlib import Path

pem = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)
host, image, out = (Path(a) for a in sys.argv[1:])
known = set(pem.findall(image.read_text()))
extra = [c for c in pem.findall(host.read_text()) if c not in known]
for n, cert in enumerate(extra):
    (out / f"gf-host-{n}.crt").write_text(cert + "\n")
print(f"podman-base.sh: {len(extra)} certificate(s) of this machine's CA bundle added")
PY
    chroot "$root" update-ca-certificates >/dev/null 2>&1
fi

# The official image's layout on PATH: python, python3, pip, pip3 in /usr/local/bin.
for pair in python:python3 python3:python3 pip:pip3 pip3:pip3 python3-config:python3-config; do
    ln -sf "/usr/bin/${pair#*:}" "$root/usr/local/bin/${pair%%:*}"
done
rm -f "$root"/usr/lib/python3*/EXTERNALLY-MANAGED
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb
rm -f "$root/etc/resolv.conf" "$root/etc/hostname"

echo "podman-base.sh: importing as $TAG"
tar --numeric-owner -C "$root" --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' \
    -cf - . | "${PODMAN[@]}" import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PYTHON_VERSION=3.11' \
    --change 'ENV PIP_BREAK_SYSTEM_PACKAGES=1' \
    --change 'CMD ["python3"]' \
    --message "stand-in for python:3.11-slim-bookworm (scripts/podman-base.sh), for build checks" \
    - "$TAG" >/dev/null
"${PODMAN[@]}" image inspect --format '{{.Id}} {{.Size}}' "$TAG"
