"""The knowledge pipeline: the leaf's documents -> chunks of `chunk_tokens` -> question-answer pairs
per chunk (guided by one seed example's context and Q&A) -> drop unfaithful, irrelevant and not
self-contained pairs -> dedup and trim (the rows past the quota: the validation split) -> the
multiple-choice test items (knowledge_mc.py, a stage of its own).

Coverage follows the documents, as the reference recipe's chunk x seed example product: the leaf's
quota is samples_per_leaf per SEED_BASE (seed example, chunk) cells, and the requests walk the cells
in rounds, each round visiting every chunk once (round r pairs chunk c with seed example (c + r) mod
S), so every chunk is used before any is used twice and every seed example is shown. With fewer
requests than chunks (a small quota, or --max-requests-per-leaf binding) request i takes chunk
i*C//R: the document is sampled from start to end rather than only its head.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any

from labtax.sdg.dedup import Deduper
from labtax.sdg.documents import Chunk, chunk_documents, load_documents
from labtax.sdg.pipelines import filters
from labtax.sdg.pipelines.calibrate import dependent, pick_off_topic, requests_needed, rotate
from labtax.sdg.pipelines.filters import Examples, Row
from labtax.sdg.pipelines.knowledge_mc import mc_generate, mc_items
from labtax.sdg.pipelines.knowledge_mc import plan as mc_plan
from labtax.sdg.pipelines.parse import parse_pairs, parse_yes
from labtax.sdg.pipelines.runner import (
    Runner,
    bounded_requests,
    candidates_wanted,
    count_tokens_for,
    leaf_quota,
    token_counter,
)
from labtax.sdg.pipelines.stream import Turns
from labtax.sdg.settings import GenerationSettings
from labtax.taxonomy.model import Leaf

FILTERS = ("faithful", "relevant", "standalone")


def knowledge_seeds(leaf: Leaf) -> list[dict[str, Any]]:
    out = []
    for seed in leaf.data.get("seed_examples") or []:
        if not isinstance(seed, dict):
            continue
        pairs = [
            (str(qa.get("question", "")).strip(), str(qa.get("answer", "")).strip())
            for qa in seed.get("questions_and_answers") or []
            if isinstance(qa, dict) and qa.get("question") and qa.get("answer")
        ]
        out.append({"context": str(seed.get("context") or "").strip(), "pairs": pairs})
    return out


def volume(leaf: Leaf, settings: GenerationSettings, chunks: int) -> dict[str, int]:
    """The leaf's quota and requests for `chunks` chunks: {quota, wanted, requests, bound (0/1)}."""
    seeds = max(1, len(knowledge_seeds(leaf)))
    quota = leaf_quota(settings, seeds * max(1, chunks))
    wanted = math.ceil(candidates_wanted(settings, quota) / settings.qa_per_request)
    requests, bound = bounded_requests(settings, wanted)
    return {"quota": quota, "wanted": wanted, "requests": requests, "bound": int(bound)}


def plan(leaf: Leaf, settings: GenerationSettings, chunks: int | None = None) -> dict[str, int]:
    """The most requests per stage; without a chunk count, the bound of --max-requests-per-leaf."""
    first = volume(leaf, settings, chunks)["requests"] if chunks else settings.max_requests_per_leaf
    rows = first * settings.qa_per_request
    # Each filter's calibration on the seed Q&A and their broken copies, once per leaf.
    examples = calibration_examples(knowledge_seeds(leaf), str(leaf.data.get("domain") or "").strip())
    calibration = {f"calibrate_{f}": requests_needed(examples[f], settings.calibration_examples) for f in FILTERS}
    return {"knowledge_qa": first, **{f: rows for f in FILTERS}, **calibration, **mc_plan(settings)}


def cell(i: int, requests: int, chunks: int, seeds: int) -> tuple[int, int]:
    """(chunk, seed example) of request i: rounds over every chunk, seed examples rotating."""
    if requests < chunks:
        c = (i * chunks) // requests
        return c, c % seeds
    r, c = divmod(i, chunks)
    return c, (c + r) % seeds


