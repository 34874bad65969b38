"""Generate a realistic synthetic taxonomy (for the validate benchmark and the large-tree tests).

Leaves look like real contributions: 3-6 KB each, block scalars, 5-8 seed examples for skills,
5 contexts x 3 Q&A for knowledge, an attribution.txt beside each. Deterministic for a given seed.
"""

from __future__ import annotations

import random
from pathlib import Path

WORDS = ["the", "model", "should", "answer", "questions", "about", "river", "ecology", "water", "quality", "sediment", "fish", "habitat", "seasonal", "flooding", "wetlands", "provide", "nesting", "grounds", "for", "migratory", "birds", "while", "upstream", "dams", "change", "temperature", "oxygen", "and", "the", "timing", "of", "spawning", "runs", "engineers", "measure", "discharge", "with", "gauges", "farmers", "irrigate", "fields", "historians", "record", "floods", "in", "parish", "ledgers", "a", "careful", "answer", "cites", "the", "passage", "explains", "each", "step", "and", "avoids", "speculation", "when", "the", "context", "does", "not", "support", "a", "claim"]

DOMAINS = ("history", "science", "geography", "law", "cooking", "music", "finance", "sports")


def _sentence(rng: random.Random, low: int = 8, high: int = 18) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(low, high))]
    return " ".join(words).capitalize() + "."


def _para(rng: random.Random, sentences: int) -> str:
    return " ".join(_sentence(rng) for _ in range(sentences))


def _block(text: str, indent: int) -> str:
    pad = " " * indent
    out, line = [], ""
    for word in text.split():
        if len(line) + len(word) + 1 > 90:
            out.append(pad + line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    out.append(pad + line)
    return "\n".join(out)


def skill_leaf(rng: random.Random, grounded: bool) -> str:
    lines = ["version: 3", f"created_by: contributor{rng.randint(1, 999)}",
             "task_description: >-", _block(_para(rng, 2), 2), "seed_examples:"]
    for _ in range(rng.randint(5, 8)):
        if grounded:
            lines += ["  - context: |", _block(_para(rng, 3), 6)]
            lines += ["    question: >-", _block(_sentence(rng) + f" ({rng.random():.6f})", 6)]
        else:
            lines += ["  - question: >-", _block(_sentence(rng) + f" ({rng.random():.6f})", 6)]
        lines += ["    answer: |", _block(_para(rng, 4), 6)]
    return "\n".join(lines) + "\n"


def knowledge_leaf(rng: random.Random) -> str:
    sha = "".join(rng.choice("0123456789abcdef") for _ in range(40))
    lines = ["version: 3", f"created_by: contributor{rng.randint(1, 999)}", f"domain: {rng.choice(DOMAINS)}",
             "document_outline: >-", _block(_para(rng, 1), 2), "seed_examples:"]
    for _ in range(5):
        lines += ["  - context: |", _block(_para(rng, 4), 6), "    questions_and_answers:"]
        for _ in range(3):
            lines += ["      - question: >-", _block(_sentence(rng) + f" ({rng.random():.6f})", 10)]
            lines += ["        answer: >-", _block(_para(rng, 1), 10)]
    lines += ["document:", "  repo: https://github.com/example/knowledge-docs.git", f"  commit: {sha}",
              "  patterns:", "    - docs/*.md"]
    return "\n".join(lines) + "\n"


def make_tree(root: Path, leaves: int, seed: int = 7) -> list[Path]:
    """Write `leaves` leaves (40% knowledge, 40% freeform skills, 10% grounded, 10% foundational)."""
    rng = random.Random(seed)
    written: list[Path] = []
    for i in range(leaves):
        pick = i % 10
        if pick < 4:
            rel, text = f"knowledge/{rng.choice(DOMAINS)}/topic_{i // 100}/leaf_{i}", knowledge_leaf(rng)
        elif pick < 8:
            rel, text = f"compositional_skills/{rng.choice(DOMAINS)}/group_{i // 100}/leaf_{i}", skill_leaf(rng, False)
        elif pick < 9:
            rel, text = f"compositional_skills/grounded/{rng.choice(DOMAINS)}/leaf_{i}", skill_leaf(rng, True)
        else:
            rel, text = f"foundational_skills/reasoning/group_{i // 100}/leaf_{i}", skill_leaf(rng, False)
        leaf_dir = root / rel
        leaf_dir.mkdir(parents=True, exist_ok=True)
        (leaf_dir / "qna.yaml").write_text(text, encoding="utf-8")
        (leaf_dir / "attribution.txt").write_text("Title: generated\nLicense: CC-BY-4.0\n", encoding="utf-8")
        written.append(leaf_dir / "qna.yaml")
    return written
