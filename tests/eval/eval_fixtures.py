"""Deterministic eval data: two leaves with disjoint vocabularies, a manifest, and a trained pair.

Leaf A (`compositional_skills/writing/rivers`) talks about rivers, leaf B
(`knowledge/science/metals`) about metals; each leaf's held-out test examples are drawn from the same
distribution as its training examples, but are different sentences.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

LEAF_A = "compositional_skills/writing/rivers"
LEAF_B = "knowledge/science/metals"
WORDS = {
    LEAF_A: ["the", "river", "flows", "north", "past", "old", "mills", "and", "the", "town", "keeps", "records", "of", "every", "flood", "since", "its", "first", "bridge", "across", "the", "valley"],
    LEAF_B: ["copper", "iron", "zinc", "alloys", "melt", "conduct", "heat", "electricity", "bronze", "steel", "forged", "hammered", "furnace", "ore", "smelting"],
}


def example(rng: random.Random, leaf: str, *, source: str = "seed") -> dict[str, Any]:
    words = WORDS[leaf]
    question = " ".join(rng.choice(words) for _ in range(rng.randint(4, 8))) + "?"
    answer = " ".join(rng.choice(words) for _ in range(rng.randint(8, 16))) + "."
    return {
        "messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}],
        "metadata": {"leaf": f"{leaf}/qna.yaml", "kind": "skill", "source": source},
        "unmask": False,
    }


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def manifest(changed: list[str], unchanged: list[str], dropped: list[str] = ()) -> dict[str, Any]:  # type: ignore[assignment]
    leaves = [{"path": f"{p}/qna.yaml", "key": "k" + str(i), "status": "generated", "changed": True}
              for i, p in enumerate(changed)]
    leaves += [{"path": f"{p}/qna.yaml", "key": "u" + str(i), "status": "reused", "changed": False}
               for i, p in enumerate(unchanged)]
    leaves += [{"path": f"{p}/qna.yaml", "key": None, "status": "dropped", "changed": True} for p in dropped]
    return {"base": "0" * 40, "head": None, "leaves": leaves}


def make_eval_data(root: Path, *, n_test: int = 4, seed: int = 0) -> Path:
    """test.jsonl with n_test held-out examples per leaf; A changed, B unchanged;
    phase1 = A and B mixed (the "base" model's data), phase2 = mostly A (the candidate's data)."""
    rng = random.Random(seed)
    test = [example(rng, leaf) for leaf in (LEAF_A, LEAF_B) for _ in range(n_test)]
    phase1 = [example(rng, leaf, source="generated") for _ in range(96) for leaf in (LEAF_A, LEAF_B)]
    # Phase 2 = A plus a replay share of B, as the LAB recipe replays earlier data.
    phase2 = [example(rng, LEAF_A, source="generated") for _ in range(24)]
    phase2 += [example(rng, LEAF_B, source="generated") for _ in range(8)]
    rng.shuffle(phase2)
    write_jsonl(root / "test.jsonl", test)
    write_jsonl(root / "phase1_knowledge.jsonl", phase1)
    write_jsonl(root / "phase2_skills.jsonl", phase2)
    (root / "manifest.json").write_text(json.dumps(manifest([LEAF_A], [LEAF_B])), encoding="utf-8")
    return root
