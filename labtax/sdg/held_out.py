"""The test split's rows from a leaf's seeds (the generated held-out rows, multiple-choice items and
validation rows, come from the pipelines). Seeds are never generated data; they are the pipelines'
in-context examples, which each row says (`shown_to_teacher`)."""

from __future__ import annotations

from typing import Any

from labtax.taxonomy.model import Leaf


def user_turn(context: str | None, question: str) -> str:
    context = (context or "").strip()
    question = question.strip()
    return f"{context}\n\n{question}" if context else question


def seed_test_samples(leaf: Leaf) -> list[dict[str, Any]]:
    """The leaf's seed examples as test samples (path-free; `metadata.leaf` is stamped by the mixer).

    Skills: one sample per seed example, its context (grounded skills) above the question.
    Knowledge: one sample per question-answer pair of each seed example, asked closed-book (the
    question alone; the example's context stays in `metadata.context`): the gate asks what the model
    learned, not what it can read off a passage. Seeds are the pipelines' in-context examples, so
    each carries `shown_to_teacher: true`.
    """
    out: list[dict[str, Any]] = []
    seeds = leaf.data.get("seed_examples") or []
    for i, seed in enumerate(seeds):
        if not isinstance(seed, dict):
            continue
        if leaf.kind == "knowledge":
            context = str(seed.get("context") or "")
            for j, qa in enumerate(seed.get("questions_and_answers") or []):
                if isinstance(qa, dict) and qa.get("question") and qa.get("answer"):
                    row = _seed_sample(leaf.kind, None, str(qa["question"]), str(qa["answer"]), i, j)
                    if context.strip():
                        row["metadata"]["context"] = context.strip()
                    out.append(row)
        elif seed.get("question") and seed.get("answer"):
            grounding = str(seed.get("context") or "") or None
            out.append(_seed_sample(leaf.kind, grounding, str(seed["question"]), str(seed["answer"]), i, None))
    return out


def _seed_sample(kind: str, context: str | None, question: str, answer: str, i: int,
                 j: int | None) -> dict[str, Any]:
    meta: dict[str, Any] = {"kind": kind, "source": "seed", "seed_index": i, "question": question.strip(),
                            "shown_to_teacher": True}
    if j is not None:
        meta["qa_index"] = j
    if context:
        meta["context"] = context.strip()
    return {
        "messages": [
            {"role": "user", "content": user_turn(context, question)},
            {"role": "assistant", "content": answer.strip()},
        ],
        "metadata": meta,
        "unmask": False,
    }
