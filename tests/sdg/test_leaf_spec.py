"""A leaf's YAML parsed once for generation (`Leaf.spec`): seeds by position, texts as written, and
"a document repo is a URL or a folder of the taxonomy" decided in one place (`DocumentRef`)."""

from __future__ import annotations

from labtax.mix.held_out import seed_test_samples
from labtax.sdg.pipelines.knowledge import knowledge_seeds
from labtax.sdg.pipelines.skills import skill_seeds
from labtax.sdg.planning import watched_dirs
from labtax.taxonomy.model import DocumentRef, Leaf, is_url_repo


def test_a_document_repo_is_a_url_or_a_taxonomy_folder() -> None:
    assert is_url_repo("https://github.com/x/y") and is_url_repo("git@github.com:x/y") and is_url_repo("file:///d")
    assert not is_url_repo("docs/rivers")
    url = DocumentRef.from_yaml({"repo": " https://h/x ", "commit": "ABC", "patterns": "*.md"})
    assert url == DocumentRef("https://h/x", "abc", ("*.md",)) and url.url and url.folder is None
    assert DocumentRef.from_yaml({"repo": "/docs/rivers/", "patterns": ["*.md", 3]}) == DocumentRef(
        "/docs/rivers/", "", ("*.md", "3"))
    assert DocumentRef("docs/rivers/", "", ()).folder == "docs/rivers"
    assert DocumentRef.from_yaml({}) is None and DocumentRef.from_yaml("docs") is None


def _knowledge() -> Leaf:
    return Leaf("knowledge/rivers/qna.yaml", "knowledge", {
        "domain": " rivers ", "document_outline": "The Vltava ", "document": {"repo": "docs/rivers", "patterns": ["*.md"]},
        "seed_examples": [
            {"context": " The Vltava is long. ", "questions_and_answers": [
                {"question": " How long? ", "answer": "430 km"}, {"question": "no answer"}, "junk",
                {"question": "Where?", "answer": "Bohemia"}]},
            "not a mapping",
            {"context": "", "questions_and_answers": []}]})


def test_knowledge_seeds_keep_their_positions_and_texts() -> None:
    leaf = _knowledge()
    assert leaf.spec is leaf.spec  # parsed once
    assert (leaf.spec.domain, leaf.spec.document_outline) == ("rivers", "The Vltava")
    assert [s.index for s in leaf.spec.seeds] == [0, 2]
    assert leaf.spec.seeds[0].pairs == ((0, " How long? ", "430 km"), (3, "Where?", "Bohemia"))
    assert knowledge_seeds(leaf) == [{"context": "The Vltava is long.", "pairs": [("How long?", "430 km"),
                                                                                ("Where?", "Bohemia")]},
                                     {"context": "", "pairs": []}]
    rows = seed_test_samples(leaf, None)
    assert [(r["metadata"]["seed_index"], r["metadata"]["qa_index"], r["metadata"]["context"]) for r in rows] == [
        (0, 0, "The Vltava is long."), (0, 3, "The Vltava is long.")]
    assert rows[0]["messages"][0]["content"] == "How long?"  # closed book: the question alone
    assert watched_dirs(leaf) == ["knowledge/rivers", "docs/rivers"]


def test_skill_seeds_read_as_written() -> None:
    leaf = Leaf("compositional_skills/haiku/qna.yaml", "compositional_skills", {
        "task_description": " haiku ", "seed_examples": [
            {"question": " Write one ", "answer": "Old pond", "context": ""}, {"answer": "no question"},
            {"question": "Another", "answer": "Frog", "context": "a pond"}]})
    assert leaf.spec.task_description == "haiku" and leaf.spec.document is None
    assert skill_seeds(leaf) == [{"question": "Write one", "answer": "Old pond"},
                                 {"question": "Another", "answer": "Frog", "context": "a pond"}]
    rows = seed_test_samples(leaf, None)
    assert [(r["metadata"]["seed_index"], r["metadata"].get("context")) for r in rows] == [(0, None), (2, "a pond")]
    assert watched_dirs(leaf) == ["compositional_skills/haiku"]
