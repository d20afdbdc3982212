#!/usr/bin/env bash
# Install what benchmarks/run.py needs, on top of scripts/setup.sh: the `bench` extra of
# pyproject.toml (python-socketio and uvicorn for the python-socketio peer, matplotlib for the
# plots) into .venv; node and the socket.io 4 server come from scripts/setup.sh (npm ci).
#
#   bash benchmarks/setup.sh && .venv/bin/python benchmarks/run.py
#
# Idempotent: scripts/setup.sh runs only when .venv or node_modules is missing, pip only when
# pyproject.toml changed since the last successful install (delete .venv/.sio-bench-stamp to force
# it). Also checks for taskset (util-linux: the pinning of servers and load generator) and
# redis-server (the Redis rows of the store comparison; REDIS_URL may point at another server).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1

say() { echo "benchmarks/setup: $*"; }

if [[ ! -x .venv/bin/python || ! -f node_modules/socket.io/package.json ]]; then
    say "running scripts/setup.sh (no .venv or no node_modules/socket.io)"
    bash scripts/setup.sh
fi

stamp=".venv/.sio-bench-stamp"
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [[ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]]; then
    say "pip install -e '.[bench]'"
    .venv/bin/python -m pip install -qq -e '.[bench]'
    echo "$want" > "$stamp"
else
    say ".venv has the bench extra of this pyproject.toml"
fi

# the compiled build, as the demo's install has it (scripts/compile.sh): what is measured
bash scripts/compile.sh

missing=0
for module in socket.io ws; do
    if [[ ! -f "node_modules/$module/package.json" ]]; then
        say "node_modules/$module is missing: run \`bash scripts/setup.sh\`" >&2
        missing=1
    fi
done
command -v node >/dev/null 2>&1 || { say "node is missing: run \`bash scripts/setup.sh\`" >&2; missing=1; }
(( missing == 0 )) || exit 1

command -v taskset >/dev/null 2>&1 ||
    say "warning: no taskset (apt-get install util-linux): servers and load generator will share cores"
if [[ -z "${REDIS_URL:-}" ]] && ! command -v redis-server >/dev/null 2>&1; then
    say "warning: no redis-server and no REDIS_URL: the Redis rows of the store comparison are skipped"
fi
say "done: .venv/bin/python benchmarks/run.py [--quick] [--repeat N] [--only SCENARIO]"
