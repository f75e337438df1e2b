#!/bin/sh
# A Python 3.11 base image made from Debian's packages alone, for hosts that cannot pull
# python:3.11-slim from a registry. It stands in for that image in docker/Dockerfile.cpu:
#
#   sudo docker/build-base.sh                      # makes mrirecon-base:bookworm
#   podman build --build-arg BASE=localhost/mrirecon-base:bookworm \
#       -f docker/Dockerfile.cpu -t mrirecon:cpu .
#
# Debian bookworm's python3 is 3.11. A virtual environment in /opt/python, first on PATH, gives the
# image what python:3.11-slim has: `python` and `pip` that install into a writable prefix.
# Needs root (debootstrap), debootstrap, and podman (or docker: CONTAINER=docker).
#
# Usage: docker/build-base.sh [TAG]     (default mrirecon-base:bookworm)
# Environment: MIRROR (default http://deb.debian.org/debian), SUITE (default bookworm),
#              CONTAINER (default podman).
set -eu

TAG=${1:-mrirecon-base:bookworm}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
SUITE=${SUITE:-bookworm}
CONTAINER=${CONTAINER:-podman}
VENV=/opt/python

if [ "$(id -u)" -ne 0 ]; then
    echo "build-base.sh: debootstrap needs root; run it with sudo" >&2
    exit 2
fi
for tool in debootstrap "$CONTAINER"; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "build-base.sh: $tool is not installed (Debian: apt-get install $tool)" >&2
        exit 2
    fi
done

ROOT=$(mktemp -d "${TMPDIR:-/tmp}/mrirecon-base.XXXXXX")
trap 'rm -rf "$ROOT"' EXIT INT TERM

debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    "$SUITE" "$ROOT" "$MIRROR"

# The virtual environment (with bookworm's pip), then nothing the image does not need.
chroot "$ROOT" python3 -m venv "$VENV"
chroot "$ROOT" "$VENV/bin/python" --version
rm -rf "$ROOT"/var/cache/apt/archives/*.deb "$ROOT"/var/lib/apt/lists/* \
    "$ROOT"/var/log/*.log "$ROOT"/var/log/apt/* "$ROOT"/usr/share/doc/* "$ROOT"/usr/share/man/* \
    "$ROOT"/usr/share/locale/*
find "$ROOT$VENV" -name __pycache__ -type d -prune -exec rm -rf {} +

tar --numeric-owner -C "$ROOT" -c . | "$CONTAINER" import \
    --change "ENV PATH=$VENV/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    --change "ENV LANG=C.UTF-8" \
    --change 'CMD ["python"]' \
    - "$TAG"
echo "built $TAG"
