"""`labtax diff` on the command line: text and JSON output, the empty case, errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner
from diff_helpers import ADD, POEMS, ROME, skill
from gitrepo import GitRepo

from labtax.cli import cli


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["diff", *args])
    return result.exit_code, result.stdout, result.stderr


def test_text_output_sorted_one_line_per_leaf(tax: GitRepo) -> None:
    tax.git("mv", "compositional_skills/writing", "compositional_skills/prose")
    tax.write("knowledge/history/athens/qna.yaml", (tax.root / ROME).read_text().replace("rome", "athens"))
    tax.git("rm", "-q", ADD)
    tax.commit("changes")
    tax.write("knowledge/history/rome/attribution.txt", "edited\n")  # working tree only
    code, out, err = run("--taxonomy", str(tax.root), "--base", "main")
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "R compositional_skills/writing/poems/qna.yaml -> compositional_skills/prose/poems/qna.yaml",
        f"D {ADD}",
        "A knowledge/history/athens/qna.yaml",
        f"M {ROME}",
    ]


def test_json_output(tax: GitRepo) -> None:
    tax.write(POEMS, skill("poems", extra=" edit"))
    head = tax.commit("edit")
    code, out, _ = run("--taxonomy", str(tax.root), "--base", "main", "--head", "feature", "--format", "json")
    assert code == 0
    assert json.loads(out) == {
        "base": tax.git("rev-parse", "main"),
        "head": head,
        "changes": [
            {
                "status": "modified",
                "path": POEMS,
                "old_path": None,
                "kind": "compositional_skills",
                "reasons": ["qna"],
            }
        ],
    }


def test_json_working_tree_head_is_null(tax: GitRepo) -> None:
    code, out, err = run("--taxonomy", str(tax.root), "--format", "json")
    assert code == 0 and json.loads(out)["head"] is None and json.loads(out)["changes"] == []
    assert err.strip() == "no changed leaves"


def test_no_changed_leaves_is_not_an_error(tax: GitRepo) -> None:
    tax.write("README.md", "only a non-leaf file changed\n")
    code, out, err = run("--taxonomy", str(tax.root))
    assert (code, out, err.strip()) == (0, "", "no changed leaves")


def test_errors_exit_2_with_one_line(tax: GitRepo, tmp_path: Path) -> None:
    for args, expected in [
        (["--taxonomy", str(tax.root), "--base", "nope"], "unknown ref: nope"),
        (["--taxonomy", str(tmp_path)], "not a git repository"),
    ]:
        code, out, err = run(*args)
        assert code == 2 and out == ""
        assert len(err.strip().splitlines()) == 1 and expected in err and "Traceback" not in err


def test_end_to_end_process_with_odd_paths(tax: GitRepo) -> None:
    path = "compositional_skills/écriture/haïku et tanka/qna.yaml"
    tax.write(path, skill("haiku"))
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    proc = subprocess.run(
        [sys.executable, "-m", "labtax", "diff", "--base", "main"],
        cwd=tax.root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"A {path}\n"


def test_file_name_that_is_not_utf8(tax: GitRepo) -> None:
    raw = b"compositional_skills/caf\xe9/qna.yaml"
    tax.write(os.fsdecode(raw), skill("latin-1 name"))
    tax.commit("latin-1")
    proc = subprocess.run(
        [sys.executable, "-m", "labtax", "diff", "--base", "main", "--head", "HEAD"],
        cwd=tax.root,
        capture_output=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"A " + raw + b"\n"
