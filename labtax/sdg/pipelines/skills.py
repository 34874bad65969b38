"""The skills pipelines, built from ONE leaf's seeds.

As the reference "full" pipelines: every request of the first stage shows ONE seed example and asks
for many (questions_per_request) new questions; request i shows seed i mod S, and a leaf sends at
least one request per seed, so every seed example is shown (an edit to any seed changes requests).

freeform: questions -> judge each question (keep/drop) -> answer (the question's own seed pair shown
as the style example) -> score each pair 1-3, keep >= threshold.
grounded: new contexts first (request i shows seed i mod S's context, then up to icl_examples-1
other seed contexts), then questions about each context (its seed's question shown), then the same
steps with the context in every prompt and in the sample.
"""

from __future__ import annotations

import math
from typing import Any

from labtax.sdg.dedup import Deduper
from labtax.sdg.pipelines import filters
from labtax.sdg.pipelines.calibrate import pick_off_topic, rotate
from labtax.sdg.pipelines.filters import Examples, Row, rng_for
from labtax.sdg.pipelines.parse import parse_context, parse_keep, parse_questions
from labtax.sdg.pipelines.runner import Runner, block, bounded_requests, candidates_wanted, leaf_quota
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


def volume(leaf: Leaf, settings: GenerationSettings) -> dict[str, int]:
    """The leaf's quota and first-stage requests: {quota, wanted, requests, bound (0/1)}."""
    seeds = max(1, len(skill_seeds(leaf)))
    quota = leaf_quota(settings, seeds)
    wanted = max(seeds, math.ceil(candidates_wanted(settings, quota) / settings.questions_per_request))
    requests, bound = bounded_requests(settings, wanted)
    return {"quota": quota, "wanted": wanted, "requests": requests, "bound": int(bound)}


def plan(leaf: Leaf, settings: GenerationSettings, chunks: int | None = None) -> dict[str, int]:
    """Requests per stage, at most (filters only reduce later stages)."""
    n = settings.questions_per_request
    first = volume(leaf, settings)["requests"]
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
    vol = volume(leaf, s)
    requests_wanted = vol["requests"]
    runner.extra["quota"] = vol["quota"]
    runner.extra["requests_wanted"] = vol["wanted"]
    runner.extra["max_requests_bound"] = bool(vol["bound"])
    runner.funnel = dict.fromkeys(("asked", "parsed", "deduplicated", "judged", "answered", "scored"), 0)
    runner.extra["seeds_used"] = min(len(seeds), requests_wanted)

    # (context, index of the seed the request shows)
    sources: list[tuple[str | None, int]]
    if leaf.grounded:
        sources = list(await _contexts(runner, seeds, task, requests_wanted))
        if not sources:
            return []
    else:
        sources = [(None, i % len(seeds) if seeds else -1) for i in range(requests_wanted)]

    def question_request(i: int, context: str | None, e: int) -> Any:
        picked = [seeds[e]] if e >= 0 else []
        if context is None:
            examples = "\n".join(f"{j + 1}. {p['question']}" for j, p in enumerate(picked))
        else:
            examples = "\n\n".join(f"Text: {p.get('context', '')}\nQuestion: {p['question']}" for p in picked)
        values = {"task_description": task, "examples": examples, "n": str(n)}
        if context is not None:
            values["context"] = context
        return runner.request("questions", i, **values)

    responses = await runner.run("questions", [question_request(i, c, e) for i, (c, e) in enumerate(sources)],
                                 readable=lambda t: bool(parse_questions(t)))
    runner.count("asked", len(sources) * n)
    dedup = Deduper(s.dedup_threshold)
    for seed in seeds:
        dedup.add(_dedup_key(seed["question"], seed.get("context")))
    rows: list[Row] = []
    for (context, e), resp in zip(sources, responses):
        if not resp.ok:
            continue  # counted as a failed request of the stage
        questions = parse_questions(resp.text)
        if resp.finish_reason == "length" and questions:
            questions = questions[:-1]  # the last line may be cut mid-question
        if not questions:
            runner.unusable("questions")
            continue
        runner.count("parsed", len(questions[:n]))
        for question in questions[:n]:
            runner.generated += 1
            why = dedup.check(_dedup_key(question, context))
            if why:
                runner.drop(f"duplicate_{why}")
            else:
                rows.append(Row(question, context, extra={"seed_index": e}))
    runner.count("deduplicated", len(rows))

    def judge_request(i: int, row: Row) -> Any:
        return runner.request(
            "judge_question", i, task_description=task, context_block=block("Context", row.context),
            question=row.question,
        )

    rows = await filters.judge(runner, "judge_question", rows, judge_request, parse_keep, "judge_drop",
                               _question_examples(seeds, task), yes="keep")
    runner.count("judged", len(rows))

    def answer_request(i: int, row: Row) -> Any:
        e = int(row.extra.get("seed_index", -1))
        example = seeds[e] if e >= 0 else {"question": "", "answer": ""}
        shown = f"Example question: {example['question']}\nExample answer: {example.get('answer', '')}"
        if example.get("context"):
            shown = f"Example text: {example['context']}\n{shown}"
        return runner.request(
            "answer", i, task_description=task, example=shown, context_block=block("Context", row.context),
            question=row.question,
        )

    rows = await filters.answer(runner, rows, answer_request)
    runner.count("answered", len(rows))

    def score_request(i: int, row: Row) -> Any:
        return runner.request(
            "score", i, task_description=task, context_block=block("Context", row.context),
            question=row.question, answer=row.answer or "",
        )

    rows = await filters.score(runner, rows, score_request, _pair_examples(seeds))
    runner.count("scored", len(rows))
    rows, validation = filters.split_quota(runner, rows, vol["quota"])
    runner.held_out += [filters.as_validation(_sample(runner, row)) for row in validation]
    return [_sample(runner, row) for row in rows]


