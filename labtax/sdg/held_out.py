"""The test split's rows from a leaf's seeds (the generated held-out rows, multiple-choice items and
validation rows, come from the pipelines). Seeds are never generated data; they are the pipelines'
in-context examples where a generation prompt rendered them, which each row says exactly
(`shown_to_teacher`, from the texts the pipeline recorded: `LeafResult.shown`)."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from labtax.taxonomy.model import Leaf


def user_turn(context: str | None, question: str) -> str:
    context = (context or "").strip()
    question = question.strip()
    return f"{context}\n\n{question}" if context else question


def seed_test_samples(leaf: Leaf, shown: Collection[str] | None = None) -> list[dict[str, Any]]:
    """The leaf's seed examples as test samples (path-free; `metadata.leaf` is stamped by the mixer).

    Skills: one sample per seed example, its context (grounded skills) above the question.
    Knowledge: one sample per question-answer pair of each seed example, asked closed-book (the
    question alone; the example's context stays in `metadata.context`): the gate asks what the model
    learned, not what it can read off a passage.

    `shown`: the seed texts the generation prompts rendered (`LeafResult.shown`). A row is
    `shown_to_teacher` when its question or its answer was among them (a grounded skill: its context
    or its answer); None (not recorded) flags every seed, the upper bound.
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
                    row = _seed_sample(leaf.kind, None, str(qa["question"]), str(qa["answer"]), i, j, shown)
                    if context.strip():
                        row["metadata"]["context"] = context.strip()
                    out.append(row)
        elif seed.get("question") and seed.get("answer"):
            grounding = str(seed.get("context") or "") or None
            out.append(_seed_sample(leaf.kind, grounding, str(seed["question"]), str(seed["answer"]), i, None, shown))
    return out


def _seed_sample(kind: str, context: str | None, question: str, answer: str, i: int,
                 j: int | None, shown: Collection[str] | None) -> dict[str, Any]:
    # A grounded skill's question is often one instruction all its seeds share ("Summarise this
    # email"): the row is its context with that question, shown when its context or answer was.
    own = (context, answer) if context else (question, answer)
    seen = shown is None or any(t.strip() in shown for t in own if t.strip())
    meta: dict[str, Any] = {"kind": kind, "source": "seed", "seed_index": i, "question": question.strip(),
                            "shown_to_teacher": seen}
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
