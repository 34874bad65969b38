"""schema/ at the top of the repository is the one source of the JSON Schemas; the package reads
them through labtax/schema (a link to it) and the wheel ships byte-identical copies."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from importlib import resources
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "schema"


def test_the_package_reads_the_top_level_files() -> None:
    link = ROOT / "labtax" / "schema"
    assert link.is_symlink() and link.resolve() == SOURCE.resolve()
    packaged = {p.name: p.read_bytes() for p in resources.files("labtax.schema").iterdir() if p.name.endswith(".json")}
    assert packaged == {p.name: p.read_bytes() for p in SOURCE.glob("*.json")}
    assert {"knowledge.v3.json", "compositional_skills.v3.json", "common.json"} <= set(packaged)


def test_the_wheel_ships_the_same_files(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "labtax", src / "labtax", symlinks=True, ignore=ignore)
    shutil.copytree(SOURCE, src / "schema")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                           "-w", str(tmp_path / "dist"), str(src)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    wheel = next((tmp_path / "dist").glob("labtax-*.whl"))
    with zipfile.ZipFile(wheel) as zf:
        shipped = {Path(n).name: zf.read(n) for n in zf.namelist() if n.startswith("labtax/schema/")}
    assert shipped == {p.name: p.read_bytes() for p in SOURCE.glob("*.json")}
