"""The test split's rows from a leaf's seeds (the generated held-out rows, multiple-choice items and
validation rows, come from the pipelines), and the mixer's closed-book forms of knowledge samples: the
wording of each fact held out for closed-book evaluation (`choose_held_out`, `closed_book_row`) and
the document rows phase 1 reads (`document_row`). Seeds are never generated data; they are the pipelines'
in-context examples where a generation prompt rendered them, which each row says exactly
(`shown_to_teacher`, from the texts the pipeline recorded: `LeafResult.shown`)."""

from __future__ import annotations

import random
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from labtax.data.sample import question_of
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
    for seed in leaf.spec.seeds:
        if leaf.kind == "knowledge":
            for j, question, answer in seed.pairs:
                row = _seed_sample(leaf.kind, None, question, answer, seed.index, j, shown)
                if seed.context.strip():
                    row["metadata"]["context"] = seed.context.strip()
                out.append(row)
        elif seed.question and seed.answer:
            out.append(_seed_sample(leaf.kind, seed.context or None, seed.question, seed.answer, seed.index, None,
                                    shown))
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


# ------------------------------------------------------------- held-out wordings (closed book)


def fact_of(sample: Mapping[str, Any]) -> str:
    """The fact a generated knowledge sample words (`metadata.fact`; '' for data without one)."""
    fact = (sample.get("metadata") or {}).get("fact")
    return fact if isinstance(fact, str) else ""


def choose_held_out(samples: Sequence[Mapping[str, Any]], path: str, seed: int) -> list[int]:
    """The indices of the wordings held out for closed-book evaluation: one per fact that has at least
    two wordings (so the fact itself is still trained, from the others), drawn with a stream of the
    seed, the leaf path and the fact among its wordings sorted by question (the choice of one fact never
    moves another's, nor does the order of the input). Samples without a
    `fact` are never held out: nothing says which of their siblings teach the same fact."""
    by_fact: dict[str, list[int]] = {}
    for i, s in enumerate(samples):
        fact = fact_of(s)
        if fact:
            by_fact.setdefault(fact, []).append(i)
    held = []
    for fact, idx in sorted(by_fact.items()):
        if len(idx) >= 2:
            idx.sort(key=lambda i: (question_of(samples[i]), i))  # the same choice whatever the input order
            held.append(idx[random.Random(f"labtax-held-out-{seed}-{path}-{fact}").randrange(len(idx))])
    return sorted(held)


def closed_book_row(sample: Mapping[str, Any], *, source: str | None = None) -> dict[str, Any]:
    """The sample asked closed book: the question alone in the user turn, the answer unchanged, loss on
    the answer only. `source` ("held_out") marks a test row; training rows keep their source."""
    meta: dict[str, Any] = {k: v for k, v in dict(sample.get("metadata") or {}).items()
                            if k not in ("question_at", "question", "context", "split")}
    meta["closed_book"] = True
    if source:
        meta["source"] = source
    answer = [m for m in sample.get("messages") or [] if m.get("role") == "assistant"]
    return {
        "messages": [{"role": "user", "content": question_of(sample).strip()},
                     {"role": "assistant", "content": str(answer[-1]["content"]).strip() if answer else ""}],
        "metadata": meta,
        "unmask": False,
    }


def document_row(chunk: str, meta: Mapping[str, Any]) -> dict[str, Any]:
    """A passage of the leaf's documents as a training row: the text alone in the user turn, loss on
    every token (`unmask`), so phase 1 reads the facts in the document's own phrasing as well."""
    keep = {k: meta[k] for k in ("leaf", "kind", "document", "chunk") if k in meta}
    return {"messages": [{"role": "user", "content": chunk.strip()}],
            "metadata": {**keep, "source": "document"}, "unmask": True}
