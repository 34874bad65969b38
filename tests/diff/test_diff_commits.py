"""Changed leaves between two commits: every kind of change, each in a real git repository."""

from __future__ import annotations

from diff_helpers import ADD, PHYSICS, POEMS, ROME, diff, knowledge, skill
from gitrepo import GitRepo

from labtax.diff import diff_taxonomy


def test_add_modify_delete(tax: GitRepo) -> None:
    tax.write("compositional_skills/writing/limericks/qna.yaml", skill("limericks"))
    tax.write(POEMS, skill("poems", extra=" Rhymes too."))
    tax.git("rm", "-q", ADD)
    tax.commit("three changes")
    assert diff(tax.root, "main", "feature") == [
        ("A", "compositional_skills/writing/limericks/qna.yaml", None, ("qna",)),
        ("M", POEMS, None, ("qna",)),
        ("D", ADD, None, ("qna",)),
    ]


def test_kinds_and_json_shape(tax: GitRepo) -> None:
    tax.write(ADD, skill("addition", extra=" Carry."))
    tax.write(ROME, knowledge("rome", commit="1" * 40))
    head = tax.commit("edit")
    result = diff_taxonomy(tax.root, "main", "feature")
    assert result.head == head
    assert result.base == tax.git("rev-parse", "main")
    assert result.to_dict()["changes"] == [
        {
            "status": "modified",
            "path": ADD,
            "old_path": None,
            "kind": "foundational_skills",
            "reasons": ["qna"],
        },
        {
            "status": "modified",
            "path": ROME,
            "old_path": None,
            "kind": "knowledge",
            "reasons": ["qna", "document"],
        },
    ]


def test_pure_rename_has_no_reasons(tax: GitRepo) -> None:
    tax.git("mv", "compositional_skills/writing/poems", "compositional_skills/writing/poetry")
    tax.commit("rename folder")
    # The attribution.txt moved along unchanged, so it is no reason either.
    assert diff(tax.root, "main", "HEAD") == [
        ("R", "compositional_skills/writing/poetry/qna.yaml", POEMS, ()),
    ]


def test_rename_plus_edit_is_renamed_with_qna(tax: GitRepo) -> None:
    tax.git("mv", "compositional_skills/writing", "compositional_skills/creative")
    tax.write("compositional_skills/creative/poems/qna.yaml", skill("poems", extra=" Now with sonnets."))
    tax.commit("move and edit")
    assert diff(tax.root, "main", "HEAD") == [
        ("R", "compositional_skills/creative/poems/qna.yaml", POEMS, ("qna",)),
    ]


def test_rename_plus_attribution_edit(tax: GitRepo) -> None:
    tax.git("mv", "knowledge/history/rome", "knowledge/history/roma")
    tax.write("knowledge/history/roma/attribution.txt", "Title: roma\n")
    tax.commit("move, new attribution")
    assert diff(tax.root, "main", "HEAD") == [
        ("R", "knowledge/history/roma/qna.yaml", ROME, ("attribution",))
    ]


def test_move_across_categories_changes_kind(tax: GitRepo) -> None:
    tax.git("mv", "foundational_skills/math", "compositional_skills/math")
    tax.commit("recategorise")
    [change] = diff_taxonomy(tax.root, "main", "HEAD").changes
    assert (change.status, change.path, change.old_path, change.kind, change.reasons) == (
        "renamed",
        "compositional_skills/math/addition/qna.yaml",
        ADD,
        "compositional_skills",
        (),
    )


def test_attribution_only_change(tax: GitRepo) -> None:
    tax.write("knowledge/history/rome/attribution.txt", "Title: rome\nLicense: CC-BY-SA\n")
    tax.commit("licence")
    assert diff(tax.root, "main", "HEAD") == [("M", ROME, None, ("attribution",))]


def test_attribution_without_a_leaf_is_ignored(tax: GitRepo) -> None:
    tax.write("knowledge/history/attribution.txt", "a folder that holds no qna.yaml\n")
    tax.commit("stray attribution")
    assert diff(tax.root, "main", "HEAD") == []


def test_attribution_added_with_new_leaf(tax: GitRepo) -> None:
    tax.write("knowledge/history/athens/qna.yaml", knowledge("athens"))
    tax.write("knowledge/history/athens/attribution.txt", "Title: athens\n")
    tax.commit("new leaf")
    assert diff(tax.root, "main", "HEAD") == [
        ("A", "knowledge/history/athens/qna.yaml", None, ("qna", "attribution"))
    ]


def test_deleted_leaf_with_its_attribution(tax: GitRepo) -> None:
    tax.git("rm", "-rq", "knowledge/history/rome")
    tax.commit("drop rome")
    assert diff(tax.root, "main", "HEAD") == [("D", ROME, None, ("qna", "attribution"))]


