"""`labtax validate` as a user (and CI) runs it: exit codes, formats, paths, defaults, imports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from gitrepo import GitRepo

from labtax.cli import cli

HERE = Path(__file__).parent
GOOD = HERE / "taxonomy" / "examples" / "good"
BAD = HERE / "taxonomy" / "examples" / "bad"
HAIKU = "compositional_skills/writing/poetry/haiku"
SKILL = (GOOD / HAIKU / "qna.yaml").read_text()


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["validate", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


def test_validate_help_does_not_import_torch() -> None:
    out = subprocess.run([sys.executable, "-X", "importtime", "-m", "labtax", "validate", "--help"],
                         capture_output=True, text=True, check=True)
    imported = {line.split("|")[-1].strip().split(".")[0] for line in out.stderr.splitlines() if "|" in line}
    assert "labtax" in imported and "click" in imported
    assert not imported & {"torch", "transformers", "numpy", "git", "aiohttp"}
    assert "--format" in out.stdout


def test_validating_does_not_import_heavy_modules() -> None:
    code = ("import sys; from labtax.cli import cli\n"
            "try:\n    cli(['validate', '--taxonomy', sys.argv[1]])\nexcept SystemExit as e:\n"
            "    assert e.code == 0, e.code\n"
            "bad = {'torch', 'transformers', 'git', 'aiohttp', 'numpy'} & {m.split('.')[0] for m in sys.modules}\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code, str(GOOD)], check=True, capture_output=True)


def test_exit_0_on_clean_or_warnings_only() -> None:
    code, output = invoke("--taxonomy", str(GOOD))
    assert code == 0 and "0 error(s)" in output and "warning" in output


def test_exit_1_on_errors_and_strict_promotes_warnings() -> None:
    assert invoke("--taxonomy", str(BAD))[0] == 1
    rel = "knowledge/science/biology/qa_extra_key"
    assert invoke("--taxonomy", str(GOOD), str(GOOD / rel))[0] == 0
    code, output = invoke("--taxonomy", str(GOOD), "--strict", str(GOOD / rel))
    assert code == 1 and "error [unknown-key]" in output


@pytest.mark.parametrize(
    "args",
    [["/no/such/file.yaml"], ["--format", "xml"], ["--base", "main"], ["--changed", "x"]],
)
def test_exit_2_on_usage_errors(args: list[str]) -> None:
    code, output = invoke("--taxonomy", str(GOOD), *args)
    assert code == 2 and "Traceback" not in output


def test_exit_2_for_a_path_outside_the_taxonomy(tmp_path: Path) -> None:
    (tmp_path / "x.yaml").write_text("a: 1\n")
    code, output = invoke("--taxonomy", str(GOOD), str(tmp_path / "x.yaml"))
    assert code == 2 and "outside the taxonomy" in output


def test_exit_2_on_a_bad_config(tmp_path: Path) -> None:
    (tmp_path / ".labtax.yaml").write_text("validate:\n  disable: [nonsense]\n")
    code, output = invoke("--taxonomy", str(tmp_path))
    assert code == 2 and "nonsense" in output


def test_config_file_disables_and_sets_strict(tmp_path: Path) -> None:
    leaf = tmp_path / "compositional_skills" / "a" / "qna.yaml"
    leaf.parent.mkdir(parents=True)
    leaf.write_text(SKILL.replace("Write a haiku about a lighthouse at night.", "Write a haiku about the first snow of winter."))
    (leaf.parent / "attribution.txt").write_text("x\n")
    assert invoke("--taxonomy", str(tmp_path))[0] == 0
    (tmp_path / ".labtax.yaml").write_text("validate:\n  strict: true\n")
    assert invoke("--taxonomy", str(tmp_path))[0] == 1
    (tmp_path / ".labtax.yaml").write_text("validate:\n  strict: true\n  disable: [duplicate-question]\n")
    code, output = invoke("--taxonomy", str(tmp_path))
    assert code == 0 and "no problems" in output


def test_attribution_path_maps_to_its_leaf() -> None:
    code, output = invoke("--taxonomy", str(GOOD), str(GOOD / HAIKU / "attribution.txt"))
    assert code == 0 and "1 file(s) checked" in output


def test_default_root_is_the_git_work_tree(git_repo: GitRepo, monkeypatch: pytest.MonkeyPatch) -> None:
    git_repo.write(f"{HAIKU}/qna.yaml", SKILL)
    git_repo.write(f"{HAIKU}/attribution.txt", "x\n")
    git_repo.write("knowledge/broken/qna.yaml", "version: 3\n")
    git_repo.commit()
    monkeypatch.chdir(git_repo.root / HAIKU)
    code, output = invoke()
    assert code == 1
    # paths are shown relative to the current directory
    assert "../../../../knowledge/broken/qna.yaml:1:1: error [schema-required]" in output
    code, output = invoke("qna.yaml")
    assert code == 0 and output.startswith("labtax validate: 1 file(s) checked")


def test_json_and_output_file(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    code, _ = invoke("--taxonomy", str(BAD), "--format", "json", "--output", str(out))
    data = json.loads(out.read_text())
    assert code == 1 and data["summary"]["errors"] > 20 and data["files_checked"] == len(list(BAD.rglob("qna.y*ml")))


def test_sarif_uris_are_relative_to_the_git_work_tree(git_repo: GitRepo, monkeypatch: pytest.MonkeyPatch) -> None:
    git_repo.write("tax/knowledge/a/qna.yaml", "version: 3\n")
    monkeypatch.chdir(git_repo.root)
    code, output = invoke("--taxonomy", "tax", "--format", "sarif")
    data = json.loads(output)
    uri = data["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
    assert code == 1 and uri == "tax/knowledge/a/qna.yaml"


def test_github_format_writes_step_summary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "summary.md"))
    code, output = invoke("--taxonomy", str(BAD), "--format", "github")
    assert code == 1
    assert sum(1 for line in output.splitlines() if line.startswith("::error ")) == 10
    assert "| File | Line | Rule | Message |" in (tmp_path / "summary.md").read_text()


def test_empty_taxonomy_says_so(tmp_path: Path) -> None:
    # Issue 12: no leaf found is a usage error (exit 2), so a CI step pointed at the wrong folder fails.
    result = CliRunner().invoke(cli, ["validate", "--taxonomy", str(tmp_path)])
    assert result.exit_code == 2 and "no leaves found under" in result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output


def test_list_rules() -> None:
    code, output = invoke("--list-rules")
    assert code == 0 and "knowledge-version" in output and "word-limit" in output


def test_changed_validates_only_changed_leaves(git_repo: GitRepo, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("labtax.diff")
    git_repo.write(f"{HAIKU}/qna.yaml", SKILL)
    git_repo.write(f"{HAIKU}/attribution.txt", "x\n")
    git_repo.write("compositional_skills/old/qna.yaml", "version: 3\n")  # broken but unchanged
    git_repo.write("compositional_skills/gone/qna.yaml", SKILL)
    git_repo.write("compositional_skills/gone/attribution.txt", "x\n")
    base = git_repo.commit("base")
    git_repo.git("checkout", "-q", "-b", "topic")
    git_repo.write("compositional_skills/new/qna.yaml", SKILL.replace("version: 3", "version: 4"))
    git_repo.remove("compositional_skills/gone/qna.yaml")
    git_repo.commit("topic")
    monkeypatch.chdir(git_repo.root)
    code, output = invoke("--changed", "--base", base)
    assert code == 1
    assert "compositional_skills/new/qna.yaml" in output and "old/qna.yaml" not in output
    assert "gone" not in output and "1 file(s) checked" in output