def _question_examples(seeds: list[dict[str, str]], task: str) -> Examples:
    """Calibration of the question judge: the seed questions vs off-topic ones in their place."""
    topic = " ".join([task] + [p["question"] for p in seeds])
    good = [Row(p["question"], p.get("context")) for p in seeds]
    broken = [Row(pick_off_topic(topic, i), p.get("context")) for i, p in enumerate(seeds)]
    return good, broken


def _pair_examples(seeds: list[dict[str, str]]) -> Examples:
    """Calibration of the scorer: each seed's own answer vs another seed's answer to its question."""
    with_answer = [p for p in seeds if p.get("answer")]
    good = [Row(p["question"], p.get("context"), p["answer"]) for p in with_answer]
    others = rotate([p["answer"] for p in with_answer])
    broken = [Row(p["question"], p.get("context"), a) for p, a in zip(with_answer, others) if a != p["answer"]]
    return good, broken


async def _contexts(runner: Runner, seeds: list[dict[str, str]], task: str,
                    count: int) -> list[tuple[str, int]]:
    """New contexts in the style of the seed contexts, deduplicated against them and each other; each
    with the index of the seed whose context request i showed first (seed i mod S)."""
    s = runner.settings
    with_context = [j for j, p in enumerate(seeds) if p.get("context")]
    k = min(s.icl_examples, len(with_context))
    requests = []
    shown: list[int] = []
    for i in range(count):
        first = with_context[i % len(with_context)] if with_context else -1
        others = [j for j in with_context if j != first]
        rest = rng_for(runner, "contexts", i).sample(others, min(k - 1, len(others))) if k > 1 else []
        picked = [seeds[j] for j in ([first] if first >= 0 else []) + rest]
        shown.append(first)
        examples = "\n\n".join(f"Context: {p['context']}" for p in picked)
        requests.append(runner.request("contexts", i, task_description=task, examples=examples))
    responses = await runner.run("contexts", requests, readable=lambda t: parse_context(t) is not None)
    dedup = Deduper(s.dedup_threshold)
    for j in with_context:
        dedup.add(seeds[j]["context"])
    stage = runner.stages["contexts"]
    stage.setdefault("duplicate", 0)
    out = []
    for first, resp in zip(shown, responses):
        if not resp.ok:
            continue
        context = parse_context(resp.text) if resp.finish_reason != "length" else None
        if context is None:
            runner.unusable("contexts")
        elif dedup.check(context):
            stage["duplicate"] += 1
        else:
            # A seed without context (a mixed leaf) still pairs with the first seed that has one.
            out.append((context, max(first, 0)))
    return out


def _sample(runner: Runner, row: Row) -> dict[str, Any]:
    user = f"{row.context}\n\n{row.question}" if row.context else row.question
    return {
        "messages": [{"role": "user", "content": user}, {"role": "assistant", "content": row.answer}],
        "metadata": filters.metadata(runner, row),
        "unmask": False,
    }
