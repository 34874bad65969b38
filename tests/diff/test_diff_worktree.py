"""The working tree as head: staged, unstaged, untracked and ignored files."""

from __future__ import annotations

import os

from diff_helpers import ADD, PHYSICS, POEMS, ROME, diff, knowledge, skill
from gitrepo import GitRepo

from labtax.diff import diff_taxonomy


def test_clean_tree_has_no_changes(tax: GitRepo) -> None:
    result = diff_taxonomy(tax.root, "main")
    assert result.changes == [] and result.head is None and result.base == tax.head()


def test_untracked_leaf_is_added(tax: GitRepo) -> None:
    tax.write("compositional_skills/writing/odes/qna.yaml", skill("odes"))
    assert diff(tax.root, "main") == [("A", "compositional_skills/writing/odes/qna.yaml", None, ("qna",))]


def test_staged_and_unstaged_edits(tax: GitRepo) -> None:
    tax.write(POEMS, skill("poems", extra=" staged"))
    tax.git("add", POEMS)
    tax.write(ADD, skill("addition", extra=" unstaged"))
    tax.write(ROME, knowledge("rome", commit="f" * 40))
    tax.git("add", ROME)
    tax.write(ROME, knowledge("rome", commit="e" * 40))  # staged, then edited again
    assert diff(tax.root, "main") == [
        ("M", POEMS, None, ("qna",)),
        ("M", ADD, None, ("qna",)),
        ("M", ROME, None, ("qna", "document")),
    ]


def test_edit_reverted_in_working_tree_is_no_change(tax: GitRepo) -> None:
    original = (tax.root / POEMS).read_text()
    tax.write(POEMS, skill("poems", extra=" staged"))
    tax.git("add", POEMS)
    tax.write(POEMS, original)
    assert diff(tax.root, "main") == []


def test_touched_file_is_no_change(tax: GitRepo) -> None:
    path = tax.root / POEMS
    os.utime(path, (1, 1))  # stat-dirty, same bytes
    assert diff(tax.root, "main") == []


def test_ignored_files_do_not_count(tax: GitRepo) -> None:
    tax.write("scratch/knowledge/x/qna.yaml", knowledge("x"))
    tax.write("knowledge/history/sparta/qna.yaml.tmp", knowledge("sparta"))
    tax.write("knowledge/history/sparta/.gitignore", "qna.yaml\n")
    tax.write("knowledge/history/sparta/qna.yaml", knowledge("sparta"))
    tax.write("compositional_skills/ignored/.gitignore", "*\n")
    tax.write("compositional_skills/ignored/qna.yaml", skill("ignored"))
    assert diff(tax.root, "main") == []


def test_unstaged_delete_and_staged_delete(tax: GitRepo) -> None:
    tax.remove(POEMS)
    tax.git("rm", "-q", "--cached", ADD)  # untracked now, but still on disk and unchanged
    tax.git("rm", "-q", ROME)
    assert diff(tax.root, "main") == [("D", POEMS, None, ("qna",)), ("D", ROME, None, ("qna",))]


def test_untracked_again_and_edited_is_modified(tax: GitRepo) -> None:
    tax.git("rm", "-q", "--cached", ADD)
    tax.write(ADD, skill("addition", extra=" edited while untracked"))
    assert diff(tax.root, "main") == [("M", ADD, None, ("qna",))]


def test_git_mv_in_index_is_a_rename(tax: GitRepo) -> None:
    tax.git("mv", "foundational_skills/math", "foundational_skills/arithmetic")
    assert diff(tax.root, "main") == [("R", "foundational_skills/arithmetic/addition/qna.yaml", ADD, ())]


def test_plain_mv_not_yet_added_is_a_rename(tax: GitRepo) -> None:
    os.rename(tax.root / "foundational_skills/math", tax.root / "foundational_skills/arithmetic")
    assert diff(tax.root, "main") == [("R", "foundational_skills/arithmetic/addition/qna.yaml", ADD, ())]


def test_attribution_edit_in_working_tree(tax: GitRepo) -> None:
    tax.write("compositional_skills/writing/poems/attribution.txt", "Title: poems\nLicense: MIT\n")
    assert diff(tax.root, "main") == [("M", POEMS, None, ("attribution",))]


def test_untracked_document_and_untracked_leaf_with_local_documents(tax: GitRepo) -> None:
    tax.write("docs/physics/optics.md", "# Optics\n")
    tax.write(
        "knowledge/science/chemistry/qna.yaml",
        knowledge("chemistry", repo="docs/chem", patterns=("**/*.md",)),
    )
    tax.write("docs/chem/a/b/bonds.md", "# Bonds\n")
    assert diff(tax.root, "main") == [
        ("A", "knowledge/science/chemistry/qna.yaml", None, ("qna", "document")),
        ("M", PHYSICS, None, ("document",)),
    ]


def test_committed_and_uncommitted_changes_add_up(tax: GitRepo) -> None:
    tax.write(POEMS, skill("poems", extra=" committed"))
    tax.commit("on the branch")
    tax.write(ADD, skill("addition", extra=" not yet committed"))
    assert diff(tax.root) == [("M", POEMS, None, ("qna",)), ("M", ADD, None, ("qna",))]  # default base: main


def test_change_committed_then_reverted_in_working_tree(tax: GitRepo) -> None:
    original = (tax.root / POEMS).read_text()
    tax.write(POEMS, skill("poems", extra=" committed"))
    tax.commit("on the branch")
    tax.write(POEMS, original)
    assert diff(tax.root, "main") == []


def test_base_empty_with_working_tree(tax: GitRepo) -> None:
    tax.write("foundational_skills/logic/qna.yaml", skill("logic"))
    paths = [c[1] for c in diff(tax.root, "empty")]
    assert paths == [POEMS, "foundational_skills/logic/qna.yaml", ADD, ROME, PHYSICS]


def test_first_commit_being_prepared_with_base_empty(git_repo: GitRepo) -> None:
    git_repo.write(POEMS, skill("poems"))
    git_repo.git("add", POEMS)
    git_repo.write(ADD, skill("addition"))
    result = diff_taxonomy(git_repo.root, "empty")
    assert [(c.letter, c.path) for c in result.changes] == [("A", POEMS), ("A", ADD)]
    assert result.head is None


def test_subfolder_taxonomy_working_tree(git_repo: GitRepo) -> None:
    from diff_helpers import build_taxonomy

    build_taxonomy(git_repo, prefix="tax/")
    git_repo.write("knowledge/outside/qna.yaml", skill("outside the taxonomy"))  # untracked, outside
    git_repo.write("tax/compositional_skills/inside/qna.yaml", skill("inside"))  # untracked, inside
    git_repo.write("tax/docs/physics/intro.md", "# edited\n")
    git_repo.git("mv", "tax/foundational_skills/math", "other_math")  # moved out: deleted here
    assert diff(git_repo.root / "tax", "main") == [
        ("A", "compositional_skills/inside/qna.yaml", None, ("qna",)),
        ("D", ADD, None, ("qna",)),
        ("M", PHYSICS, None, ("document",)),
    ]
