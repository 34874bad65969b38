"""Closed-book recall (issue 20): held-out wordings of knowledge facts, asked with no context and scored
by the key facts of the reference; the knowledge verdict rests on it, reported beside the choices."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
import torch
from openai_server import OpenAIServer

from labtax.eval.closed_book import parse_yes_no, score_answer
from labtax.eval.evidence import Controls, LeafItems, leaf_evidence
from labtax.eval.gate import Thresholds
from labtax.eval.run import EvalOptions, JudgeOptions, run_eval
from labtax.report.eval import render_markdown, render_text
from labtax.teachers.openai import OpenAITeacher
from labtax.train.config import load_config
from labtax.train.phases import run_training

LEAF = "knowledge/bestiary/marsh"
CONTROL = "knowledge/bestiary/dunes"


def test_an_answer_is_right_when_it_holds_the_reference_facts_the_question_does_not() -> None:
    q = "In what year did Captain Orla Venn found the harbour of Kestrel Bay?"
    ref = "Captain Orla Venn founded it in 1847."
    assert score_answer(q, ref, "It was founded in 1847.").correct is True
    assert score_answer(q, ref, "In the year 1,847 or so").correct is True  # normalised numbers
    wrong = score_answer(q, ref, "Captain Orla Venn founded it in 1899.")
    assert wrong.correct is False and wrong.missing == ("1847",)
    # Echoing the question's own facts is no recall: the name is given, the year is what is asked.
    assert score_answer(q, ref, "Captain Orla Venn.").correct is False
    assert score_answer(q, ref, "").correct is False
    # A reference with no fact beyond the question's cannot be scored by facts (the judge's case).
    assert score_answer("Why do bees dance?", "to show where the flowers are", "no idea").correct is None


def test_the_judge_verdict_is_the_last_mark() -> None:
    assert parse_yes_no("It matches. [[YES]]") is True
    assert parse_yes_no("[[YES]] hmm, no: [[no]]") is False
    assert parse_yes_no("cannot tell") is None


def test_the_knowledge_verdict_rests_on_closed_book_and_controls_regress_on_it() -> None:
    items = LeafItems(base_recalled=[False] * 12, cand_recalled=[True] * 9 + [False] * 3,
                      base_correct=[True, False] * 3, cand_correct=[True, False] * 3)
    ev = leaf_evidence(LEAF, True, items, None, Controls(0, None), Thresholds(), judged=False)
    assert ev.evidence == "closed_book" and ev.verdict == "improved"
    assert ev.closed_book.candidate_accuracy == 0.75 and ev.closed_book.change.low > 0
    assert ev.choices.items == 6  # still reported beside it
    forgot = LeafItems(base_recalled=[True] * 10, cand_recalled=[False] * 8 + [True] * 2)
    ev = leaf_evidence(CONTROL, False, forgot, None, Controls(0, None), Thresholds(), judged=False)
    assert ev.verdict == "regressed" and ev.evidence == "closed_book"


# ------------------------------------------------------------------ the tiny model learns numbers

NAMES = ["Zorblat", "Quenmip", "Tharnvel", "Oskrud", "Fligam", "Drosul", "Kevyun", "Blatosk"]
TRAIN_FORMS = ["How many legs does the {x} have?", "The {x} has how many legs?", "Tell me the number of legs of the {x}.",
               "Count the legs of a {x}."]
HELD_OUT_FORM = "What is the leg count of a {x}?"
# One checkpoint, the last (the one `select="last"` keeps), without its resumable state: per epoch, 20
# checkpoints each with a held-out loss and the optimizer's state, were a quarter of the run's CPU.
TRAIN = {"lr": 3e-3, "epochs": 20, "effective_batch": 8, "warmup_steps": 2, "max_seq_len": 128,
         "max_tokens_per_batch": 1024, "schedule": "constant", "save_every": 10**9, "save_state": False}


def _row(leaf: str, q: str, a: str, **meta: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}],
            "metadata": {"leaf": f"{leaf}/qna.yaml", "kind": "knowledge", **meta}, "unmask": False}


def _write(path: Path, rows: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def _data(root: Path) -> Path:
    rng = random.Random(0)
    legs = {name: 3 + i for i, name in enumerate(NAMES)}
    marsh, dunes = NAMES[:4], NAMES[4:]
    train = [_row(LEAF, f.format(x=n), f"The {n} has {legs[n]} legs.", closed_book=True)
             for n in marsh for f in TRAIN_FORMS]
    train += [_row(CONTROL, f.format(x=n), f"The {n} has {legs[n]} legs.", closed_book=True)
              for n in dunes for f in TRAIN_FORMS]
    rng.shuffle(train)
    test = [_row(leaf, HELD_OUT_FORM.format(x=n), f"The {n} has {legs[n]} legs.", source="held_out",
                 closed_book=True) for leaf, names in ((LEAF, marsh), (CONTROL, dunes)) for n in names]
    test.append(_row(LEAF, "Why does the marsh flood?", "Because the river rises in spring.", source="held_out",
                     closed_book=True))  # free text: no key fact, the judge's to score
    root.mkdir(parents=True, exist_ok=True)
    _write(root / "phase1_knowledge.jsonl", train)
    _write(root / "phase2_skills.jsonl", [])
    _write(root / "test.jsonl", test)
    (root / "manifest.json").write_text(json.dumps({"base": "0" * 40, "head": None, "leaves": [
        {"path": f"{LEAF}/qna.yaml", "key": "k", "status": "generated", "changed": True},
        {"path": f"{CONTROL}/qna.yaml", "key": "c", "status": "reused", "changed": False}]}), encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("recall")
    data = _data(root / "data")
    summary = run_training(data, "tiny", root / "run", ["knowledge"], load_config(overrides=TRAIN), select="last",
                           log=lambda _line: None)
    return data, summary["phases"]["knowledge"]["selected"]["path"]


def test_a_trained_model_recalls_held_out_wordings_it_could_not_answer_before(trained: tuple[Path, str]) -> None:
    data, candidate = trained

    def judge(kind: str, body: dict[str, Any]) -> str:
        return "The answer matches. [[YES]]" if "Answer to check" in json.dumps(body) else "A tie. [[C]]"

    # The judge scores only what the key facts cannot: the free-text item, for base and candidate.
    with OpenAIServer(judge) as server:
        report = run_eval(EvalOptions(base="tiny", candidate=candidate, data_dir=data, device="cpu",
                                      judge=JudgeOptions(endpoints=(server.base_url,), model="judge-model")),
                          make_teacher=lambda: OpenAITeacher([server.base_url], model="judge-model"))
        asked = [r for r in server.requests if "Answer to check" in json.dumps(r.body)]
    assert len(asked) == 2
    rows = {r.leaf: r for r in report.leaves}
    cb = rows[LEAF].closed_book
    assert rows[LEAF].evidence == "closed_book" and rows[LEAF].verdict == "improved"
    assert cb.items == 5 and cb.unscored == 0
    assert cb.base_accuracy == 0.2 and cb.candidate_accuracy >= 0.6  # 0/4 facts before (+ the judge's 1)
    assert rows[CONTROL].closed_book.candidate_accuracy > 0.5  # taught in the same run: not forgotten
    assert rows[CONTROL].verdict != "regressed"
    text = render_text(report)
    assert f"closed book {LEAF}: 20% -> " in text
    assert "closed book (5)" in render_markdown(report)