def test_document_reference_change(tax: GitRepo) -> None:
    tax.write(PHYSICS, knowledge("physics", repo="docs/physics", patterns=("*.md", "*.txt")))
    tax.commit("more patterns")
    assert diff(tax.root, "main", "HEAD") == [("M", PHYSICS, None, ("qna", "document"))]


def test_non_document_edit_of_knowledge_leaf(tax: GitRepo) -> None:
    tax.write(ROME, knowledge("rome").replace("All about rome.", "Everything about Rome."))
    tax.commit("outline")
    assert diff(tax.root, "main", "HEAD") == [("M", ROME, None, ("qna",))]


def test_local_document_change(tax: GitRepo) -> None:
    tax.write("docs/physics/intro.md", "# Physics\n\nForces, motion and energy.\n")
    tax.commit("doc edit")
    assert diff(tax.root, "main", "HEAD") == [("M", PHYSICS, None, ("document",))]


def test_new_local_document_matching_pattern(tax: GitRepo) -> None:
    tax.write("docs/physics/waves.md", "# Waves\n")
    tax.commit("doc added")
    assert diff(tax.root, "main", "HEAD") == [("M", PHYSICS, None, ("document",))]


def test_document_not_matched_by_pattern_is_ignored(tax: GitRepo) -> None:
    tax.write("docs/physics/notes.txt", "still not a document\n")
    tax.write("docs/physics/sub/deep.md", "# not matched: *.md stays in one folder\n")
    tax.write("README.md", "# taxonomy, edited\n")
    tax.commit("other files")
    assert diff(tax.root, "main", "HEAD") == []


def test_document_and_qna_change_together(tax: GitRepo) -> None:
    tax.write("docs/physics/intro.md", "# Physics v2\n")
    tax.write(PHYSICS, knowledge("physics", repo="docs/physics").replace("All about", "Mostly about"))
    tax.commit("both")
    assert diff(tax.root, "main", "HEAD") == [("M", PHYSICS, None, ("qna", "document"))]


def test_non_leaf_yaml_is_ignored(tax: GitRepo) -> None:
    tax.write("knowledge/history/rome/extra.yaml", "not: a leaf, edited\n")
    tax.write("knowledge/history/greece/notes.yaml", "also: not a leaf\n")
    tax.write("schema/qna.yaml", "outside the kind roots\n")
    tax.commit("non-leaf yaml")
    assert diff(tax.root, "main", "HEAD") == []


def test_mode_only_change_is_ignored(tax: GitRepo) -> None:
    tax.git("update-index", "--chmod=+x", POEMS)
    tax.commit("chmod", add_all=False)
    assert diff(tax.root, "main", "HEAD") == []


def test_diverged_branches_count_only_the_branch(tax: GitRepo) -> None:
    tax.write(POEMS, skill("poems", extra=" Branch edit."))
    tax.commit("branch edit")
    tax.git("checkout", "-q", "main")
    tax.write(ADD, skill("addition", extra=" Main moved on."))
    tax.write("knowledge/history/carthage/qna.yaml", knowledge("carthage"))
    tax.commit("main edit")
    tax.git("checkout", "-q", "feature")
    assert diff(tax.root, "main", "feature") == [("M", POEMS, None, ("qna",))]
    # And from main's point of view, only main's own changes.
    assert diff(tax.root, "feature", "main") == [
        ("M", ADD, None, ("qna",)),
        ("A", "knowledge/history/carthage/qna.yaml", None, ("qna",)),
    ]


def test_merge_commit_on_branch(tax: GitRepo) -> None:
    tax.write(POEMS, skill("poems", extra=" Branch edit."))
    tax.commit("branch edit")
    tax.git("checkout", "-q", "main")
    tax.write(ADD, skill("addition", extra=" Main moved on."))
    tax.commit("main edit")
    tax.git("checkout", "-q", "feature")
    tax.git("merge", "-q", "--no-edit", "main")
    assert len(tax.git("rev-list", "--parents", "-n1", "HEAD").split()) == 3  # a real merge commit
    assert diff(tax.root, "main", "HEAD") == [("M", POEMS, None, ("qna",))]


def test_base_equal_to_head(tax: GitRepo) -> None:
    tax.write(POEMS, skill("poems", extra=" edit"))
    tax.commit("edit")
    result = diff_taxonomy(tax.root, "HEAD", "HEAD")
    assert result.changes == [] and result.base == result.head == tax.head()


def test_base_empty_lists_every_leaf_as_added(tax: GitRepo) -> None:
    result = diff_taxonomy(tax.root, "empty", "HEAD")
    assert [(c.letter, c.path, c.reasons) for c in result.changes] == [
        ("A", POEMS, ("qna", "attribution")),
        ("A", ADD, ("qna",)),
        ("A", ROME, ("qna", "attribution")),
        ("A", PHYSICS, ("qna", "document")),  # its document is new too
    ]
    assert result.base == tax.git("hash-object", "-t", "tree", "/dev/null")


