"""The skills pipelines, built from ONE leaf's seeds.

freeform: questions (k seed questions shown per request) -> judge each question (keep/drop) ->
answer (one seed pair shown as the style example) -> score each pair 1-3, keep >= threshold.
grounded: new contexts first (seed contexts shown), then questions about each context, then the
same steps with the context in every prompt and in the sample.
"""

from __future__ import annotations

import math
from typing import Any

from labtax.sdg.dedup import Deduper
from labtax.sdg.pipelines import filters
from labtax.sdg.pipelines.filters import Row, rng_for
from labtax.sdg.pipelines.parse import parse_context, parse_keep, parse_questions
from labtax.sdg.pipelines.runner import Runner, block, candidates_wanted
from labtax.sdg.settings import GenerationSettings
from labtax.taxonomy.model import Leaf


def skill_seeds(leaf: Leaf) -> list[dict[str, str]]:
    out = []
    for seed in leaf.data.get("seed_examples") or []:
        if isinstance(seed, dict) and seed.get("question"):
            out.append({k: str(seed[k]).strip() for k in ("question", "answer", "context") if seed.get(k)})
    return out


def _dedup_key(question: str, context: str | None) -> str:
    # The same question about two different contexts is two different samples.
    return f"{context}\n{question}" if context else question


def plan(leaf: Leaf, settings: GenerationSettings) -> dict[str, int]:
    """Requests per stage, at most (filters only reduce later stages)."""
    n = settings.questions_per_request
    first = math.ceil(candidates_wanted(settings) / n)
    rows = first * n
    stages = {"questions": first, "judge_question": rows, "answer": rows, "score": rows}
    if leaf.grounded:
        stages = {"contexts": first, **stages}
    return stages


async def run_skills(runner: Runner) -> list[dict[str, Any]]:
    leaf, s = runner.leaf, runner.settings
    seeds = skill_seeds(leaf)
    task = str(leaf.data.get("task_description") or "").strip()
    n = s.questions_per_request
    k = min(s.icl_examples, len(seeds))
    requests_wanted = plan(leaf, s)["questions"]

    contexts: list[str | None]
    if leaf.grounded:
        contexts = list(await _contexts(runner, seeds, task, requests_wanted))
        if not contexts:
            return []
    else:
        contexts = [None] * requests_wanted

    def question_request(i: int, context: str | None) -> Any:
        picked = rng_for(runner, "questions", i).sample(seeds, k) if k else []
        if context is None:
            examples = "\n".join(f"{j + 1}. {p['question']}" for j, p in enumerate(picked))
        else:
            examples = "\n\n".join(f"Text: {p.get('context', '')}\nQuestion: {p['question']}" for p in picked)
        values = {"task_description": task, "examples": examples, "n": str(n)}
        if context is not None:
            values["context"] = context
        return runner.request("questions", i, **values)

    responses = await runner.run("questions", [question_request(i, c) for i, c in enumerate(contexts)])
    dedup = Deduper(s.dedup_threshold)
    for seed in seeds:
        dedup.add(_dedup_key(seed["question"], seed.get("context")))
    rows: list[Row] = []
    for context, resp in zip(contexts, responses):
        if not resp.ok:
            continue  # counted as a failed request of the stage
        questions = parse_questions(resp.text)
        if resp.finish_reason == "length" and questions:
            questions = questions[:-1]  # the last line may be cut mid-question
        if not questions:
            runner.unusable("questions")
            continue
        for question in questions[:n]:
            runner.generated += 1
            why = dedup.check(_dedup_key(question, context))
            if why:
                runner.drop(f"duplicate_{why}")
            else:
                rows.append(Row(question, context))

    def judge_request(i: int, row: Row) -> Any:
        return runner.request(
            "judge_question", i, task_description=task, context_block=block("Context", row.context),
            question=row.question,
        )

    rows = await filters.judge(runner, "judge_question", rows, judge_request, parse_keep, "judge_drop")

    def answer_request(i: int, row: Row) -> Any:
        example = rng_for(runner, "answer", i).choice(seeds) if seeds else {"question": "", "answer": ""}
        shown = f"Example question: {example['question']}\nExample answer: {example.get('answer', '')}"
        if example.get("context"):
            shown = f"Example text: {example['context']}\n{shown}"
        return runner.request(
            "answer", i, task_description=task, example=shown, context_block=block("Context", row.context),
            question=row.question,
        )

    rows = await filters.answer(runner, rows, answer_request)

    def score_request(i: int, row: Row) -> Any:
        return runner.request(
            "score", i, task_description=task, context_block=block("Context", row.context),
            question=row.question, answer=row.answer or "",
        )

    rows = await filters.score(runner, rows, score_request)
    rows = filters.trim(runner, rows)
    return [_sample(runner, row) for row in rows]


async def _contexts(runner: Runner, seeds: list[dict[str, str]], task: str, count: int) -> list[str]:
    """New contexts in the style of the seed contexts, deduplicated against them and each other."""
    s = runner.settings
    with_context = [p for p in seeds if p.get("context")]
    k = min(s.icl_examples, len(with_context))
    requests = []
    for i in range(count):
        picked = rng_for(runner, "contexts", i).sample(with_context, k) if k else []
        examples = "\n\n".join(f"Context: {p['context']}" for p in picked)
        requests.append(runner.request("contexts", i, task_description=task, examples=examples))
    responses = await runner.run("contexts", requests)
    dedup = Deduper(s.dedup_threshold)
    for p in with_context:
        dedup.add(p["context"])
    stage = runner.stages["contexts"]
    stage.setdefault("duplicate", 0)
    out = []
    for resp in responses:
        if not resp.ok:
            continue
        context = parse_context(resp.text) if resp.finish_reason != "length" else None
        if context is None:
            runner.unusable("contexts")
        elif dedup.check(context):
            stage["duplicate"] += 1
        else:
            out.append(context)
    return out


def _sample(runner: Runner, row: Row) -> dict[str, Any]:
    user = f"{row.context}\n\n{row.question}" if row.context else row.question
    return {
        "messages": [{"role": "user", "content": user}, {"role": "assistant", "content": row.answer}],
        "metadata": filters.metadata(runner, row),
        "unmask": False,
    }
