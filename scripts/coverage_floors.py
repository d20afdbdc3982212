"""Coverage of sio_core per package, and the floors it must not fall below.

Run by scripts/test.sh after `coverage combine` (the data of the pytest process and of every
server process the tests started). Prints one line per package (lines and branches covered),
and exits 1 if a package is under its floor. With --report-only it only prints (a run of a
subset of the tests).

The floors only rise: when a package's coverage has gone up for good, raise its floor to just
under the new value (the summary says which ones could be raised). They sit a little under the
measured values because the part of the coverage that comes from the server processes varies
a little from run to run (which timer fires first, which race a test hits).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

#: package -> (floor of lines covered, floor of branches covered), in percent: a little
#: under what the whole suite measured (December 2026, with the in-process tests of every
#: package). protocol/, engine/ and socketio/ must stay at 90% of lines or more.
FLOORS: dict[str, tuple[float, float]] = {
    "sio_core/protocol": (99, 97),
    "sio_core/engine": (98, 93),
    "sio_core/socketio": (98, 94),
    "sio_core/http": (98, 92),
    "sio_core/stores": (95, 87),
    "sio_core/admin": (94, 92),
    "sio_core/demo": (100, 100),
    "sio_core (top level)": (95, 87),
}

#: how far above its floor a package may be before the summary suggests raising it
SLACK = 3.0


def package_of(path: str) -> str:
    parts = Path(path).parts
    index = parts.index("sio_core")
    inside = parts[index + 1:]
    if len(inside) == 1:
        return "sio_core (top level)"
    return "sio_core/" + inside[0]


def percent(covered: int, total: int) -> float:
    return 100.0 * covered / total if total else 100.0


def main(argv: list[str]) -> int:
    report_only = "--report-only" in argv
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "coverage.json"
        subprocess.run([sys.executable, "-m", "coverage", "json", "-q", "-o", str(out)],
                       check=True)
        files = json.loads(out.read_text())["files"]
    totals: dict[str, list[int]] = {}
    for path, data in files.items():
        summary = data["summary"]
        counts = totals.setdefault(package_of(path), [0, 0, 0, 0])
        counts[0] += summary["num_statements"]
        counts[1] += summary["covered_lines"]
        counts[2] += summary["num_branches"]
        counts[3] += summary["covered_branches"]
    failures: list[str] = []
    raisable: list[str] = []
    print(f"{'package':<22} {'lines':>13} {'%':>6} {'floor':>6}"
          f"   {'branches':>11} {'%':>6} {'floor':>6}")
    for package in sorted(totals):
        statements, lines, branches, taken = totals[package]
        line_pct, branch_pct = percent(lines, statements), percent(taken, branches)
        line_floor, branch_floor = FLOORS.get(package, (0.0, 0.0))
        print(f"{package:<22} {lines:>6}/{statements:<6} {line_pct:>6.1f} {line_floor:>6.1f}"
              f"   {taken:>5}/{branches:<5} {branch_pct:>6.1f} {branch_floor:>6.1f}")
        if package not in FLOORS:
            failures.append(f"{package}: no floor in scripts/coverage_floors.py")
        if line_pct < line_floor:
            failures.append(f"{package}: lines {line_pct:.1f}% < floor {line_floor}%")
        if branch_pct < branch_floor:
            failures.append(f"{package}: branches {branch_pct:.1f}% < floor {branch_floor}%")
        if line_pct > line_floor + SLACK or branch_pct > branch_floor + SLACK:
            raisable.append(package)
    if report_only:
        print("coverage: a subset of the tests ran: floors not checked")
        return 0
    if raisable:
        print(f"coverage: more than {SLACK} points over the floor (raise it in"
              f" scripts/coverage_floors.py): {', '.join(raisable)}")
    for failure in failures:
        print(f"coverage: FAILED: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
