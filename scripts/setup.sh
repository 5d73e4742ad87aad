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
etcd_service_active() {
    command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet etcd 2>/dev/null
}
ETCD_WAS_ACTIVE=no
if etcd_service_active; then ETCD_WAS_ACTIVE=yes; fi
if [ -n "$PACKAGES" ]; then
    $SUDO apt-get update -qq
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $PACKAGES >/dev/null
    # Installing etcd-server on a systemd host starts etcd.service on the default ports; Seguro never uses
    # it. Stop only the service this run started: never an etcd the host already ran.
    case "$PACKAGES" in
        *etcd-server*)
            if [ "$ETCD_WAS_ACTIVE" = no ] && etcd_service_active; then
                $SUDO systemctl disable --now etcd || true
            fi
            ;;
    esac
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
