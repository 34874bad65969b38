"""examples/taxonomy: validates clean, has the promised leaves, and its document repo is reproducible."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from labtax.taxonomy import find_leaves
from labtax.taxonomy.leaves import load_leaf, validate

ROOT = Path(__file__).resolve().parents[2]
TAXONOMY = ROOT / "examples" / "taxonomy"
SCRIPT = ROOT / "examples" / "make_document_repo.py"


def test_example_taxonomy_validates_with_no_findings_at_all() -> None:
    assert validate(TAXONOMY, None) == []


def test_example_taxonomy_has_the_promised_leaves() -> None:
    leaves = [load_leaf(TAXONOMY, p) for p in find_leaves(TAXONOMY)]
    skills = [leaf for leaf in leaves if leaf.kind == "compositional_skills"]
    assert sum(1 for s in skills if not s.grounded) == 2 and sum(1 for s in skills if s.grounded) == 1
    assert sum(1 for leaf in leaves if leaf.kind == "foundational_skills") == 1
    knowledge = [leaf for leaf in leaves if leaf.kind == "knowledge"]
    # honey bees (real facts) and the demo's new leaf, the made-up glassworks (issue 20)
    assert sorted(k.path.split("/")[-2] for k in knowledge) == ["brindle_glassworks", "honey_bees"]
    assert all(len(leaf.data["seed_examples"]) >= 5 for leaf in leaves)
    for k in knowledge:
        assert all(len(s["questions_and_answers"]) == 3 for s in k.data["seed_examples"])


def test_the_made_up_leaf_holds_15_to_40_facts_and_its_seeds_hold_only_facts_of_its_document() -> None:
    from labtax.data.facts import count_facts, unsupported_facts

    leaf = TAXONOMY / "knowledge/history/industry/brindle_glassworks/qna.yaml"
    data = yaml.safe_load(leaf.read_text())
    doc = (ROOT / "examples/documents/brindle_glassworks/brindle_glassworks.md").read_text()
    body = doc.split("\n## ", 1)[1]  # the sections, without the title and the made-up-subject note
    assert 15 <= count_facts(body) <= 40
    for seed in data["seed_examples"]:
        assert unsupported_facts(seed["context"], doc) == (), seed["context"]
        for qa in seed["questions_and_answers"]:
            assert unsupported_facts(qa["answer"], seed["context"]) == (), qa


def test_document_repo_is_deterministic_and_matches_the_pin(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, str(SCRIPT), "--dest", str(tmp_path / "docs"), "--check"],
                         capture_output=True, text=True, check=True)
    shas = dict(line.split() for line in out.stdout.splitlines())
    assert sorted(shas) == ["brindle_glassworks", "honey_bees"]
    name, sha = "honey_bees", shas["honey_bees"]
    leaf = yaml.safe_load((TAXONOMY / "knowledge/science/biology/honey_bees/qna.yaml").read_text())
    assert leaf["document"] == {"repo": f".documents/{name}", "commit": sha, "patterns": ["*.md"]}
    files = subprocess.run(["git", "ls-tree", "-r", "--name-only", sha], cwd=tmp_path / "docs" / name,
                           capture_output=True, text=True, check=True).stdout.split()
    assert files == ["honey_bee_colonies.md"]
    text = " ".join((tmp_path / "docs" / name / "honey_bee_colonies.md").read_text().split())
    assert len(text.split()) > 500
    # every context of the leaf is grounded in the document's facts (spot check the numbers)
    for fact in ("2,000 eggs", "16 days", "1973 Nobel Prize", "17 to 18 percent"):
        assert fact in text
