"""Acceptance (issue 20): the whole loop on a small made-up-facts taxonomy of the tests' own teaches a
student facts it can recall closed book, asked in words it never trained on.

taxonomy (a real git repo) -> labtax diff-generate with a teacher that answers from a fixed list of
facts and wordings (the local OpenAI test server) -> the mixer holds one wording of each fact out ->
labtax train phase 1 with labtax's default knowledge recipe on the real 135M student (embedded-small)
-> labtax eval: the held-out questions, asked with no context, answered right after, not before.

The CPU is the student's forward and backward over the rows' tokens (~50-70 tokens/s on one AVX2
thread), then the eval's scoring and answers: so two facts, three wordings each, short names, a short
system turn (with none, SmolLM2's template writes its own default, 21 tokens of every row) and no
multiple-choice items (`--mc-per-leaf 0`: their 4 options a model were most of the eval; the
held-out wordings are asked either way). Phase 1 is 12 optimizer steps (6 epochs fitted to 24
exposures) over 2,820 tokens, against 5,988 for the three facts of before (150-170 CPU-s in all, 122
of them training; five facts took 198). Measured, load 4-5, AVX2: 0 of 2 -> 2 of 2 with two seeds
(seed 7 and 8: different wordings held out), ~95 CPU-s in all (76-78 training, 18 eval), 65 with one
checkpoint instead of one per epoch (load 2-4); three facts went 0 of 3 -> 3 of 3. Marked slow.
"""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path
from typing import Any

import pytest
from lab_taxonomy import add_knowledge, read_jsonl, run_cli, teacher_args
from openai_server import OpenAIServer, lab_responder
from train_fixtures import no_state_config

pytestmark = pytest.mark.slow

LEAF = "knowledge/crafts/orvane_guild"
DOCUMENT = """# The Orvane Guild

The Orvane Guild was founded in 1721 by Lisbet Anvar.
"""
SYSTEM = "Be brief."  # 7 tokens of every row instead of the student's default 21 (see above)
# The teacher's fixed list: per fact, three differently worded question-answer pairs.
FACTS: list[tuple[str, list[tuple[str, str]]]] = [
    ("The guild was founded in 1721.", [
        ("When was the Orvane Guild founded?", "The Orvane Guild was founded in 1721."),
        ("In what year did the Orvane Guild begin?", "It began in 1721."),
        ("What is the founding year of the Orvane Guild?", "Its founding year is 1721.")]),
    ("Lisbet Anvar founded the guild.", [
        ("Who founded the Orvane Guild?", "Lisbet Anvar founded the Orvane Guild."),
        ("Which person started the Orvane Guild?", "It was started by Lisbet Anvar."),
        ("Name the founder of the Orvane Guild.", "The founder was Lisbet Anvar.")]),
]


def fixed_list_teacher() -> Any:
    """The lab responder, except that the knowledge Q&A stage answers from the fixed list: as many facts
    and wordings as the request asks for, the next facts of the list for each request."""
    lab = lab_responder()
    lock, taken = threading.Lock(), [0]

    def respond(kind: str, body: dict[str, Any]) -> Any:
        text = "\n".join(str(m.get("content", "")) for m in body.get("messages", [])) or str(body.get("prompt", ""))
        if "STAGE: knowledge_qa" in text:
            facts = re.search(r"pick (\d+) different facts", text)
            wordings = re.search(r"write (\d+) pairs", text)
            n, w = int(facts.group(1)) if facts else 2, int(wordings.group(1)) if wordings else 3
            with lock:
                first, taken[0] = taken[0], taken[0] + n
            chosen = [FACTS[(first + i) % len(FACTS)] for i in range(min(n, len(FACTS)))]
            return "\n\n".join(f"Fact: {fact}\n" + "\n".join(f"Question: {q}\nAnswer: {a}" for q, a in pairs[:w])
                               for fact, pairs in chosen)
        return lab(kind, body)

    return respond


def test_the_trained_student_recalls_held_out_facts_it_could_not_before(git_repo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    add_knowledge(git_repo, LEAF, doc=DOCUMENT)
    git_repo.commit("a made-up knowledge leaf")
    out, run = tmp_path / "generated", tmp_path / "train"
    with OpenAIServer(fixed_list_teacher()) as server:
        code, text = run_cli(["diff-generate", "--taxonomy", str(git_repo.root), "--base", "empty", "--output",
                              str(out), "--chunk-tokens", "400", "--wordings-per-fact", "3", "--mc-per-leaf", "0",
                              "--system-prompt", SYSTEM, *teacher_args(server, samples=40)])
    assert code == 0, text
    test = read_jsonl(out / "test.jsonl")
    assert not any("choices" in t for t in test)  # --mc-per-leaf 0: no multiple-choice item
    held = [t for t in test if t["metadata"].get("source") == "held_out"]
    assert len(held) == len(FACTS), text  # one wording of every fact, asked closed book
    assert all(h["messages"][0] == {"role": "system", "content": SYSTEM} for h in held)
    questions = {m["content"] for s in read_jsonl(out / "phase1_knowledge.jsonl") for m in s["messages"][1:]}
    assert not any(h["messages"][1]["content"] in questions for h in held)  # never trained on

    # Phase 1 with labtax's defaults (the knowledge recipe), but steps of 8: fewer, cheaper steps.
    # One checkpoint, the last (what --select last keeps), not one per epoch: each is a held-out loss
    # and 1.6 GB of weights and optimizer state written; and that one without the optimizer's
    # resumable state (save_state: false; the run is never resumed, and the state changes no weight).
    code, text = run_cli(["train", "--data", str(out), "--model", "embedded-small", "--output", str(run),
                          "--phase", "knowledge", "--select", "last", "--effective-batch", "8",
                          "--save-every", str(10**9), *no_state_config(tmp_path)])
    assert code == 0, text
    assert "epochs fitted to 24 exposures" in text and "peak lr 0.0001" in text
    candidate = json.loads((run / "knowledge" / "result.json").read_text())["selected"]["path"]

    # Closed-book answers of at most 24 tokens (48 by default): the references are 6-12 tokens and an
    # answer is right when it holds their key facts; the base, which knows none of them, wrote all 48
    # (greedy decoding of the two questions was ~10 of the eval's ~17 CPU-s).
    code, text = run_cli(["eval", "--base", "embedded-small", "--candidate", candidate, "--data", str(out),
                          "--closed-book-tokens", "24", "--format", "json", "--output", str(tmp_path / "eval.json")])
    assert "closed-book questions with embedded-small (greedy, <= 24 tokens)" in text
    report = json.loads((tmp_path / "eval.json").read_text())
    row = next(r for r in report["leaves"] if r["leaf"] == LEAF)
    cb = row["closed_book"]
    assert cb["items"] == len(held) and cb["base_accuracy"] <= 0.1
    assert cb["candidate_accuracy"] >= cb["base_accuracy"] + 0.3, cb
    assert row["evidence"] == "closed_book"
