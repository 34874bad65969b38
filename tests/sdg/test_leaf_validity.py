"""One definition of a valid leaf: diff-generate (and --dry-run) apply validate's checks, skip an
invalid leaf with its findings (file:line:col) and generate every other leaf; nothing outside the
repository (a symlinked qna.yaml, the repository's own .git) ever becomes training data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from lab_taxonomy import (
    ATTRIBUTION,
    add_knowledge,
    add_skill,
    manifest,
    prompts_of,
    run_cli,
    skill_yaml,
    teacher_args,
)

from labtax.errors import ConfigError
from labtax.taxonomy.config import Config, load_config

BROKEN = {
    "seed_examples: 7": skill_yaml("x").split("seed_examples:")[0] + "seed_examples: 7\n",
    "duplicate key": skill_yaml("x").replace("version: 2\n", "version: 2\nversion: 2\n"),
}


def dg(repo, out: Path, server, *extra: str) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    return run_cli(["diff-generate", "--taxonomy", str(repo.root), "--base", "empty", "--output", str(out),
                    *extra, *teacher_args(server)])


def _written(out: Path) -> str:
    return "".join(p.read_text("utf-8", "replace") for p in out.rglob("*.json*") if p.is_file())


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_a_leaf_validate_rejects_is_skipped_with_its_findings(git_repo, openai_server, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                              name: str) -> None:
    add_skill(git_repo, "compositional_skills/writing/haiku")
    git_repo.write("compositional_skills/bad/leaf/qna.yaml", BROKEN[name])
    git_repo.write("compositional_skills/bad/leaf/attribution.txt", ATTRIBUTION)
    git_repo.commit("taxonomy")
    validate_code, _ = run_cli(["validate", "--taxonomy", str(git_repo.root)])
    assert validate_code == 1
    out = tmp_path / "out"
    code, text = dg(git_repo, out, openai_server, "--dry-run")
    assert code == 1 and "Traceback" not in text
    assert "invalid   compositional_skills/bad/leaf/qna.yaml: compositional_skills/bad/leaf/qna.yaml:" in text
    code, text = dg(git_repo, out, openai_server, "--head", "HEAD")
    assert code == 1, text
    entries = {e["path"]: e for e in manifest(out)["leaves"]}
    bad = entries["compositional_skills/bad/leaf/qna.yaml"]
    assert bad["status"] == "invalid" and bad["error"].startswith("compositional_skills/bad/leaf/qna.yaml:")
    line_col = bad["error"].split(":")[1:3]
    assert all(part.isdigit() for part in line_col), bad["error"]
    assert entries["compositional_skills/writing/haiku/qna.yaml"]["status"] == "generated"


@pytest.mark.parametrize("field", ["patterns", "questions_and_answers"])
def test_a_knowledge_leaf_with_a_wrong_type_is_skipped(git_repo, openai_server, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                       field: str) -> None:
    add_skill(git_repo, "compositional_skills/writing/haiku")
    path = add_knowledge(git_repo, "knowledge/astro/moon")
    text = (git_repo.root / path).read_text()
    if field == "patterns":
        text = text.replace("  patterns:\n    - '*.md'", "  patterns: 5")
    else:
        head, _, rest = text.partition("    questions_and_answers:\n")
        block_end = rest.index("  - context:")
        text = head + "    questions_and_answers: 7\n" + rest[block_end:]
    git_repo.write(path, text)
    git_repo.commit("taxonomy")
    out = tmp_path / "out"
    code, out_text = dg(git_repo, out, openai_server)
    assert code == 1 and "Traceback" not in out_text
    assert "invalid   knowledge/astro/moon/qna.yaml: knowledge/astro/moon/qna.yaml:" in out_text
    assert "[schema-type]" in out_text
    assert {e["path"]: e["status"] for e in manifest(out)["leaves"]}["compositional_skills/writing/haiku/qna.yaml"] \
        == "generated"


@pytest.mark.parametrize("how", ["absolute", "relative"])
def test_a_symlinked_qna_yaml_outside_the_repository_is_refused(git_repo, openai_server, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                                how: str) -> None:
    outside = tmp_path / "outside.yaml"
    outside.write_text(skill_yaml("stolen", topic="OUTSIDE-SECRET-TEXT"), encoding="utf-8")
    add_skill(git_repo, "compositional_skills/writing/haiku")
    link = git_repo.root / "compositional_skills/evil/leaf/qna.yaml"
    link.parent.mkdir(parents=True)
    (link.parent / "attribution.txt").write_text(ATTRIBUTION)
    os.symlink(str(outside) if how == "absolute" else os.path.relpath(outside, link.parent), link)
    git_repo.commit("taxonomy")
    assert run_cli(["validate", "--taxonomy", str(git_repo.root)])[0] == 1
    for head in ([], ["--head", "HEAD"]):  # the working tree, and the committed link
        out = tmp_path / f"out{len(head)}"
        code, text = dg(git_repo, out, openai_server, *head)
        assert code == 1, text
        assert "compositional_skills/evil/leaf/qna.yaml:1:1: symlink points outside the repository" in text
        assert "[symlink-outside]" in text
        assert "OUTSIDE-SECRET-TEXT" not in _written(out)
    assert not any("OUTSIDE-SECRET-TEXT" in p for p in prompts_of(openai_server))


def test_a_document_folder_inside_the_git_directory_is_refused(git_repo, openai_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    git_repo.git("config", "http.extraheader", "AUTHORIZATION: basic GIT-CONFIG-TOKEN")
    add_skill(git_repo, "compositional_skills/writing/haiku")
    path = add_knowledge(git_repo, "knowledge/astro/moon")
    text = (git_repo.root / path).read_text().replace("repo: .documents/moon", "repo: .git")
    git_repo.write(path, text.replace("    - '*.md'", "    - config"))
    git_repo.commit("taxonomy")
    code, vtext = run_cli(["validate", "--taxonomy", str(git_repo.root)])
    assert code == 1 and "document-git-dir" in vtext
    out = tmp_path / "out"
    code, text = dg(git_repo, out, openai_server)
    assert code == 1 and "knowledge/astro/moon/qna.yaml" in text
    assert "GIT-CONFIG-TOKEN" not in _written(out)
    assert not any("GIT-CONFIG-TOKEN" in p or "extraheader" in p for p in prompts_of(openai_server))


def test_a_nested_git_directory_is_refused_by_the_document_reader(git_repo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from labtax.errors import UsageError
    from labtax.sdg.documents import load_documents
    from labtax.taxonomy.leaves import load_leaf

    # A folder that is a git directory under another name (a copied .git), reached by a symlink.
    git_repo.write("docs/real.md", "text\n")
    (git_repo.root / "gitcopy").symlink_to(git_repo.root / ".git")
    path = add_knowledge(git_repo, "knowledge/astro/moon")
    text = (git_repo.root / path).read_text().replace("repo: .documents/moon", "repo: gitcopy")
    git_repo.write(path, text.replace("    - '*.md'", "    - config"))
    leaf = load_leaf(git_repo.root, path)
    with pytest.raises(UsageError, match="inside a git directory"):
        load_documents(leaf, git_repo.root)


def test_a_document_symlink_leaving_the_document_root_is_refused(git_repo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from labtax.errors import UsageError
    from labtax.sdg.documents import load_documents
    from labtax.taxonomy.leaves import load_leaf

    secret = tmp_path / "secret.md"
    secret.write_text("OUTSIDE\n")
    path = add_knowledge(git_repo, "knowledge/astro/moon")
    (git_repo.root / ".documents/moon/leak.md").symlink_to(secret)
    with pytest.raises(UsageError, match="link out of the document"):
        load_documents(load_leaf(git_repo.root, path), git_repo.root)


@pytest.mark.parametrize("rule", ["yaml-syntax", "encoding", "schema-type"])
def test_safety_rules_cannot_be_disabled(tmp_path: Path, rule: str) -> None:
    (tmp_path / ".labtax.yaml").write_text(f"validate:\n  disable: [{rule}]\n")
    with pytest.raises(ConfigError, match="cannot be disabled"):
        load_config(tmp_path)
    broad = Config(disable=("yaml-*", "schema-*", "enc*"))
    assert not broad.disabled(rule) and broad.disabled("yaml-trailing-space")


def test_validate_takes_the_policy_from_the_base_commit(git_repo) -> None:  # type: ignore[no-untyped-def]
    add_skill(git_repo, "compositional_skills/writing/haiku")
    base = git_repo.commit("base policy: none")
    # The pull request relaxes the policy and adds a leaf that needs the relaxed policy.
    git_repo.write(".labtax.yaml", "validate:\n  disable: [attribution]\n  max_file_bytes: 99999999\n")
    git_repo.write("compositional_skills/writing/free/qna.yaml", skill_yaml("free"))
    git_repo.commit("pull request")
    from labtax.taxonomy.config import load_config_at

    assert load_config_at(git_repo.root, base) == Config()
    assert run_cli(["validate", "--taxonomy", str(git_repo.root)])[0] == 0  # its own policy
    code, text = run_cli(["validate", "--taxonomy", str(git_repo.root), "--config-ref", base])
    assert code == 1 and "[attribution]" in text
