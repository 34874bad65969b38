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
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from labtax.sdg.dedup import Deduper
from labtax.sdg.pipelines import filters
from labtax.sdg.pipelines.calibrate import pick_off_topic, requests_needed, rotate
from labtax.sdg.pipelines.filters import Examples, Row, rng_for
from labtax.sdg.pipelines.parse import parse_context, parse_keep, parse_questions
from labtax.sdg.pipelines.runner import (
    PIPELINE_DIR,
    Runner,
    block,
    bounded_requests,
    candidates_wanted,
    check_chain,
    leaf_quota,
)
from labtax.sdg.pipelines.stream import Turns
from labtax.sdg.settings import GenerationSettings
from labtax.taxonomy.model import Leaf


def skill_seeds(leaf: Leaf) -> list[dict[str, str]]:
    return [{k: text.strip() for k, text in (("question", s.question), ("answer", s.answer), ("context", s.context))
             if text} for s in leaf.spec.seeds if s.question]


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


def plan(leaf: Leaf, settings: GenerationSettings, chunks: int | list[str] | None = None) -> dict[str, int]:
    """Requests per stage, at most (filters only reduce later stages)."""
    n = settings.questions_per_request
    first = volume(leaf, settings)["requests"]
    rows = first * n
    stages = {"questions": first, "judge_question": rows, "answer": rows, "score": rows}
    if leaf.grounded:
        stages = {"contexts": first, **stages}
    # Each judge's calibration on the leaf's seeds and their broken copies, once per leaf.
    seeds, task, most = skill_seeds(leaf), leaf.spec.task_description, \
        settings.calibration_examples
    stages["calibrate_judge_question"] = requests_needed(_question_examples(seeds, task), most)
    stages["calibrate_score"] = requests_needed(_pair_examples(seeds), most)
    return stages


async def run_skills(runner: Runner) -> list[dict[str, Any]]:
    leaf, s = runner.leaf, runner.settings
    seeds = skill_seeds(leaf)
    vol = volume(leaf, s)
    requests_wanted = vol["requests"]
    runner.extra["quota"] = vol["quota"]
    runner.extra["requests_wanted"] = vol["wanted"]
    runner.extra["max_requests_bound"] = bool(vol["bound"])
    runner.funnel = dict.fromkeys(("asked", "parsed", "deduplicated", "judged", "answered", "scored"), 0)
    runner.extra["seeds_used"] = min(len(seeds), requests_wanted)
    req = _Requests(runner, seeds, leaf.spec.task_description)
    chain = _chain(runner, req)
    dedup = Deduper(s.dedup_threshold)
    for seed in seeds:
        dedup.add(_dedup_key(seed["question"], seed.get("context")))
    turns = Turns()

    async def questions(q: int, context: str | None, e: int) -> None:
        """Question request q (context, index of the seed it shows) and its rows into the chain."""
        resp = await runner.ask("questions", req.questions(q, context, e), readable=lambda t: bool(parse_questions(t)))
        runner.count("asked", s.questions_per_request)
        async with turns.turn(q):  # deduplicated in request order
            for row in _question_rows(runner, resp, context, e, dedup):
                chain.add(row)

    if leaf.grounded:
        _contexts(runner, seeds, req.task, requests_wanted, questions)
    else:
        for i in range(requests_wanted):
            runner.spawn(questions(i, None, i % len(seeds) if seeds else -1))
    await runner.settle()
    runner.count("deduplicated", chain.size)
    rows, validation = filters.split_quota(runner, chain.rows(), vol["quota"])
    runner.held_out += [filters.as_validation(_sample(runner, row)) for row in validation]
    return [_sample(runner, row) for row in rows]


# The chain steps a skills pipeline can run (its YAML's `chain:` orders them), and the funnel count
# each adds to.
CHAIN_STEPS = {"judge_question": "judged", "answer": "answered", "score": "scored"}


def _chain(runner: Runner, req: _Requests) -> filters.Chain:
    """Each question goes through the pipeline's chain as soon as its previous step has answered; the
    rows are numbered in request order (Chain), not in the order replies arrive."""
    pipeline = runner.pipeline
    order = check_chain(PIPELINE_DIR / f"{pipeline.name}.yaml", list(pipeline.chain), pipeline.stages, CHAIN_STEPS)
    steps: dict[str, Callable[[], filters.Step]] = {
        "judge_question": lambda: filters.judge_step(runner, "judge_question", req.judge, parse_keep, "judge_drop",
                                                     _question_examples(req.seeds, req.task), yes="keep"),
        "answer": lambda: filters.answer_step(runner, req.answer),
        "score": lambda: filters.score_step(runner, req.score, _pair_examples(req.seeds)),
    }
    return filters.Chain(runner, [(CHAIN_STEPS[name], steps[name]()) for name in order])


