#!/usr/bin/env bash
# The compiled build of sio_core: setup.py's COMPILED modules (the ones every message and
# connection runs through) made into C extensions by mypyc, beside their .py files, which
# Python imports first. Same code, same behaviour; ~40% fewer instructions per message in the
# server process, 1.2x-1.9x the pure build's messages per second in the benchmarks' same-run
# comparisons (benchmarks/PROFILE.md).
# scripts/setup.sh and benchmarks/setup.sh run it; scripts/test.sh removes the build (the
# tests measure the coverage of the Python code, which compiled modules do not show).
#   bash scripts/compile.sh            build it where a C compiler and Python's headers are
#                                      there (1-2 minutes on 2 cores; again when sio_core changed)
#   bash scripts/compile.sh --remove   back to pure Python
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1

say() { echo "compile: $*"; }
stamp=".venv/.sio-compiled-stamp"

remove() {
    find sio_core -name '*.cpython-*.so' -delete
    rm -f ./*__mypyc.cpython-*.so "$stamp"
}

if [[ ${1:-} == --remove ]]; then
    if [[ -f $stamp ]] || compgen -G 'sio_core/*/*.cpython-*.so' >/dev/null; then
        remove
        say "removed the compiled build: sio_core runs as pure Python"
    fi
    exit 0
fi
[[ $# == 0 ]] || { echo "compile.sh: unknown argument: $1" >&2; exit 2; }
[[ -x .venv/bin/python ]] || { echo "compile.sh: no .venv: run scripts/setup.sh first" >&2; exit 1; }

if ! command -v cc >/dev/null 2>&1 ||
        ! .venv/bin/python -c 'import os, sys, sysconfig
sys.exit(not os.path.isfile(os.path.join(sysconfig.get_paths()["include"], "Python.h")))'; then
    say "no C compiler or no Python headers (apt-get install gcc python3-dev): sio_core stays pure Python"
    exit 0
fi

want="$(cat setup.py pyproject.toml $(find sio_core -name '*.py' | sort) | sha256sum | cut -d' ' -f1)"
if [[ "$(cat "$stamp" 2>/dev/null || true)" == "$want" ]] &&
        compgen -G 'sio_core/*/*.cpython-*.so' >/dev/null; then
    say "the compiled build is up to date"
    exit 0
fi
say "compiling the hot modules with mypyc (a minute or two)"
remove
.venv/bin/python -m pip install -qq 'mypy>=1.10' 'setuptools>=77'
SIO_CORE_MYPYC=1 .venv/bin/python -m pip install -qq --no-build-isolation --no-deps -e .
rm -rf build
echo "$want" > "$stamp"
say "done: $(.venv/bin/python -c 'from sio_core import build; print(build.summary())')"
