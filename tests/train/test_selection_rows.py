"""Phase 2's checkpoints are chosen on the skill leaves' held-out rows only: a knowledge leaf's
validation rows are facts no phase trains, whose loss rises while phase 2 replays the trained facts
(bench/heldout2, session 7: loss selection kept the first epoch of the student with the new leaf and
two skill leaves regressed against the student without it)."""

from __future__ import annotations

import json
from pathlib import Path

from labtax.train.phases import selection_rows


def _row(leaf: str, kind: str, answer: str) -> str:
    return json.dumps({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": answer}],
                       "metadata": {"leaf": leaf, "kind": kind, "split": "validation"}}) + "\n"


def test_the_skills_phase_scores_only_the_skill_leaves_rows(tmp_path: Path) -> None:
    skill = _row("compositional_skills/haiku/qna.yaml", "compositional_skills", "a poem")
    fact = _row("knowledge/guild/qna.yaml", "knowledge", "In 1721.")
    held_out = tmp_path / "validation.jsonl"
    held_out.write_text(skill + fact + skill.replace("a poem", "another poem"), encoding="utf-8")
    chosen = selection_rows(held_out, "skills", tmp_path / "cache")
    assert chosen != held_out and chosen.parent == tmp_path / "cache"
    assert chosen.read_text(encoding="utf-8") == skill + skill.replace("a poem", "another poem")
    assert selection_rows(held_out, "skills", tmp_path / "cache") == chosen  # named by its rows: reused
    assert selection_rows(held_out, "knowledge", tmp_path / "cache") == held_out  # phase 1 keeps its last anyway


def test_a_split_of_one_kind_is_used_as_it_is(tmp_path: Path) -> None:
    skills_only, facts_only = tmp_path / "skills.jsonl", tmp_path / "facts.jsonl"
    skills_only.write_text(_row("compositional_skills/haiku/qna.yaml", "compositional_skills", "a poem"), encoding="utf-8")
    facts_only.write_text(_row("knowledge/guild/qna.yaml", "knowledge", "In 1721."), encoding="utf-8")
    # The student without the new leaf has skill rows only; a knowledge-only split is all there is to score.
    assert selection_rows(skills_only, "skills", tmp_path / "cache") == skills_only
    assert selection_rows(facts_only, "skills", tmp_path / "cache") == facts_only
    assert not (tmp_path / "cache").exists()
