"""`--phase1 two-step`: the LAB paper's phase 1 in two steps (short answers; then long answers,
foundational skills and a replay of step 1), written by diff-generate and trained in order."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from lab_taxonomy import add_knowledge, add_skill, manifest, read_jsonl, run_cli, teacher_args

from labtax.data import PHASE1, PHASE1_STEP1, PHASE1_STEP2, PHASE2
from labtax.mix.mix import MixLeaf, MixSettings, build_sets
from labtax.mix.phase1_steps import step_defaults

WORDS = ["amber", "harbor", "lantern", "thistle", "meadow", "glacier", "falcon", "willow", "quartz", "ember",
         "canyon", "orchid", "tundra", "beacon", "cinder", "delta", "fjord", "grove", "haven", "island"]


def _words(seed: str, n: int) -> str:
    return " ".join(WORDS[int(hashlib.sha256(f"{seed}-{k}".encode()).hexdigest()[:8], 16) % len(WORDS)]
                    for k in range(n))


def _sample(q: str, answer: str, context: str = "") -> dict[str, Any]:
    meta: dict[str, Any] = {"question": q, **({"context": context} if context else {})}
    return {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": answer}],
            "metadata": meta, "unmask": False}


def _answer(row: dict[str, Any]) -> str:
    """The reply; a document row's passage (it has no reply: its text is what is learned)."""
    return next((m["content"] for m in reversed(row["messages"]) if m["role"] == "assistant"),
                row["messages"][-1]["content"])


# Open-book knowledge rows only: the step split's counts below are for the stored rows as they are.
OPEN = {"closed_book_rows": 0, "document_rows": 0}


def _rows(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in data.split(b"\n") if line]


def _leaves() -> list[MixLeaf]:
    knowledge = [_sample(f"What does part {i} say about {_words(f'q{i}', 4)}?",
                         _words(f"a{i}", 6 if i % 3 else 60), f"Chunk {i % 4}: {_words(f'c{i % 4}', 10)}.")
                 for i in range(18)]
    found = [_sample(f"What is {i} plus {_words(f'f{i}', 3)}?", _words(f"fa{i}", 80)) for i in range(7)]
    comp = [_sample(f"Write a poem about {_words(f'p{i}', 4)}?", _words(f"pa{i}", 9)) for i in range(9)]
    return [MixLeaf.from_samples("knowledge/astro/moon/qna.yaml", "knowledge", "k", knowledge),
            MixLeaf.from_samples("foundational_skills/math/sums/qna.yaml", "foundational_skills", "f", found),
            MixLeaf.from_samples("compositional_skills/writing/poem/qna.yaml", "compositional_skills", "c", comp)]


def test_two_step_sets_hold_the_right_rows() -> None:
    limit = step_defaults()["short_answer_max_words"]  # the packaged threshold (phase1_steps.yaml)
    one = build_sets(_leaves(), MixSettings(**OPEN))
    two = build_sets(_leaves(), MixSettings(**OPEN, phase1="two-step"))
    assert one.steps is None and set(one.by_file()) == {PHASE1, PHASE2, "test.jsonl", "validation.jsonl"}
    # Phase 1 as a whole and phase 2 are the same sets either way.
    assert b"".join(bytes(c) for c in two.phase1) == b"".join(bytes(c) for c in one.phase1)
    assert b"".join(bytes(c) for c in two.phase2) == b"".join(bytes(c) for c in one.phase2)
    assert two.steps is not None
    step1, step2 = _rows(two.steps[PHASE1_STEP1]), _rows(two.steps[PHASE1_STEP2])
    phase1 = _rows(b"".join(bytes(c) for c in one.phase1))
    short = [r for r in phase1 if len(_answer(r).split()) <= limit]
    long = [r for r in phase1 if len(_answer(r).split()) > limit]
    assert len(short) == 12 and len(long) == 6
    # Step 1: exactly the knowledge rows with short answers, as phase 1 holds them.
    assert step1 == short
    # Step 2: the long ones, every foundational-skills sample, then all of step 1 replayed (marked).
    kinds = [r["metadata"]["kind"] for r in step2]
    assert kinds.count("knowledge") == 6 + 12 and kinds.count("foundational_skills") == 7
    assert "compositional_skills" not in kinds
    replayed = [r for r in step2 if r["metadata"].get("replay_step") == 1]
    assert [r for r in step2 if r["metadata"]["kind"] == "knowledge" and not r["metadata"].get("replay")] == long
    assert [{**r, "metadata": {k: v for k, v in r["metadata"].items() if k not in ("replay", "replay_step")}}
            for r in replayed] == step1
    assert all(r["messages"][0]["role"] == "system" for r in step1 + step2)
    assert two.step_counts == {"short": 12, "long": 6, "foundational": 7, "step1_replay": 12}
    assert two.samples[PHASE1_STEP1] == 12 and two.samples[PHASE1_STEP2] == 6 + 7 + 12
    # The thresholds are settings: a half replay, a larger "short".
    half = build_sets(_leaves(), MixSettings(**OPEN, phase1="two-step", step1_replay=0.5, short_answer_max_words=100))
    assert half.step_counts == {"short": 18, "long": 0, "foundational": 7, "step1_replay": 9}


def test_the_settings_record_the_thresholds_only_for_two_steps() -> None:
    assert "phase1" not in MixSettings().as_dict() and "step1_replay" not in MixSettings().as_dict()
    two = MixSettings(phase1="two-step").as_dict()
    assert two["phase1"] == "two-step" and two["short_answer_max_words"] == step_defaults()["short_answer_max_words"]
    assert two["step1_replay"] == step_defaults()["step1_replay"]


