"""The git reading helpers the incremental generator uses, and document-pattern matching."""

from __future__ import annotations

import pytest
from diff_helpers import ADD, PHYSICS, POEMS, ROME, build_taxonomy, skill
from gitrepo import GitRepo

from labtax.diff import list_leaves_at, read_blob, read_blobs
from labtax.diff.documents import LocalDocuments, local_documents
from labtax.errors import GitError

ALL = [POEMS, ADD, ROME, PHYSICS]


def test_list_leaves_and_read_blob_in_a_subfolder_taxonomy(git_repo: GitRepo) -> None:
    build_taxonomy(git_repo, prefix="tax/")
    root = git_repo.root / "tax"
    git_repo.write("tax/foundational_skills/logic/qna.yaml", skill("logic"))  # untracked
    git_repo.write("tax/foundational_skills/ignored/qna.yaml.tmp", "ignored by *.tmp")
    git_repo.remove(f"tax/{ROME}")  # deleted in the working tree only
    assert list_leaves_at(root, "main") == sorted(ALL)
    assert list_leaves_at(root, None) == sorted([POEMS, ADD, "foundational_skills/logic/qna.yaml", PHYSICS])
    assert read_blob(root, "main", POEMS) == (git_repo.root / "tax" / POEMS).read_bytes()
    assert read_blob(root, None, "foundational_skills/logic/qna.yaml") == skill("logic").encode()
    assert set(read_blobs(root, "main", [POEMS, ROME, "knowledge/none/qna.yaml"])) == {POEMS, ROME}
    with pytest.raises(GitError, match="does not exist in main"):
        read_blob(root, "main", "knowledge/none/qna.yaml")
    with pytest.raises(GitError, match="does not exist in the working tree"):
        read_blob(root, None, ROME)
    with pytest.raises(GitError, match="unknown ref"):
        list_leaves_at(root, "nope")


def test_read_blob_at_an_old_revision(tax: GitRepo) -> None:
    old = (tax.root / POEMS).read_bytes()
    tax.write(POEMS, skill("poems", extra=" new"))
    tax.commit("edit")
    assert read_blob(tax.root, "HEAD~1", POEMS) == old
    assert read_blob(tax.root, "HEAD", POEMS) == skill("poems", extra=" new").encode()


@pytest.mark.parametrize(
    ("patterns", "path", "hit"),
    [
        (("*.md",), "docs/a.md", True),
        (("*.md",), "docs/sub/a.md", False),
        (("**/*.md",), "docs/sub/deeper/a.md", True),
        (("**/*.md",), "docs/a.md", True),
        (("sub/*.pdf",), "docs/sub/x.pdf", True),
        (("a?.txt",), "docs/ab.txt", True),
        (("[ab].txt",), "docs/c.txt", False),
        (("*.md",), "other/a.md", False),
        (("*.md",), "docs", True),  # the folder itself: a submodule (gitlink) holding the documents
    ],
)
def test_document_patterns(patterns: tuple[str, ...], path: str, hit: bool) -> None:
    assert LocalDocuments("docs", patterns).matches(path) is hit


def test_local_documents_resolution() -> None:
    doc = b"document:\n  repo: %s\n  commit: abc\n  patterns: ['*.md']\n"
    assert local_documents(doc % b"https://github.com/x/y", "") is None
    assert local_documents(doc % b"git@github.com:x/y.git", "") is None
    assert local_documents(doc % b"docs/x", "") == LocalDocuments("docs/x", ("*.md",))
    assert local_documents(doc % b"./docs/x/", "tax") == LocalDocuments("tax/docs/x", ("*.md",))
    assert local_documents(doc % b"../../outside", "tax") is None
    assert local_documents(doc % b"docs/../../sibling", "tax") is None
    assert local_documents(b"document: [unclosed", "") is None
    assert local_documents(b"no reference here", "") is None


def test_document_reference_comparison() -> None:
    from labtax.diff.documents import references_changed

    doc = b"version: 3\ndomain: d\ndocument:\n  repo: %s\n  commit: c\n  patterns:\n  - '*.md'\nseed_examples: []\n"
    assert not references_changed(doc % b"docs", (doc % b"docs").replace(b"domain: d", b"domain: e"))
    assert references_changed(doc % b"docs", doc % b"other")
    # Same text, but an alias whose anchor (outside the block) changed: compared by value, not text.
    aliased = b"anchor: &r %s\ndocument:\n  repo: *r\n  commit: c\n  patterns: ['*.md']\n"
    assert references_changed(aliased % b"docs", aliased % b"other")
    # Reformatted but equal: not a change.
    flow = b"document: {repo: docs, commit: c, patterns: ['*.md']}\n"
    assert not references_changed(doc % b"docs", flow)
    assert not references_changed(b"document: [unclosed", flow)  # does not parse: bytes only


def test_bulk_reads_and_a_document_scan_over_many_leaves(git_repo: GitRepo) -> None:
    from diff_helpers import diff, knowledge

    paths = [f"knowledge/many/k{i:03d}/qna.yaml" for i in range(80)]
    for i, path in enumerate(paths):
        repo = "docs/k042" if i == 42 else "https://github.com/example/docs"
        git_repo.write(path, knowledge(f"k{i}", repo=repo))
    git_repo.write("docs/k042/a.md", "# doc\n")
    git_repo.commit("many leaves")
    contents = read_blobs(git_repo.root, "HEAD", [*paths, "knowledge/none/qna.yaml"])
    assert list(contents) == paths  # the missing one is left out, the order kept
    assert all(contents[p] == (git_repo.root / p).read_bytes() for p in paths)
    git_repo.write("docs/k042/a.md", "# doc, edited\n")
    git_repo.commit("edit the document")
    assert diff(git_repo.root, "HEAD~1", "HEAD") == [("M", paths[42], None, ("document",))]
