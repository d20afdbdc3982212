"""The package's types, as a user's code sees them: ``mypy --strict`` on applications written
only through the public API (tests/typing_examples, see its README), which must check clean.
Their ``# type: ignore[...]`` lines would be reported unused if a decorator or operator lost its
types (returned Any), so this fails then too. The package ships py.typed (test_packaging)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support import REPO_ROOT

EXAMPLES = REPO_ROOT / "tests" / "typing_examples"


def test_user_style_examples_are_clean_under_mypy_strict() -> None:
    examples = sorted(EXAMPLES.glob("*.py"))
    assert len(examples) >= 3
    # sio_core itself is checked by the project's own mypy run; here only the users' files
    # are reported (--follow-imports=silent still reads sio_core's types)
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent",
         "--no-error-summary", *map(str, examples)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_decorated_handlers_keep_their_types(tmp_path: Path) -> None:
    """The check can fail: without its ignore, a wrong call of a handler that went through
    ``@socket.on`` is reported (it would not be, were the decorator's result Any)."""
    source = (EXAMPLES / "chat.py").read_text()
    changed = source.replace("_ = message(42)  # type: ignore[arg-type]", "_ = message(42)")
    assert changed != source
    (tmp_path / "chat.py").write_text(changed)
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent",
         "--no-error-summary", str(tmp_path / "chat.py")],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    assert '"message" has incompatible type "int"; expected "str"' in result.stdout, \
        result.stdout
