"""Made-up facts in one answer template, for the learning-versus-style effect tests.

Three sets of invented creatures, each with a colour: set F belongs to the changed leaf, set C to an
unchanged control leaf, set S to no leaf at all (training on it teaches only the template: style).
Every leaf's test rows are closed-book multiple-choice items (the right colour and three wrong ones,
all in the same sentence form) plus one reference answer.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

FACT_LEAF = "knowledge/bestiary/fens"
CONTROL_LEAF = "knowledge/bestiary/hills"
COLOURS = ["red", "blue", "green", "yellow", "purple", "orange", "white", "black"]
SYLLABLES = ["zor", "blat", "quen", "mip", "tharn", "vel", "osk", "rud", "fli", "gam", "dro", "sul", "kev", "yun"]
QUESTIONS = ["What colour is the {x}?", "Which colour does the {x} have?", "Tell me the colour of the {x}.",
             "Name the colour of the {x}."]
TEST_QUESTION = "What is the colour of a {x}?"  # a paraphrase no training row uses


def creatures(rng: random.Random, n: int, taken: set[str]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    while len(out) < n:
        name = "".join(rng.choice(SYLLABLES) for _ in range(2))
        if name not in taken:
            taken.add(name)
            out.append((name, COLOURS[len(out) % len(COLOURS)]))
    return out


def answer(name: str, colour: str) -> str:
    return f"The {name} is {colour}."


def training_rows(facts: list[tuple[str, str]], leaf: str) -> list[dict[str, Any]]:
    return [{"messages": [{"role": "user", "content": q.format(x=name)},
                          {"role": "assistant", "content": answer(name, colour)}],
             "metadata": {"leaf": f"{leaf}/qna.yaml", "kind": "knowledge"}, "unmask": False}
            for name, colour in facts for q in QUESTIONS]


def test_rows(rng: random.Random, facts: list[tuple[str, str]], leaf: str) -> list[dict[str, Any]]:
    rows = []
    for i, (name, colour) in enumerate(facts):
        wrong = rng.sample([c for c in COLOURS if c != colour], 3)
        choices = [answer(name, c) for c in [colour, *wrong]]
        rng.shuffle(choices)
        meta = {"leaf": f"{leaf}/qna.yaml", "kind": "knowledge", "source": "mc", "shown_to_teacher": False}
        rows.append({"messages": [{"role": "user", "content": TEST_QUESTION.format(x=name)},
                                  {"role": "assistant", "content": answer(name, colour)}],
                     "choices": choices, "answer_index": choices.index(answer(name, colour)),
                     "metadata": meta, "unmask": False})
        if i == 0:  # one reference answer per leaf, so the likelihood columns exist too
            rows.append({"messages": rows[-1]["messages"], "unmask": False,
                         "metadata": {"leaf": f"{leaf}/qna.yaml", "kind": "knowledge", "source": "seed"}})
    return rows


def write(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def make_fact_data(root: Path, n: int = 8, seed: int = 0) -> dict[str, Path]:
    """Two data directories sharing one test split and manifest (F changed, C unchanged): `facts`
    trains on F's facts, `style` on S's facts in the same template."""
    rng = random.Random(seed)
    taken: set[str] = set()
    f, c, s = (creatures(rng, n, taken) for _ in range(3))
    test = test_rows(rng, f, FACT_LEAF) + test_rows(rng, c, CONTROL_LEAF)
    manifest = {"base": "0" * 40, "head": None, "leaves": [
        {"path": f"{FACT_LEAF}/qna.yaml", "key": "kf", "status": "generated", "changed": True},
        {"path": f"{CONTROL_LEAF}/qna.yaml", "key": "kc", "status": "reused", "changed": False}]}
    out = {}
    for name, facts in (("facts", f), ("style", s)):
        d = root / name
        write(d / "phase1_knowledge.jsonl", training_rows(facts, FACT_LEAF))
        write(d / "phase2_skills.jsonl", [])
        write(d / "test.jsonl", test)
        (d / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
        out[name] = d
    return out
