"""Knowledge documents: real git repositories at pinned commits, local folders, PDFs, escapes, chunks."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from gitrepo import GitRepo
from sdgleaves import PLANETS_MD, knowledge_data, make_leaf

from labtax.errors import UsageError
from labtax.sdg.dedup import Deduper, jaccard, normalize, shingles
from labtax.sdg.documents import chunk_text, estimate_tokens, load_documents


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("LABTAX_CACHE", str(cache))
    return cache


def _doc_repo(make_git_repo: Callable[[str], GitRepo]) -> tuple[GitRepo, str, str]:
    repo = make_git_repo("docs")
    repo.write("planets.md", PLANETS_MD)
    repo.write("notes/extra.txt", "Pinned text, first version.")
    pinned = repo.commit("v1")
    repo.write("notes/extra.txt", "Later text that the pin must not see.")
    repo.write("later.md", "added later")
    later = repo.commit("v2")
    return repo, pinned, later


def test_file_url_repository_at_a_pinned_commit(make_git_repo: Callable[[str], GitRepo], _cache: Path) -> None:
    repo, pinned, _ = _doc_repo(make_git_repo)
    leaf = make_leaf("knowledge/a/qna.yaml", knowledge_data(f"file://{repo.root}", pinned, ["*.md", "notes/*.txt"]))
    docs = load_documents(leaf, Path("/nonexistent-taxonomy"))
    assert [d.path for d in docs] == ["notes/extra.txt", "planets.md"]
    assert docs[0].text == "Pinned text, first version."
    assert docs[1].text == PLANETS_MD
    checkout = _cache / "documents" / pinned
    # Only that commit was fetched: a shallow history of one commit.
    count = subprocess.run(["git", "rev-list", "--count", "HEAD"], cwd=checkout, capture_output=True, text=True, check=True)
    assert count.stdout.strip() == "1"
    # Second load reads the cache (the source may even be gone).
    repo.git("checkout", "-q", "--detach")
    again = load_documents(leaf, Path("/nonexistent-taxonomy"))
    assert again == docs


def test_relative_repository_inside_the_taxonomy(make_git_repo: Callable[[str], GitRepo]) -> None:
    tax = make_git_repo("tax")
    docs = GitRepo(tax.root / ".documents" / "planets")
    docs.write("planets.md", PLANETS_MD)
    pinned = docs.commit("v1")
    docs.write("planets.md", "changed after the pin")
    docs.commit("v2")
    leaf = make_leaf("knowledge/a/qna.yaml", knowledge_data(".documents/planets", pinned, ["*.md"]))
    assert load_documents(leaf, tax.root)[0].text == PLANETS_MD


def test_plain_folder_is_read_directly(tmp_path: Path) -> None:
    folder = tmp_path / "tax" / "docs" / "p"
    folder.mkdir(parents=True)
    (folder / "a.md").write_text("alpha text", encoding="utf-8")
    (folder / "sub").mkdir()
    (folder / "sub" / "b.txt").write_text("beta text", encoding="utf-8")
    leaf = make_leaf("knowledge/a/qna.yaml", knowledge_data("docs/p", "", ["**/*.md", "**/*.txt"]))
    docs = load_documents(leaf, tmp_path / "tax")
    assert [(d.path, d.text) for d in docs] == [("a.md", "alpha text"), ("sub/b.txt", "beta text")]


def test_pdf_text_is_extracted(tmp_path: Path) -> None:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=12)
    pdf.multi_cell(0, 10, "Jupiter is the largest planet. Its Great Red Spot is a storm.")
    folder = tmp_path / "docs"
    folder.mkdir()
    pdf.output(str(folder / "jupiter.pdf"))
    leaf = make_leaf("knowledge/a/qna.yaml", knowledge_data("docs", "", ["*.pdf"]))
    (doc,) = load_documents(leaf, tmp_path)
    assert doc.path == "jupiter.pdf"
    assert "largest planet" in doc.text and "Great Red Spot" in doc.text


@pytest.mark.parametrize("pattern", ["../secret.md", "/etc/passwd", "sub/../../x.md", "..\\x"])
def test_patterns_that_leave_the_repository_are_refused(tmp_path: Path, pattern: str) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("a", encoding="utf-8")
    (tmp_path / "secret.md").write_text("secret", encoding="utf-8")
    leaf = make_leaf("knowledge/a/qna.yaml", knowledge_data("docs", "", ["*.md", pattern]))
    if pattern == "..\\x":
        # A backslash is an ordinary character in a posix glob: it simply matches nothing.
        assert [d.path for d in load_documents(leaf, tmp_path)] == ["a.md"]
        return
    with pytest.raises(UsageError, match="leaves the document repository"):
        load_documents(leaf, tmp_path)


@pytest.mark.parametrize("repo", ["../outside", "/abs/path", "docs/../../outside"])
def test_repo_paths_that_leave_the_taxonomy_are_refused(tmp_path: Path, repo: str) -> None:
    leaf = make_leaf("knowledge/a/qna.yaml", knowledge_data(repo, "", ["*.md"]))
    with pytest.raises(UsageError, match="leaves the taxonomy"):
        load_documents(leaf, tmp_path / "tax")


def test_symlink_out_of_the_documents_is_refused(tmp_path: Path) -> None:
    (tmp_path / "secret.md").write_text("secret", encoding="utf-8")
    docs = tmp_path / "tax" / "docs"
    docs.mkdir(parents=True)
    (docs / "link.md").symlink_to(tmp_path / "secret.md")
    leaf = make_leaf("knowledge/a/qna.yaml", knowledge_data("docs", "", ["*.md"]))
    with pytest.raises(UsageError, match="link out"):
        load_documents(leaf, tmp_path / "tax")


def test_bad_commit_and_no_match_are_clear_errors(make_git_repo: Callable[[str], GitRepo], tmp_path: Path) -> None:
    repo, pinned, _ = _doc_repo(make_git_repo)
    leaf = make_leaf("knowledge/a/qna.yaml", knowledge_data(f"file://{repo.root}", "main", ["*.md"]))
    with pytest.raises(UsageError, match="full commit SHA"):
        load_documents(leaf, tmp_path)
    leaf = make_leaf("knowledge/a/qna.yaml", knowledge_data(f"file://{repo.root}", "0" * 40, ["*.md"]))
    with pytest.raises(UsageError, match="git fetch failed"):
        load_documents(leaf, tmp_path)
    leaf = make_leaf("knowledge/a/qna.yaml", knowledge_data(f"file://{repo.root}", pinned, ["*.pdf"]))
    with pytest.raises(UsageError, match="match no file"):
        load_documents(leaf, tmp_path)


def test_chunks_respect_the_token_budget() -> None:
    chunks = chunk_text(PLANETS_MD, 50)
    assert len(chunks) > 2
    assert all(tokens <= 50 for _, tokens in chunks)
    assert all(estimate_tokens(text) <= 50 + 3 for text, _ in chunks)
    # Nothing lost, order kept.
    assert " ".join(t for t, _ in chunks).split() == PLANETS_MD.split()
    long_para = " ".join(f"word{i}" for i in range(500))
    pieces = chunk_text(long_para, 40)
    assert all(tokens <= 40 for _, tokens in pieces)
    assert " ".join(t for t, _ in pieces).split() == long_para.split()


def test_chunking_with_a_real_tokenizer_counts() -> None:
    def count(text: str) -> int:
        return len(text.encode("utf-8")) // 4 + 1  # a byte-level stand-in for a tokenizer's count

    chunks = chunk_text(PLANETS_MD, 40, count)
    assert all(tokens <= 40 for _, tokens in chunks)


def test_dedup_exact_and_near() -> None:
    d = Deduper(0.8)
    d.add("Write a poem about the river at dawn.")
    assert d.check("write a POEM about the river at dawn!") == "exact"
    assert d.check("How do glaciers carve deep valleys over thousands of years in the northern mountains?") is None
    assert d.check("How do glaciers carve deep valleys over thousands of years in the northern mountains, please?") == "near"
    assert d.check("Why do volcanoes erupt and what happens to the surrounding land afterwards?") is None
    assert normalize("  Héllo,   World! ") == "héllo world"
    assert jaccard(shingles("a b c d"), shingles("a b c d")) == 1.0
    assert jaccard(shingles("a b c d"), shingles("w x y z")) == 0.0


LFS_POINTER = ("version https://git-lfs.github.com/spec/v1\n"
               "oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\nsize 12345\n")


def test_a_git_lfs_pointer_is_not_a_document(tmp_path: Path) -> None:
    folder = tmp_path / "tax" / "docs" / "p"
    folder.mkdir(parents=True)
    (folder / "a.md").write_text(LFS_POINTER, encoding="utf-8")  # cloned without `git lfs pull`
    leaf = make_leaf("knowledge/a/qna.yaml", knowledge_data("docs/p", "", ["*.md"]))
    with pytest.raises(UsageError, match=r"knowledge/a/qna.yaml: document 'a.md' is a Git LFS pointer") as info:
        load_documents(leaf, tmp_path / "tax")
    assert "git lfs pull" in str(info.value)


def test_diff_generate_reports_the_leaf_of_an_lfs_pointer(git_repo: GitRepo, openai_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from lab_taxonomy import add_knowledge, run_cli, teacher_args

    add_knowledge(git_repo, "knowledge/history/archive", doc=LFS_POINTER)
    git_repo.commit("a knowledge leaf whose document is an LFS pointer")
    code, text = run_cli(["diff-generate", "--taxonomy", str(git_repo.root), "--base", "empty", "--head", "HEAD",
                          "--output", str(tmp_path / "out"), *teacher_args(openai_server)])
    said = [line for line in text.splitlines() if "Git LFS pointer" in line]
    assert code == 1 and len(said) == 1 and "knowledge/history/archive/qna.yaml" in said[0], text
    assert openai_server.count() == 0
