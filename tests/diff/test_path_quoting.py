"""A leaf folder named with newlines cannot forge lines of labtax's output: text output quotes such
paths as git does (core.quotePath), GitHub annotations escape them (%0A, %0D, %25), and diff-generate
reads such a leaf at --head as in the working tree."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sdg"))

from lab_taxonomy import ATTRIBUTION, manifest, run_cli, skill_yaml, teacher_args


def quote_path(path: str) -> str:
    from labtax.util.quoting import quote_path as quote

    return quote(path)
EVIL = "compositional_skills/x\n::warning file=README.md,line=1::forged\n/leaf"


def _forged(text: str) -> bool:
    return any(line.startswith("::warning file=README.md") for line in text.splitlines())


def _evil_repo(git_repo, *, valid: bool = True) -> None:  # type: ignore[no-untyped-def]
    git_repo.write(f"{EVIL}/qna.yaml", skill_yaml("evil") if valid else "version: 2\nseed_examples: [\n")
    git_repo.write(f"{EVIL}/attribution.txt", ATTRIBUTION)
    git_repo.commit("a leaf with newlines in its folder name")


def test_quote_path_matches_git(git_repo) -> None:  # type: ignore[no-untyped-def]
    names = ["plain/qna.yaml", "caf\u00e9", 'a"b\\c', "tab\there", "x\n::y"]
    for name in names:
        git_repo.write(name, "x")
    git_repo.git("add", "-A")
    printed = git_repo.git("-c", "core.quotePath=false", "ls-files").split("\n")
    assert sorted(printed) == sorted(quote_path(n) for n in names)


def test_diff_quotes_a_path_with_newlines(git_repo) -> None:  # type: ignore[no-untyped-def]
    _evil_repo(git_repo)
    code, text = run_cli(["diff", "--taxonomy", str(git_repo.root), "--base", "empty", "--head", "HEAD"])
    assert code == 0 and not _forged(text)
    assert text == f"A {quote_path(EVIL + '/qna.yaml')}\n"
    assert text.startswith('A "compositional_skills/x\\n::warning')


def test_diff_generate_reads_such_a_leaf_at_head_and_quotes_it(git_repo, openai_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _evil_repo(git_repo)
    for head in (["--head", "HEAD"], []):
        out = tmp_path / f"out{len(head)}"
        code, text = run_cli(["diff-generate", "--taxonomy", str(git_repo.root), "--base", "empty",
                              "--output", str(out), *head, *teacher_args(openai_server)])
        assert code == 0, text
        assert not _forged(text)
        assert f"generated {quote_path(EVIL + '/qna.yaml')}" in text
        entries = {e["path"]: e["status"] for e in manifest(out)["leaves"]}
        assert entries == {f"{EVIL}/qna.yaml": "generated"}


def test_validate_output_cannot_forge_a_workflow_command(git_repo, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "summary.md"))
    _evil_repo(git_repo, valid=False)
    for fmt in ("text", "github"):
        code, text = run_cli(["validate", "--taxonomy", str(git_repo.root), "--format", fmt])
        assert code == 1 and not _forged(text), text
    code, text = run_cli(["validate", "--taxonomy", str(git_repo.root), "--format", "github"])
    assert "file=compositional_skills/x%0A%3A%3Awarning file=README.md%2Cline=1%3A%3Aforged%0A/leaf/qna.yaml" in text


BIDI_LEAF = "compositional_skills/\u202egpj.exe"  # U+202E: shown as "exe.jpg" reversed when printed raw


def test_bidi_controls_are_quoted_as_git_quotes_them(git_repo) -> None:  # type: ignore[no-untyped-def]
    names = [BIDI_LEAF + "/qna.yaml", "a/\u2066b\u2069/c", "plain/qna.yaml"]
    for name in names:
        git_repo.write(name, "x")
    git_repo.git("add", "-A")
    # These names are ASCII but for the controls: git's default quoting (core.quotePath=true) is the reference.
    printed = git_repo.git("-c", "core.quotePath=true", "ls-files").split("\n")
    assert sorted(printed) == sorted(quote_path(n) for n in names)
    assert quote_path(BIDI_LEAF) == '"compositional_skills/\\342\\200\\256gpj.exe"'


def test_diff_and_annotations_never_print_a_bidi_control(git_repo, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "summary.md"))
    git_repo.write(f"{BIDI_LEAF}/qna.yaml", "version: 2\nseed_examples: [\n")
    git_repo.write(f"{BIDI_LEAF}/attribution.txt", ATTRIBUTION)
    git_repo.commit("a leaf whose name reads backwards")
    code, text = run_cli(["diff", "--taxonomy", str(git_repo.root), "--base", "empty", "--head", "HEAD"])
    assert code == 0 and text == f"A {quote_path(BIDI_LEAF + '/qna.yaml')}\n"
    for fmt in ("text", "github"):
        code, text = run_cli(["validate", "--taxonomy", str(git_repo.root), "--format", fmt])
        assert code == 1 and "\\342\\200\\256gpj.exe" in text, text
        assert "\u202e" not in text
    assert "\u202e" not in (tmp_path / "summary.md").read_text()
