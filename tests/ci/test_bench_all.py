"""`make bench` (scripts/bench_all.sh): every benchmark runs even after one misses, and the misses
are listed at the end with the exit status."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from cihelpers import ROOT, VENV_BIN, run


def test_every_benchmark_runs_and_misses_are_listed(tmp_path: Path) -> None:
    (tmp_path / "scripts").mkdir()
    shutil.copy2(ROOT / "scripts/bench_all.sh", tmp_path / "scripts/bench_all.sh")
    bench = tmp_path / "bench"
    bench.mkdir()
    (bench / "a_bench.py").write_text("import sys\nprint('a over budget')\nsys.exit(1)\n")
    (bench / "b_bench.py").write_text("print('b within budget')\n")
    (bench / "c_bench.py").write_text("import sys\nsys.exit(3)\n")
    (bench / "helper.py").write_text("raise SystemExit('not a benchmark')\n")
    proc = run(["bash", str(tmp_path / "scripts/bench_all.sh")], cwd=tmp_path, env={"PYTHON": sys.executable})
    assert proc.returncode == 1
    assert "b within budget" in proc.stdout and "a over budget" in proc.stdout
    assert proc.stdout.splitlines()[-3:] == [
        "== make bench: 1 met their budgets, 2 missed", "missed: bench/a_bench.py (exit 1)",
        "missed: bench/c_bench.py (exit 3)"]
    (bench / "a_bench.py").unlink()
    (bench / "c_bench.py").unlink()
    ok = run(["bash", str(tmp_path / "scripts/bench_all.sh")], cwd=tmp_path, env={"PYTHON": sys.executable})
    assert ok.returncode == 0 and ok.stdout.splitlines()[-1] == "== make bench: 1 met their budgets, 0 missed"


def test_bench_all_passes_shellcheck() -> None:
    out = subprocess.run([str(VENV_BIN / "shellcheck"), str(ROOT / "scripts/bench_all.sh")],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout
