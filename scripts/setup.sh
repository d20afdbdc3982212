#!/usr/bin/env bash
# Install what sio_core needs to build and test, on a Debian 12 machine, as root.
#
#   bash scripts/setup.sh          runtime: node + npm, .venv with `pip install -e .`, npm ci, and
#                                  the compiled build where it can (scripts/compile.sh: the hot
#                                  modules compiled by mypyc, ~2 minutes the first time)
#   bash scripts/setup.sh --dev    also redis-server, redis-cli and chromium (apt), `pip install -e '.[dev]'`;
#                                  pure Python (the tests measure its coverage)
#
# Idempotent: apt runs only when a command is missing, pip only when pyproject.toml (or the mode)
# changed since the last successful install, npm only when package-lock.json changed. So on a machine
# that is already set up it does no network work. To force a reinstall, delete .venv/.sio-setup-stamp
# or node_modules/.sio-setup-stamp. Never runs `playwright install`: that downloads a browser build
# of its own, which this network refuses; the browser tests use Debian's /usr/bin/chromium.
set -euo pipefail

dev=0
for arg in "$@"; do
    case "$arg" in
        --dev) dev=1 ;;
        -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
        *) echo "setup.sh: unknown argument: $arg" >&2; exit 2 ;;
    esac
done

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root="$(pwd)"

export DEBIAN_FRONTEND=noninteractive
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
export npm_config_fund=false npm_config_audit=false npm_config_update_notifier=false

say() { echo "setup: $*"; }

# --- system packages (apt) -------------------------------------------------------------------------
apt_packages=()
command -v node >/dev/null 2>&1 || apt_packages+=(nodejs)
command -v npm >/dev/null 2>&1 || apt_packages+=(npm)
if ! command -v python3 >/dev/null 2>&1; then
    apt_packages+=(python3 python3-venv)
elif ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
    apt_packages+=(python3-venv)   # Debian's python3 ships venv without ensurepip
fi
if [[ $dev == 1 ]]; then
    command -v redis-server >/dev/null 2>&1 || apt_packages+=(redis-server)
    # redis-cli: the Cluster tests create their cluster with `redis-cli --cluster create`
    # (redis-server depends on it, but a redis-server from elsewhere may come without it)
    command -v redis-cli >/dev/null 2>&1 || apt_packages+=(redis-tools)
    [[ -x /usr/bin/chromium ]] || apt_packages+=(chromium)
    # openssl: the TLS tests make a self-signed certificate with it
    command -v openssl >/dev/null 2>&1 || apt_packages+=(openssl)
fi

if (( ${#apt_packages[@]} )); then
    sudo=()
    if [[ $(id -u) != 0 ]]; then
        if command -v sudo >/dev/null 2>&1; then
            sudo=(sudo -n)
        else
            echo "setup: need root (or sudo) to apt-get install: ${apt_packages[*]}" >&2
            exit 1
        fi
    fi
    say "apt-get install ${apt_packages[*]}"
    "${sudo[@]}" apt-get update -qq
    # No recommends: chromium's only one is chromium-sandbox (tests run it with --no-sandbox as root);
    # npm's are git and node-tap.
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends -o Dpkg::Use-Pty=0 \
        "${apt_packages[@]}" >/dev/null
fi

# --- Python: .venv + editable install ---------------------------------------------------------------
venv_ok() {
    [[ -x .venv/bin/python ]] &&
        .venv/bin/python -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1
}
if ! venv_ok; then
    python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
        echo "setup: python3 is $(python3 --version 2>&1); sio_core needs 3.11 or newer" >&2
        exit 1
    }
    say "creating .venv with $(python3 --version 2>&1)"
    rm -rf .venv
    python3 -m venv .venv
fi

if [[ $dev == 1 ]]; then target='.[dev]'; else target='.'; fi
pip_stamp=".venv/.sio-setup-stamp"
pyproject_hash="$(sha256sum pyproject.toml | cut -d' ' -f1)"
pip_want="$target $pyproject_hash"
pip_have="$(cat "$pip_stamp" 2>/dev/null || true)"
# A dev install also satisfies a plain one.
if [[ $pip_have != "$pip_want" && $pip_have != ".[dev] $pyproject_hash" ]]; then
    say "pip install -e '$target'"
    .venv/bin/python -m pip install -qq -e "$target"
    echo "$pip_want" > "$pip_stamp"
else
    say ".venv is up to date with pyproject.toml ($target)"
fi

# --- node modules (the official clients and the reference server for interop tests) ---------------
if [[ -f package-lock.json ]]; then
    npm_stamp="node_modules/.sio-setup-stamp"
    npm_want="$(sha256sum package-lock.json | cut -d' ' -f1)"
    if [[ ! -f $npm_stamp || "$(cat "$npm_stamp")" != "$npm_want" ]]; then
        say "npm ci"
        npm ci --no-audit --no-fund --loglevel=error
        echo "$npm_want" > "$npm_stamp"
    else
        say "node_modules is up to date with package-lock.json"
    fi
elif [[ -f package.json ]]; then
    say "npm install (no package-lock.json)"
    npm install --no-audit --no-fund --loglevel=error
fi

# --- the compiled build: the demo's; the tests run the pure Python they measure ------------------
if [[ $dev == 1 ]]; then
    bash scripts/compile.sh --remove
else
    bash scripts/compile.sh
fi

say "done ($root)"
