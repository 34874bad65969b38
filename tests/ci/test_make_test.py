"""CI runs `.ci/run`, which runs exactly `make test`; `make test` lints (ruff, mypy) before the tests, so a
lint or type error fails CI as a failing test does. Read from `make -n` (what make would run), not by
running the lint here: the suite must not pay for it twice."""

from __future__ import annotations

import subprocess

from cihelpers import ROOT


def test_ci_runs_exactly_make_test() -> None:
    commands = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()
                if line.strip() and not line.lstrip().startswith("#")]
    assert commands[-1] == "make test"
    assert not any("pytest" in c or "ruff" in c for c in commands)


def test_make_test_lints_before_it_tests() -> None:
    out = subprocess.run(["make", "-n", "test"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    lines = out.splitlines()
    lint = next(i for i, line in enumerate(lines) if "ruff check labtax tests bench" in line)
    tests = next(i for i, line in enumerate(lines) if "-m pytest" in line)
    assert "mypy labtax" in lines[lint] and lint < tests
    # `make lint` runs the same command, so the two cannot drift apart.
    lint_only = subprocess.run(["make", "-n", "lint"], cwd=ROOT, capture_output=True, text=True,
                               check=True).stdout.splitlines()
    assert lines[lint] in lint_only
