"""Bad input never produces a traceback: one clear finding with a position, and exit 1."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from labtax.cli import cli

LEAF = "compositional_skills/writing/poem/qna.yaml"
GOOD = (Path(__file__).parent / "examples" / "good" / "compositional_skills" / "writing" / "poetry" / "haiku"
        / "qna.yaml").read_text(encoding="utf-8")


def run(root: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["validate", "--taxonomy", str(root), *args])
    assert isinstance(result.exception, SystemExit) or result.exception is None, result.exception
    assert "Traceback" not in result.output
    return result.exit_code, result.output


def write(root: Path, content: bytes | str, rel: str = LEAF) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    (path.parent / "attribution.txt").write_text("Source: test\n")
    return path


def assert_finding(output: str, rule: str, line: int | None = None) -> None:
    hits = [row for row in output.splitlines() if f"error [{rule}]" in row]
    assert hits, output
    where = hits[0].split(": error")[0]
    _path, at_line, at_col = where.rsplit(":", 2)
    assert int(at_line) >= 1 and int(at_col) >= 1
    if line is not None:
        assert int(at_line) == line, hits[0]


@pytest.mark.parametrize(
    ("content", "rule", "line"),
    [
        (b"", "yaml-empty", 1),
        (b"- a\n- b\n", "yaml-not-mapping", 1),
        (b"42\n", "yaml-not-mapping", 1),
        (b"version: 3\ncreated_by: [x\n", "yaml-syntax", 3),
        (b"version: 3\nseed_examples:\n\t- question: q\n", "yaml-tab", 3),
        (GOOD.replace("created_by: alice-writer\n", "created_by: a\ncreated_by: b\n").encode(), "yaml-duplicate-key", 3),
        (GOOD.encode().replace(b"Silent", b"Sil\xffent"), "encoding", 7),
        (GOOD.replace("version: 3", 'version: "3"').encode(), "version", 1),
        (GOOD.replace("version: 3", "version: 4").encode(), "version", 1),
    ],
)
def test_bad_content(tmp_path: Path, content: bytes, rule: str, line: int) -> None:
    write(tmp_path, content)
    code, output = run(tmp_path)
    assert code == 1
    assert_finding(output, rule, line)


def test_string_version_gets_a_fix(tmp_path: Path) -> None:
    write(tmp_path, GOOD.replace("version: 3", 'version: "3"'))
    _code, output = run(tmp_path)
    assert "without quotes" in output


def test_huge_file_refused_by_size(tmp_path: Path) -> None:
    write(tmp_path, GOOD + "# " + "x" * (5 * 1024 * 1024) + "\n")
    code, output = run(tmp_path)
    assert code == 1
    assert_finding(output, "file-too-large", 1)
    assert "1,048,576" in output


def test_alias_bomb_refused_quickly(tmp_path: Path) -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 10):
        lines.append(f"{chr(97 + i)}: &{chr(97 + i)} [" + ",".join([f"*{chr(96 + i)}"] * 9) + "]")
    write(tmp_path, "\n".join(lines) + "\n")
    start = time.process_time()
    code, output = run(tmp_path)
    assert time.process_time() - start < 10  # expanding it would not finish at all
    assert code == 1
    assert_finding(output, "yaml-alias-limit")


def test_symlink_pointing_outside_the_repository(tmp_path: Path) -> None:
    outside = tmp_path / "outside.yaml"
    outside.write_text(GOOD)
    root = tmp_path / "repo"
    leaf = root / LEAF
    leaf.parent.mkdir(parents=True)
    (leaf.parent / "attribution.txt").write_text("x\n")
    leaf.symlink_to(outside)
    code, output = run(root)
    assert code == 1
    assert_finding(output, "symlink-outside", 1)


def test_symlink_inside_the_repository_is_followed(tmp_path: Path) -> None:
    real = write(tmp_path, GOOD, "compositional_skills/a/qna.yaml")
    other = tmp_path / "compositional_skills" / "b"
    other.mkdir()
    (other / "attribution.txt").write_text("x\n")
    (other / "qna.yaml").symlink_to(real)
    code, output = run(tmp_path)
    assert code == 0, output


def test_directory_named_qna_yaml(tmp_path: Path) -> None:
    (tmp_path / LEAF).mkdir(parents=True)
    code, output = run(tmp_path)
    assert code == 1
    assert_finding(output, "file-not-regular")
    assert "directory" in output


def test_fifo_named_qna_yaml_does_not_hang(tmp_path: Path) -> None:
    path = tmp_path / LEAF
    path.parent.mkdir(parents=True)
    os.mkfifo(path)
    code, output = run(tmp_path)
    assert code == 1
    assert_finding(output, "file-not-regular")


def test_unreadable_file_symlink_loop(tmp_path: Path) -> None:
    # A path whose open() fails even for root: a symlink that points to itself (ELOOP).
    path = tmp_path / LEAF
    path.parent.mkdir(parents=True)
    path.symlink_to(path.name)
    code, output = run(tmp_path)
    assert code == 1
    assert_finding(output, "file-unreadable")


def run_without_root_reads(root: Path) -> tuple[int, str]:
    """`labtax validate` in a process without the two capabilities that let root read any file, so
    that a mode-0 file is unreadable to it too (CI runs as root)."""
    drop = "-dac_override,-dac_read_search"
    result = subprocess.run(["setpriv", "--bounding-set", drop, "--inh-caps", drop, sys.executable, "-m", "labtax",
                             "validate", "--taxonomy", str(root)], capture_output=True, text=True, timeout=120, check=False)
    assert "Traceback" not in result.stderr
    return result.returncode, result.stdout + result.stderr


@pytest.mark.skipif(os.geteuid() == 0 and shutil.which("setpriv") is None,
                    reason="root reads files whatever their mode, and setpriv is missing to drop that")
def test_unreadable_file_permissions(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    path.chmod(0)
    try:
        code, output = run_without_root_reads(tmp_path) if os.geteuid() == 0 else run(tmp_path)
    finally:
        path.chmod(0o644)
    assert code == 1
    assert_finding(output, "file-unreadable")


@pytest.mark.parametrize("name", ["qna.yml", "QNA.yaml", "Qna.YML"])
def test_misnamed_leaf_gets_the_fix(tmp_path: Path, name: str) -> None:
    write(tmp_path, GOOD, f"compositional_skills/writing/poem/{name}")
    code, output = run(tmp_path)
    assert code == 1
    assert_finding(output, "leaf-filename")
    assert "git mv" in output and "poem/qna.yaml" in output


def test_leaf_outside_the_three_roots(tmp_path: Path) -> None:
    write(tmp_path, GOOD, "skills/writing/qna.yaml")
    code, output = run(tmp_path)
    assert code == 1
    assert_finding(output, "leaf-location")
