"""The exit codes every command shares (labtax/errors.py): a bug is one line naming a log with its
traceback and exit 3 (never 1, "findings / gate failed"); any OSError is an I/O error (2); a reader
that closes standard output early (`| head -1`) ends the command quietly with its own code."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from labtax.cli_options import guarded
from labtax.errors import (
    EXIT_BUG,
    EXIT_FINDINGS,
    EXIT_OK,
    EXIT_TEACHER,
    EXIT_USAGE,
    UsageError,
    exit_code_for,
)

LEAF_WITHOUT_TASK = "version: 2\ncreated_by: tester\nseed_examples:\n" + "".join(
    f"  - question: Question number {i}?\n    answer: Answer number {i}.\n" for i in range(5))


def test_the_codes_are_distinct_and_3_is_a_bug() -> None:
    assert (EXIT_OK, EXIT_FINDINGS, EXIT_USAGE, EXIT_BUG) == (0, 1, 2, 3)
    assert EXIT_TEACHER not in (EXIT_OK, EXIT_FINDINGS, EXIT_USAGE, EXIT_BUG)
    assert exit_code_for(OSError(errno.ENOSPC, "No space left on device")) == EXIT_USAGE
    assert exit_code_for(OSError(errno.EROFS, "Read-only file system")) == EXIT_USAGE
    assert exit_code_for(KeyError("x")) == EXIT_BUG


@click.command()
@click.argument("what")
@guarded
def _command(what: str) -> int:
    """A command body as every labtax command has one, failing the way it is told."""
    if what == "bug":
        {}["a key nobody set"]  # the unexpected exception under test
    if what == "disk":
        raise OSError(errno.ENOSPC, "No space left on device", "/data/out/.ledger.sqlite")
    if what == "bidi":
        raise UsageError("knowledge/\u202egpj.exe/qna.yaml: document patterns ['*.md'] match no file")
    return 0


def test_a_bug_is_one_line_with_a_log_and_exit_3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABTAX_LOG_DIR", str(tmp_path / "logs"))
    result = CliRunner().invoke(_command, ["bug"])
    assert result.exit_code == EXIT_BUG, result.output
    lines = result.output.splitlines()
    assert len(lines) == 1 and lines[0].startswith("labtax: error: unexpected KeyError:"), lines
    assert "a bug in labtax" in lines[0] and "Traceback" not in result.output
    logs = list((tmp_path / "logs").glob("labtax-bug-*.log"))
    assert len(logs) == 1 and str(logs[0]) in lines[0]
    text = logs[0].read_text()
    assert "Traceback (most recent call last)" in text and "a key nobody set" in text


def test_a_full_disk_is_one_line_naming_the_path_exit_2() -> None:
    result = CliRunner().invoke(_command, ["disk"])
    assert result.exit_code == EXIT_USAGE
    assert result.output == "labtax: error: /data/out/.ledger.sqlite: No space left on device\n"


def _labtax_into_a_closed_pipe(args: list[str], cwd: Path) -> subprocess.CompletedProcess[bytes]:
    """Run labtax with a standard output whose reader is already gone (what `| head -1` leaves)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run([sys.executable, "-m", "labtax", *args], stdout=write_end, stderr=subprocess.PIPE,
                              cwd=cwd, check=False, timeout=120)
    finally:
        os.close(write_end)


def test_list_rules_into_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    proc = _labtax_into_a_closed_pipe(["validate", "--list-rules"], tmp_path)
    assert proc.returncode == EXIT_OK and proc.stderr == b""


def test_a_closed_pipe_keeps_the_commands_own_code(tmp_path: Path) -> None:
    leaf = tmp_path / "compositional_skills" / "writing" / "haiku" / "qna.yaml"
    leaf.parent.mkdir(parents=True)
    leaf.write_text(LEAF_WITHOUT_TASK)
    proc = _labtax_into_a_closed_pipe(["validate", "--taxonomy", str(tmp_path)], tmp_path)
    assert proc.returncode == EXIT_FINDINGS and b"Broken pipe" not in proc.stderr, proc.stderr


def test_head_under_pipefail(tmp_path: Path) -> None:
    labtax = f"{sys.executable} -m labtax"
    proc = subprocess.run(["bash", "-o", "pipefail", "-c", f"{labtax} validate --list-rules | head -1"],
                          capture_output=True, text=True, cwd=tmp_path, check=False, timeout=120)
    assert proc.returncode == 0 and proc.stderr == "" and len(proc.stdout.splitlines()) == 1


def test_an_error_quoting_a_path_escapes_its_bidi_controls() -> None:
    result = CliRunner().invoke(_command, ["bidi"])
    assert result.exit_code == EXIT_USAGE and "\u202e" not in result.output
    assert result.output.startswith("labtax: error: knowledge/\\342\\200\\256gpj.exe/qna.yaml: document")
