#!/usr/bin/env bash
# Lint, type-check and test sio_core. Extra arguments go to pytest.
#   bash scripts/test.sh                 everything
#   bash scripts/test.sh -k polling -x   a subset
# Runs every step even when one fails, then exits non-zero if any did.
# pytest's exit code 5 ("no tests collected") counts as a failure.
# pytest runs under coverage (branch coverage of sio_core, [tool.coverage] in pyproject.toml),
# the server processes the tests start included; the summary per package follows, and a run of
# the whole suite (no arguments) fails if a package is under its floor (scripts/coverage_floors.py).
# `.venv/bin/python -m coverage report -m` afterwards lists the lines missed, file by file.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

failed=()

# the tests measure the coverage of the Python code: a compiled build (scripts/compile.sh, which
# scripts/setup.sh and benchmarks/setup.sh make) would hide it, so it is removed first
bash scripts/compile.sh --remove

echo "test: ruff check sio_core tests scripts"
.venv/bin/ruff check sio_core tests scripts || failed+=(ruff)

echo "test: mypy (strict, see pyproject.toml)"
.venv/bin/mypy || failed+=(mypy)

# Every timeout of the tests is scaled by SIO_TEST_TIME_FACTOR (tests/support.py). Here it is 3
# unless set: the suite runs under coverage (about twice the CPU per request in every server
# process) on 2-core machines that the servers, the clients and pytest share, and a busy day's
# machine ran it 3x slower than an idle one. Timeouts only: no test waits longer when it passes.
export SIO_TEST_TIME_FACTOR="${SIO_TEST_TIME_FACTOR:-3}"
echo "test: pytest $* (under coverage, SIO_TEST_TIME_FACTOR=$SIO_TEST_TIME_FACTOR)"
# every process writes its own data file here (the servers run from other directories too)
export COVERAGE_FILE="$PWD/.coverage"
rm -f .coverage .coverage.*
SECONDS=0
.venv/bin/python -m coverage run -m pytest "$@"
rc=$?
echo "test: pytest took ${SECONDS}s"
if (( rc == 5 )); then
    echo "test: pytest collected no tests: that counts as a failure" >&2
    failed+=("pytest (no tests)")
elif (( rc != 0 )); then
    failed+=("pytest (exit $rc)")
fi

echo "test: coverage (lines and branches of sio_core, per package)"
if .venv/bin/python -m coverage combine -q; then
    if (( $# )); then
        .venv/bin/python scripts/coverage_floors.py --report-only
    else
        .venv/bin/python scripts/coverage_floors.py || failed+=("coverage floors")
    fi
else
    failed+=("coverage combine")
fi

if (( ${#failed[@]} )); then
    echo "test: FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "test: all passed"