@dataclass(frozen=True)
class _Requests:
    """The requests of a skills leaf's stages, built from its seeds and task description."""

    runner: Runner
    seeds: list[dict[str, str]]
    task: str

    def questions(self, i: int, context: str | None, e: int) -> Any:
        picked = [self.seeds[e]] if e >= 0 else []
        for p in picked:
            self.runner.show(p["question"], p.get("context") if context is not None else None)
        if context is None:
            examples = "\n".join(f"{j + 1}. {p['question']}" for j, p in enumerate(picked))
        else:
            examples = "\n\n".join(f"Text: {p.get('context', '')}\nQuestion: {p['question']}" for p in picked)
        values = {"task_description": self.task, "examples": examples, "n": str(self.runner.settings.questions_per_request)}
        if context is not None:
            values["context"] = context
        return self.runner.request("questions", i, **values)

    def judge(self, i: int, row: Row) -> Any:
        return self.runner.request(
            "judge_question", i, task_description=self.task, context_block=block("Context", row.context),
            question=row.question,
        )

    def answer(self, i: int, row: Row) -> Any:
        e = int(row.extra.get("seed_index", -1))
        example = self.seeds[e] if e >= 0 else {"question": "", "answer": ""}
        self.runner.show(example["question"], example.get("answer"), example.get("context"))
        shown = f"Example question: {example['question']}\nExample answer: {example.get('answer', '')}"
        if example.get("context"):
            shown = f"Example text: {example['context']}\n{shown}"
        return self.runner.request(
            "answer", i, task_description=self.task, example=shown, context_block=block("Context", row.context),
            question=row.question,
        )

    def score(self, i: int, row: Row) -> Any:
        return self.runner.request(
            "score", i, task_description=self.task, context_block=block("Context", row.context),
            question=row.question, answer=row.answer or "",
        )


def _question_rows(runner: Runner, resp: Any, context: str | None, e: int, dedup: Deduper) -> list[Row]:
    """The new rows of one question reply (parsed, the cut last line dropped, deduplicated)."""
    n = runner.settings.questions_per_request
    if not resp.ok:
        return []  # counted as a failed request of the stage
    questions = parse_questions(resp.text)
    if resp.finish_reason == "length" and questions:
        questions = questions[:-1]  # the last line may be cut mid-question
    if not questions:
        runner.unusable("questions")
        return []
    runner.count("parsed", len(questions[:n]))
    rows = []
    for question in questions[:n]:
        runner.generated += 1
        why = dedup.check(_dedup_key(question, context))
        if why:
            runner.drop(f"duplicate_{why}")
        else:
            rows.append(Row(question, context, extra={"seed_index": e}))
    return rows


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


def _contexts(runner: Runner, seeds: list[dict[str, str]], task: str, count: int,
              then: Callable[[int, str, int], Coroutine[Any, Any, None]]) -> None:
    """Start the `count` new-context requests, in the style of the seed contexts; each context that is
    not a duplicate of the seed contexts or an earlier one goes on to `then(q, context, seed)` at
    once: q numbers the contexts kept, in request order; seed is the index of the seed whose context
    request i showed first (seed i mod S)."""
    s = runner.settings
    with_context = [j for j, p in enumerate(seeds) if p.get("context")]
    k = min(s.icl_examples, len(with_context))
    dedup = Deduper(s.dedup_threshold)
    for j in with_context:
        dedup.add(seeds[j]["context"])
    stage = runner.stage_counts("contexts")
    stage.setdefault("duplicate", 0)
    turns = Turns()

    async def one(i: int) -> None:
        first = with_context[i % len(with_context)] if with_context else -1
        others = [j for j in with_context if j != first]
        rest = rng_for(runner, "contexts", i).sample(others, min(k - 1, len(others))) if k > 1 else []
        picked = [seeds[j] for j in ([first] if first >= 0 else []) + rest]
        runner.show(*(p["context"] for p in picked))
        examples = "\n\n".join(f"Context: {p['context']}" for p in picked)
        resp = await runner.ask("contexts", runner.request("contexts", i, task_description=task, examples=examples),
                                readable=lambda t: parse_context(t) is not None)
        async with turns.turn(i):  # deduplicated and numbered in request order
            context = parse_context(resp.text) if resp.ok and resp.finish_reason != "length" else None
            if not resp.ok:
                return
            if context is None:
                runner.unusable("contexts")
                return
            if dedup.check(context):
                stage["duplicate"] += 1
                return
            q = turns.numbered
            turns.numbered += 1
        # A seed without context (a mixed leaf) still pairs with the first seed that has one.
        await then(q, context, max(first, 0))

    for i in range(count):
        runner.spawn(one(i))


def _sample(runner: Runner, row: Row) -> dict[str, Any]:
    user = f"{row.context}\n\n{row.question}" if row.context else row.question
    return {
        "messages": [{"role": "user", "content": user}, {"role": "assistant", "content": row.answer}],
        "metadata": filters.metadata(runner, row),
        "unmask": False,
    }
