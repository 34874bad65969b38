"""examples/taxonomy: validates clean, has the promised leaves, and its document repo is reproducible."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from labtax.taxonomy import find_leaves, load_leaf, validate

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
    [knowledge] = [leaf for leaf in leaves if leaf.kind == "knowledge"]
    assert all(len(leaf.data["seed_examples"]) >= 5 for leaf in leaves)
    assert len(knowledge.data["seed_examples"]) >= 5
    assert all(len(s["questions_and_answers"]) == 3 for s in knowledge.data["seed_examples"])


def test_document_repo_is_deterministic_and_matches_the_pin(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, str(SCRIPT), "--dest", str(tmp_path / "docs"), "--check"],
                         capture_output=True, text=True, check=True)
    name, sha = out.stdout.split()
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