async def run_knowledge(runner: Runner, taxonomy_root: Path) -> list[dict[str, Any]]:
    leaf, s = runner.leaf, runner.settings
    documents = load_documents(leaf, taxonomy_root, s.document_reader)
    runner.extra["document_readers"] = dict(sorted(Counter(d.reader for d in documents).items()))
    chunks = chunk_documents(documents, s.chunk_tokens, count_tokens_for(runner.teacher))
    runner.extra["chunks_sized_by"] = token_counter(runner.teacher)
    runner.extra["documents"] = len(documents)
    runner.extra["chunks"] = len(chunks)
    if not chunks:
        return []
    seeds = knowledge_seeds(leaf) or [{"context": "", "pairs": []}]
    domain = str(leaf.data.get("domain") or "").strip()
    outline = str(leaf.data.get("document_outline") or "").strip()
    n = s.qa_per_request
    vol = volume(leaf, s, len(chunks))
    count = vol["requests"]
    runner.extra["quota"] = vol["quota"]
    runner.extra["requests_wanted"] = vol["wanted"]
    runner.extra["max_requests_bound"] = bool(vol["bound"])
    runner.funnel = dict.fromkeys(("asked", "parsed", "deduplicated", "judged"), 0)
    cells = [cell(i, count, len(chunks), len(seeds)) for i in range(count)]
    picked_chunks = [chunks[c] for c, _ in cells]
    runner.extra["chunks_used"] = len({c for c, _ in cells})
    runner.extra["seeds_used"] = len({e for _, e in cells})

    def qa_request(i: int) -> Any:
        example = seeds[cells[i][1]]
        shown = "\n".join(f"Question: {q}\nAnswer: {a}" for q, a in example["pairs"][:n])
        runner.show(example["context"], *(text for pair in example["pairs"][:n] for text in pair))
        return runner.request(
            "knowledge_qa", i, domain=domain, outline=outline, example_context=example["context"],
            example_pairs=shown, chunk=picked_chunks[i].text, n=str(n),
        )

    # The multiple-choice items need only the chunks: asked for at once, beside the Q&A.
    mc_asked = runner.spawn(mc_generate(runner, chunks, domain, outline))
    dedup = Deduper(s.dedup_threshold)
    for seed in seeds:
        for q, a in seed["pairs"]:
            dedup.add(f"{q}\n{a}")
    drop_reasons = {name: runner.pipeline.stages[name].drop or f"not_{name}" for name in FILTERS}
    examples = calibration_examples(seeds, domain)

    def judge(name: str) -> filters.Step:
        def make(i: int, row: Row) -> Any:
            return runner.request(name, i, chunk=row.context or "", question=row.question, answer=row.answer or "")

        return filters.judge_step(runner, name, make, parse_yes, drop_reasons[name], examples[name])

    # Each pair goes through the three judges as soon as the one before has answered.
    chain = filters.Chain(runner, [("judged" if name == FILTERS[-1] else None, judge(name)) for name in FILTERS])
    runner.count("asked", count * n)
    turns = Turns()

    async def qa(i: int) -> None:
        resp = await runner.ask("knowledge_qa", qa_request(i), readable=lambda t: bool(parse_pairs(t)))
        async with turns.turn(i):  # deduplicated in request order
            for row in _pair_rows(runner, picked_chunks[i], resp, dedup):
                chain.add(row)

    for i in range(count):
        runner.spawn(qa(i))
    await runner.settle()
    runner.count("deduplicated", chain.size)
    rows = chain.rows()
    rows, validation = filters.split_quota(runner, rows, vol["quota"])
    runner.held_out += [filters.as_validation(_sample(runner, row)) for row in validation]
    # A separate stage: closed-book multiple-choice test items from the same chunks.
    seed_questions = [q for seed in seeds for q, _ in seed["pairs"]]
    runner.held_out += await mc_items(runner, mc_asked.result(), rows + validation, seed_questions)
    return [_sample(runner, row) for row in rows]


def _pair_rows(runner: Runner, chunk: Chunk, resp: Any, dedup: Deduper) -> list[Row]:
    """The new rows of one Q&A reply (parsed, a cut last pair dropped, deduplicated)."""
    if not resp.ok:
        return []
    pairs = parse_pairs(resp.text)[: runner.settings.qa_per_request]
    if not pairs:
        runner.unusable("knowledge_qa")
        return []
    if resp.finish_reason == "length":
        # The last pair may be cut mid-answer: it costs that row only.
        runner.generated += 1
        runner.drop("answer_truncated")
        pairs = pairs[:-1]
    runner.count("parsed", len(pairs))
    rows = []
    for q, a in pairs:
        runner.generated += 1
        why = dedup.check(f"{q}\n{a}")
        if why:
            runner.drop(f"duplicate_{why}")
        else:
            rows.append(Row(q, chunk.text, a, extra={"document": chunk.document, "chunk": chunk.index}))
    return rows


def calibration_examples(seeds: list[dict[str, Any]], domain: str) -> dict[str, Examples]:
    """Per filter, the seed Q&A (good) and broken copies of them: for `faithful` an answer taken from
    another seed's context (not in this document), for `relevant` an off-topic question or another
    pair's answer, for `standalone` the question made to point at "the passage above". One pair per
    seed first, so a few examples still span every seed context."""
    flat = [(s["context"], q, a) for k in range(3) for s in seeds if s["context"] and len(s["pairs"]) > k
            for q, a in [s["pairs"][k]]]
    good = [Row(q, c, a) for c, q, a in flat]
    other_answers = rotate([a for _, _, a in flat])  # the next seed's answer at the same position
    not_in_document = [Row(q, c, a) for (c, q, own), a in zip(flat, other_answers) if a != own]
    topic = " ".join([domain] + [q for _, q, _ in flat])
    off_topic = [Row(pick_off_topic(topic, i), c, a) for i, (c, _, a) in enumerate(flat)]
    mixed = [r for pair in zip(off_topic, not_in_document) for r in pair]
    return {
        "faithful": (good, not_in_document),
        "relevant": (good, mixed),
        "standalone": (good, [Row(dependent(q), c, a) for c, q, a in flat]),
    }


def _sample(runner: Runner, row: Row) -> dict[str, Any]:
    return {
        "messages": [
            {"role": "user", "content": f"{row.context}\n\n{row.question}"},
            {"role": "assistant", "content": row.answer},
        ],
        "metadata": filters.metadata(runner, row),
        "unmask": True,
    }