def _long_answers(base: Any) -> Any:
    """The LAB test responder, with about half of the knowledge answers made long (50 more words)."""

    def respond(kind: str, body: dict[str, Any]) -> Any:
        text = base(kind, body)
        if not isinstance(text, str) or not text.startswith(("Question:", "Fact:")) or "Right:" in text:
            return text
        lines = text.split("\n")
        for i, line in enumerate(lines):
            # About half of the answers, wherever they fall; lower-case words of the answer itself, so
            # the longer answer names no fact its chunk lacks.
            if line.startswith("Answer:") and hashlib.sha256(line.encode()).digest()[0] % 2:
                lines[i] = line.rstrip(".") + ", and in more detail " + _words(line.lower(), 50) + "."
        return "\n".join(lines)

    return respond


def test_diff_generate_two_step_then_train_runs_both_steps(git_repo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from click.testing import CliRunner
    from openai_server import OpenAIServer, lab_responder

    from labtax.cli import cli

    add_skill(git_repo, "compositional_skills/writing/haiku")
    add_skill(git_repo, "foundational_skills/math/sums")
    add_knowledge(git_repo, "knowledge/astro/moon")
    git_repo.commit("taxonomy")
    out = tmp_path / "out"
    with OpenAIServer(_long_answers(lab_responder())) as server:
        code, text = run_cli(["diff-generate", "--taxonomy", str(git_repo.root), "--base", "empty", "--output",
                              str(out), "--phase1", "two-step", *teacher_args(server, samples=6)])
    assert code == 0, text
    m = manifest(out)
    assert m["mix"]["phase1"] == "two-step" and m["mix"]["short_answer_max_words"] == 40
    assert {PHASE1_STEP1, PHASE1_STEP2} <= set(m["sets"])
    step1, step2 = read_jsonl(out / PHASE1_STEP1), read_jsonl(out / PHASE1_STEP2)
    assert step1 and all(len(_answer(r).split()) <= 40 and r["metadata"]["kind"] == "knowledge" for r in step1)
    kinds = {r["metadata"]["kind"] for r in step2}
    assert kinds == {"knowledge", "foundational_skills"}
    assert any(len(_answer(r).split()) > 40 for r in step2 if r["metadata"]["kind"] == "knowledge")
    assert sum(1 for r in step2 if r["metadata"].get("replay_step") == 1) == len(step1)
    assert m["phase1_steps"]["short"] == len(step1) and m["phase1_steps"]["step1_replay"] == len(step1)
    assert m["sets"][PHASE1_STEP2]["samples"] == len(step2)

    run = tmp_path / "run"
    result = CliRunner().invoke(cli, ["train", "--data", str(out), "--model", "tiny", "--output", str(run),
                                      "--max-steps", "1", "--select", "last", "--max-seq-len", "1024",
                                      "--max-tokens-per-batch", "2048", "--effective-batch", "3"])
    assert result.exit_code == 0, result.output
    lines = result.output
    assert re.search(r"\[knowledge-step1\].*\n(.*\n)*.*\[knowledge-step2\].*\n(.*\n)*.*\[skills\]", lines), lines
    first = json.loads((run / "knowledge" / "step1" / "result.json").read_text())
    second = json.loads((run / "knowledge" / "step2" / "result.json").read_text())
    assert first["start"] == "tiny" and second["start"] == first["selected"]["path"]
    assert first["data"]["samples"] == len(step1) and second["data"]["samples"] == len(step2)
    # Both steps run with the knowledge settings, an explicit flag winning over the fitted schedule.
    assert first["schedule"]["effective_batch"] == second["schedule"]["effective_batch"] == 3
    assert first["schedule"]["explicit"] == second["schedule"]["explicit"] == ["effective_batch"]
    knowledge = json.loads((run / "knowledge" / "result.json").read_text())
    assert knowledge["steps"] == ["knowledge-step1", "knowledge-step2"]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["phases"]["skills"]["start"] == second["selected"]["path"]

    # Back to one step on the same output: the step sets go, so train runs phase 1 in one piece.
    with OpenAIServer(_long_answers(lab_responder())) as server:
        code, text = run_cli(["diff-generate", "--taxonomy", str(git_repo.root), "--base", "empty", "--output",
                              str(out), *teacher_args(server, samples=6)])
    assert code == 0, text
    assert not (out / PHASE1_STEP1).exists() and not (out / PHASE1_STEP2).exists()
    assert "phase1" not in manifest(out)["mix"] and "phase1_steps" not in manifest(out)


def test_generate_two_step_writes_the_step_sets_beside_its_sets(git_repo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from openai_server import OpenAIServer, lab_responder

    add_skill(git_repo, "foundational_skills/math/sums")
    add_knowledge(git_repo, "knowledge/astro/moon")
    git_repo.commit("taxonomy")
    out = tmp_path / "gen"
    with OpenAIServer(_long_answers(lab_responder())) as server:
        code, text = run_cli(["generate", "--taxonomy", str(git_repo.root), "--output", str(out), "--phase1",
                              "two-step", *teacher_args(server, samples=6)])
    assert code == 0, text
    sets = out / "sets"
    m = manifest(sets)
    step1, step2 = read_jsonl(sets / PHASE1_STEP1), read_jsonl(sets / PHASE1_STEP2)
    assert m["mix"]["phase1"] == "two-step" and m["phase1_steps"]["short"] == len(step1) > 0
    assert {r["metadata"]["kind"] for r in step2} == {"knowledge", "foundational_skills"}
    assert m["settings"]["document_reader"]  # the reader in effect, as diff-generate records it
