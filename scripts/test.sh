#!/usr/bin/env bash
# Lint, type-check and test sio_core. Extra arguments go to pytest.
#   bash scripts/test.sh                 everything
#   bash scripts/test.sh -k polling -x   a subset
# Runs all three steps even when one fails, then exits non-zero if any did.
# pytest's exit code 5 ("no tests collected") counts as a failure.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

failed=()

echo "test: ruff check sio_core tests"
.venv/bin/ruff check sio_core tests || failed+=(ruff)

echo "test: mypy (strict, see pyproject.toml)"
.venv/bin/mypy || failed+=(mypy)

echo "test: pytest $*"
.venv/bin/python -m pytest "$@"
rc=$?
if (( rc == 5 )); then
    echo "test: pytest collected no tests: that counts as a failure" >&2
    failed+=("pytest (no tests)")
elif (( rc != 0 )); then
    failed+=("pytest (exit $rc)")
fi

if (( ${#failed[@]} )); then
    echo "test: FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "test: all passed"