def test_refs_of_every_shape(tax: GitRepo) -> None:
    for i in range(3):
        tax.write(f"compositional_skills/extra/s{i}/qna.yaml", skill(f"s{i}"))
        tax.commit(f"add s{i}")
    tax.git("tag", "-a", "v1", "-m", "annotated tag", "HEAD~1")
    first = tax.git("rev-parse", "HEAD~2")
    assert [c[1] for c in diff(tax.root, "HEAD~3", "HEAD")] == [
        f"compositional_skills/extra/s{i}/qna.yaml" for i in range(3)
    ]
    assert [c[1] for c in diff(tax.root, "v1", "HEAD")] == ["compositional_skills/extra/s2/qna.yaml"]
    assert [c[1] for c in diff(tax.root, first, "v1")] == ["compositional_skills/extra/s1/qna.yaml"]
    assert [c[1] for c in diff(tax.root, first[:10], "v1")] == ["compositional_skills/extra/s1/qna.yaml"]


def test_paths_with_spaces_quotes_and_non_ascii(tax: GitRepo) -> None:
    odd = [
        'compositional_skills/writing/haïku et "tanka"/qna.yaml',
        "knowledge/歴史/京都 の 寺/qna.yaml",
        "foundational_skills/tab\there/qna.yaml",
    ]
    for path in odd:
        tax.write(path, skill(path))
    tax.git("mv", "compositional_skills/writing/poems", "compositional_skills/writing/poèmes en vers")
    tax.commit("odd names")
    got = diff(tax.root, "main", "HEAD")
    assert got == sorted(
        [("A", p, None, ("qna",)) for p in odd]
        + [("R", "compositional_skills/writing/poèmes en vers/qna.yaml", POEMS, ())],
        key=lambda c: c[1],
    )


def test_taxonomy_in_a_subfolder(git_repo: GitRepo) -> None:
    from diff_helpers import build_taxonomy

    build_taxonomy(git_repo, prefix="taxonomy/")
    git_repo.write("knowledge/outside/qna.yaml", skill("outside the taxonomy root"))
    git_repo.write("taxonomy/compositional_skills/new/qna.yaml", skill("new"))
    git_repo.write("taxonomy/docs/physics/intro.md", "# edited document\n")
    git_repo.commit("edits")
    assert diff(git_repo.root / "taxonomy", "main", "HEAD") == [
        ("A", "compositional_skills/new/qna.yaml", None, ("qna",)),
        ("M", PHYSICS, None, ("document",)),
    ]
    # Run from a folder inside the taxonomy: the taxonomy root is what was passed, not the git root.
    assert diff(git_repo.root / "taxonomy" / "knowledge", "main", "HEAD") == []


def test_criss_cross_merge_uses_the_reported_merge_base(tax: GitRepo) -> None:
    tax.git("checkout", "-q", "-b", "x", "main")
    tax.write("compositional_skills/x/qna.yaml", skill("x"))
    x1 = tax.commit("x1")
    tax.git("checkout", "-q", "-b", "y", "main")
    tax.write("compositional_skills/y/qna.yaml", skill("y"))
    y1 = tax.commit("y1")
    tax.git("merge", "-q", "--no-edit", x1)
    tax.write("foundational_skills/y2/qna.yaml", skill("y2"))
    tax.commit("y2")
    tax.git("checkout", "-q", "x")
    tax.git("merge", "-q", "--no-edit", y1)
    bases = set(tax.git("merge-base", "--all", "x", "y").split())
    assert bases == {x1, y1}
    result = diff_taxonomy(tax.root, "x", "y")
    assert result.base in bases
    expected = sorted(
        line.split("\t")[-1]
        for line in tax.git("diff", "--name-status", result.base, "y").splitlines()
        if line.endswith("qna.yaml")
    )
    assert [c.path for c in result.changes] == expected and "foundational_skills/y2/qna.yaml" in expected


def test_submodule_document_folder(tax: GitRepo, make_git_repo) -> None:  # type: ignore[no-untyped-def]
    docs: GitRepo = make_git_repo("docs-repo")
    docs.write("a.md", "# v1\n")
    docs.commit("v1")
    tax.git("-c", "protocol.file.allow=always", "submodule", "add", "-q", str(docs.root), "docs/sub")
    tax.write("knowledge/science/sub/qna.yaml", knowledge("sub", repo="docs/sub", patterns=("*.md",)))
    tax.commit("leaf with a submodule for documents")
    docs.write("a.md", "# v2\n")
    v2 = docs.commit("v2")
    sub = tax.root / "docs" / "sub"
    tax.git("-C", str(sub), "-c", "protocol.file.allow=always", "fetch", "-q", "origin")
    tax.git("-C", str(sub), "checkout", "-q", v2)
    tax.commit("bump the document submodule")
    assert diff(tax.root, "HEAD~1", "HEAD") == [("M", "knowledge/science/sub/qna.yaml", None, ("document",))]
