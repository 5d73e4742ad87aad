#!/usr/bin/env bash
# Install everything Seguro needs on a fresh Debian/Ubuntu machine (idempotent):
# etcd from the OS packages when missing, a virtualenv at .venv with Seguro and its dev tools.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
PACKAGES=""
command -v etcd >/dev/null 2>&1 || PACKAGES="$PACKAGES etcd-server etcd-client"
python3 -c 'import ensurepip' >/dev/null 2>&1 || PACKAGES="$PACKAGES python3-venv"
if [ -n "$PACKAGES" ]; then
    $SUDO apt-get update -qq
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $PACKAGES >/dev/null
    # A systemd host enables etcd.service on the default ports; Seguro never uses them, but keep them free.
    if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet etcd 2>/dev/null; then
        $SUDO systemctl disable --now etcd || true
    fi
fi
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
# Reinstall only when the declared dependencies changed (the stamp is pyproject.toml's hash).
STAMP=.venv/.seguro-installed
WANT="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ] || [ ! -x .venv/bin/seguro ]; then
    .venv/bin/pip install -q --upgrade pip >/dev/null
    .venv/bin/pip install -q -e '.[dev]'
    echo "$WANT" > "$STAMP"
fi
