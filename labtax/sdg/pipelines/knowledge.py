"""The knowledge pipeline: the leaf's documents -> chunks of `chunk_tokens` -> question-answer pairs
per chunk (guided by one seed example's context and Q&A) -> drop unfaithful, irrelevant and not
self-contained pairs -> dedup and trim.

Requests are spread evenly over the chunks: with more chunks than requests, request i takes chunk
i*len(chunks)//requests, so a long document is sampled from start to end rather than only its head.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from labtax.sdg.dedup import Deduper
from labtax.sdg.documents import Chunk, chunk_documents, load_documents
from labtax.sdg.pipelines import filters
from labtax.sdg.pipelines.filters import Row, rng_for
from labtax.sdg.pipelines.parse import parse_pairs, parse_yes
from labtax.sdg.pipelines.runner import Runner, candidates_wanted, count_tokens_for
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


def plan(leaf: Leaf, settings: GenerationSettings) -> dict[str, int]:
    first = math.ceil(candidates_wanted(settings) / settings.qa_per_request)
    rows = first * settings.qa_per_request
    return {"knowledge_qa": first, **{f: rows for f in FILTERS}}


def pick_chunk(chunks: list[Chunk], i: int, requests: int) -> Chunk:
    if len(chunks) >= requests:
        return chunks[(i * len(chunks)) // requests]
    return chunks[i % len(chunks)]


async def run_knowledge(runner: Runner, taxonomy_root: Path) -> list[dict[str, Any]]:
    leaf, s = runner.leaf, runner.settings
    documents = load_documents(leaf, taxonomy_root)
    chunks = chunk_documents(documents, s.chunk_tokens, count_tokens_for(runner.teacher))
    runner.extra["documents"] = len(documents)
    runner.extra["chunks"] = len(chunks)
    if not chunks:
        return []
    seeds = knowledge_seeds(leaf) or [{"context": "", "pairs": []}]
    domain = str(leaf.data.get("domain") or "").strip()
    outline = str(leaf.data.get("document_outline") or "").strip()
    n = s.qa_per_request
    count = plan(leaf, s)["knowledge_qa"]
    picked_chunks = [pick_chunk(chunks, i, count) for i in range(count)]

    requests = []
    for i, chunk in enumerate(picked_chunks):
        example = rng_for(runner, "knowledge_qa", i).choice(seeds)
        shown = "\n".join(f"Question: {q}\nAnswer: {a}" for q, a in example["pairs"][:n])
        requests.append(
            runner.request(
                "knowledge_qa", i, domain=domain, outline=outline, example_context=example["context"],
                example_pairs=shown, chunk=chunk.text, n=str(n),
            )
        )
    responses = await runner.run("knowledge_qa", requests)

    dedup = Deduper(s.dedup_threshold)
    for seed in seeds:
        for q, a in seed["pairs"]:
            dedup.add(f"{q}\n{a}")
    rows: list[Row] = []
    for chunk, resp in zip(picked_chunks, responses):
        if not resp.ok:
            continue
        pairs = parse_pairs(resp.text)[:n]
        if not pairs:
            runner.unusable("knowledge_qa")
            continue
        if resp.finish_reason == "length":
            # The last pair may be cut mid-answer: it costs that row only.
            runner.generated += 1
            runner.drop("answer_truncated")
            pairs = pairs[:-1]
        for q, a in pairs:
            runner.generated += 1
            why = dedup.check(f"{q}\n{a}")
            if why:
                runner.drop(f"duplicate_{why}")
            else:
                rows.append(Row(q, chunk.text, a, extra={"document": chunk.document, "chunk": chunk.index}))

    drop_reasons = {name: runner.pipeline.stages[name].drop or f"not_{name}" for name in FILTERS}
    for name in FILTERS:

        def make(i: int, row: Row, name: str = name) -> Any:
            return runner.request(name, i, chunk=row.context or "", question=row.question, answer=row.answer or "")

        rows = await filters.judge(runner, name, rows, make, parse_yes, drop_reasons[name])

    rows = filters.trim(runner, rows)
    return [_sample(runner, row) for row in rows]


def _sample(runner: Runner, row: Row) -> dict[str, Any]:
    return {
        "messages": [
            {"role": "user", "content": f"{row.context}\n\n{row.question}"},
            {"role": "assistant", "content": row.answer},
        ],
        "metadata": filters.metadata(runner, row),
        "unmask": True,
    }
