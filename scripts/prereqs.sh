#!/usr/bin/env bash
# Make this machine able to run the test bed: Docker engine, debootstrap, ssh client, a Python
# venv with the pinned requirements. Idempotent; installs only what is missing. Needs root for
# apt and dockerd (sudo is used when not root). --python-only: just the venv (for `make unit`).
set -euo pipefail
cd "$(dirname "$0")/.."

venv() {
    if [ ! -x .venv/bin/pyinfra ] || [ requirements.txt -nt .venv/.installed ]; then
        echo "prereqs: creating .venv with requirements.txt"
        python3 -m venv .venv
        .venv/bin/pip install --quiet -r requirements.txt
        touch .venv/.installed
    fi
}

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
command -v ssh-keygen >/dev/null || missing+=(openssh-client)
command -v systemd-analyze >/dev/null || missing+=(systemd)  # checks timers' calendars
command -v openssl >/dev/null || missing+=(openssl)  # seals secrets as a host does (test_sealed)
if [ "${1:-}" != --python-only ]; then
    command -v dockerd >/dev/null || missing+=(docker.io)
    command -v debootstrap >/dev/null || missing+=(debootstrap)
    command -v make >/dev/null || missing+=(make)
    command -v wrk >/dev/null || missing+=(wrk)  # keep-alive load in the fleet tests
fi
if [ ${#missing[@]} -gt 0 ]; then
    echo "prereqs: installing ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ "${1:-}" = --python-only ]; then venv; exit 0; fi

if ! docker info >/dev/null 2>&1; then
    echo "prereqs: starting dockerd (log: /var/log/dockerd.log)"
    as_root setsid dockerd >/var/log/dockerd.log 2>&1 </dev/null &
    for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
    docker info >/dev/null 2>&1 || { echo "prereqs: dockerd did not start:" >&2; tail -20 /var/log/dockerd.log >&2; exit 1; }
fi

venv
