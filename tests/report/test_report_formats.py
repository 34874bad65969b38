"""The four output formats: text, json, github (annotations + step summary), sarif 2.1.0."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labtax.report import FORMATS, ReportContext, render
from labtax.report.github import ANNOTATION_LIMIT
from labtax.taxonomy.catalog import RULES
from labtax.taxonomy.model import Finding

LEAF = "compositional_skills/a/qna.yaml"


def finding(rule: str = "schema-required", severity: str = "error", line: int = 3, **kw: object) -> Finding:
    return Finding(rule, severity, kw.get("path", LEAF), line, 5, kw.get("message", "missing 'x'"),  # type: ignore[arg-type]
                   kw.get("yaml_path", "seed_examples[0]"), kw.get("hint", "add it"))  # type: ignore[arg-type]


def ctx(tmp_path: Path, **kw: object) -> ReportContext:
    return ReportContext(root=tmp_path, files_checked=kw.get("files", 4), display_prefix=kw.get("display", ""),  # type: ignore[arg-type]
                         repo_prefix=kw.get("repo", "tax/"), repo_root=tmp_path)  # type: ignore[arg-type]


def test_text_line_shape(tmp_path: Path) -> None:
    out = render("text", [finding(), finding("word-limit", "warning", 9, hint=None)], ctx(tmp_path, display="t/"))
    lines = out.splitlines()
    assert lines[0] == f"t/{LEAF}:3:5: error [schema-required] missing 'x' (at seed_examples[0])"
    assert lines[1] == "    hint: add it"
    assert lines[2].startswith(f"t/{LEAF}:9:5: warning [word-limit]")
    assert lines[-1] == "labtax validate: 4 file(s) checked, 1 error(s), 1 warning(s) in 1 file(s)"


def test_text_clean(tmp_path: Path) -> None:
    assert render("text", [], ctx(tmp_path)) == "labtax validate: 4 file(s) checked, no problems\n"


def test_json_shape_is_stable(tmp_path: Path) -> None:
    data = json.loads(render("json", [finding(), finding("word-limit", "warning")], ctx(tmp_path, display="t/")))
    assert data["format"] == "labtax.validate/1"
    assert set(data) == {"format", "tool", "root", "files_checked", "summary", "findings"}
    assert data["summary"] == {"errors": 1, "warnings": 1, "files_with_findings": 1}
    first = data["findings"][0]
    assert first == {"path": LEAF, "file": f"t/{LEAF}", "line": 3, "col": 5, "severity": "error",
                     "rule": "schema-required", "message": "missing 'x'", "yaml_path": "seed_examples[0]",
                     "hint": "add it"}


def test_json_matches_its_published_schema(tmp_path: Path) -> None:
    from importlib import resources

    from jsonschema import Draft202012Validator

    schema = json.loads(resources.files("labtax.schema").joinpath("validate-report.json").read_text())
    Draft202012Validator.check_schema(schema)
    data = json.loads(render("json", [finding(), finding(hint=None, yaml_path="")], ctx(tmp_path)))
    Draft202012Validator(schema).validate(data)


def test_github_annotations_escape_and_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    findings = [finding(line=i, message=f"bad: 100% wrong, line {i}\nsecond") for i in range(1, 16)]
    findings += [finding("word-limit", "warning", line=i) for i in range(1, 13)]
    out = render("github", findings, ctx(tmp_path)).splitlines()
    errors = [line for line in out if line.startswith("::error ")]
    warnings = [line for line in out if line.startswith("::warning ")]
    assert len(errors) == ANNOTATION_LIMIT and len(warnings) == ANNOTATION_LIMIT
    assert errors[0].startswith(f"::error file=tax/{LEAF},line=1,col=5,title=labtax schema-required::")
    assert "100%25 wrong" in errors[0] and "%0Asecond" in errors[0]
    assert any(line.startswith("::notice") and "5 more error(s) and 2 more warning(s)" in line for line in out)
    table = summary.read_text()
    assert "| ❌ |" in table and table.count(f"`tax/{LEAF}`") == 27 and "### labtax validate: 15 error(s)" in table


def test_github_without_summary_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    out = render("github", [finding()], ctx(tmp_path))
    assert out.startswith("::error file=") and not any(tmp_path.iterdir())


def test_sarif_2_1_0_structure(tmp_path: Path) -> None:
    data = json.loads(render("sarif", [finding(), finding("word-limit", "warning", yaml_path="")], ctx(tmp_path)))
    assert data["version"] == "2.1.0" and "sarif-2.1.0" in data["$schema"]
    [run] = data["runs"]
    driver = run["tool"]["driver"]
    assert driver["name"] == "labtax" and [r["id"] for r in driver["rules"]] == list(RULES)
    assert run["originalUriBaseIds"]["SRCROOT"]["uri"] == tmp_path.resolve().as_uri() + "/"
    first, second = run["results"]
    assert first["ruleId"] == "schema-required" and first["level"] == "error"
    assert driver["rules"][first["ruleIndex"]]["id"] == "schema-required"
    location = first["locations"][0]["physicalLocation"]
    assert location["artifactLocation"] == {"uri": f"tax/{LEAF}", "uriBaseId": "SRCROOT"}
    assert location["region"] == {"startLine": 3, "startColumn": 5}
    assert first["locations"][0]["logicalLocations"][0]["fullyQualifiedName"] == "seed_examples[0]"
    assert second["level"] == "warning" and "logicalLocations" not in second["locations"][0]
    levels = {r["defaultConfiguration"]["level"] for r in driver["rules"]}
    assert levels <= {"error", "warning", "note"}


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_renders_empty(tmp_path: Path, fmt: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    assert render(fmt, [], ctx(tmp_path)).endswith("\n")
