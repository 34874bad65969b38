"""The knowledge pipeline: the leaf's documents -> chunks of `chunk_tokens` -> question-answer pairs
per chunk, several differently worded pairs per fact (guided by one seed example's context and Q&A)
-> the extractive check (every number, date and name of an answer is in its chunk) -> drop
unfaithful, irrelevant and not self-contained pairs (three judges) -> dedup and trim (the rows past
the quota: the validation split) -> a fact kept in fewer wordings than asked gets its question
reworded (knowledge_reword.py: a small teacher writes one wording per fact) -> the multiple-choice test items (knowledge_mc.py, a stage of its
own).

Coverage follows the documents' facts (knowledge_plan.py): every chunk is asked about before any is
asked twice, the pairs asked per chunk follow how many facts it holds, and a limit (requests,
--budget-tokens) is spent on every fact first, then on more wordings. Each sample carries `fact`,
"<document>#<chunk>/<n>": the wordings of one fact share it, so the mixer can hold one wording out
for closed-book evaluation and train the others.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from labtax.data.facts import given_away, key_facts, unsupported_facts
from labtax.sdg.dedup import Deduper
from labtax.sdg.documents import Chunk, Document, chunk_documents, load_documents
from labtax.sdg.pipelines import filters
from labtax.sdg.pipelines.calibrate import dependent, pick_off_topic, requests_needed, rotate
from labtax.sdg.pipelines.filters import Examples, Row
from labtax.sdg.pipelines.knowledge_mc import mc_generate, mc_items
from labtax.sdg.pipelines.knowledge_mc import plan as mc_plan
from labtax.sdg.pipelines.knowledge_plan import Ask, KnowledgePlan, plan_from_texts
from labtax.sdg.pipelines.knowledge_reword import reword_facts
from labtax.sdg.pipelines.parse import parse_fact_pairs, parse_yes
from labtax.sdg.pipelines.runner import Runner, count_tokens_for, leaf_quota, load_pipeline, token_counter
from labtax.sdg.pipelines.stream import Turns
from labtax.sdg.settings import GenerationSettings
from labtax.taxonomy.model import Leaf

# The judges every pair goes through, in order: knowledge.yaml's `chain:` (checked when it is loaded).
FILTERS = load_pipeline("knowledge").chain


def knowledge_seeds(leaf: Leaf) -> list[dict[str, Any]]:
    return [{"context": s.context.strip(), "pairs": [(q.strip(), a.strip()) for _, q, a in s.pairs]}
            for s in leaf.spec.seeds]


def quota(leaf: Leaf, settings: GenerationSettings, chunks: int) -> int:
    """The most training rows the leaf keeps (samples_per_leaf per SEED_BASE seed example x chunk cells)."""
    return leaf_quota(settings, max(1, len(knowledge_seeds(leaf))) * max(1, chunks))


def plan(leaf: Leaf, settings: GenerationSettings, chunks: int | list[str] | None = None) -> dict[str, int]:
    """The most requests per stage: for the chunks' texts, whose facts size the plan; for a chunk count
    alone (facts unknown) or nothing, the bound of the request limit."""
    if isinstance(chunks, list) and chunks:
        kp = plan_from_texts(chunks, len(knowledge_seeds(leaf)), settings)
        first, rows = kp.requests, kp.pairs
    else:
        first = settings.request_limit()
        rows = first * max(settings.qa_per_request, settings.wordings_per_fact)
    # Each filter's calibration on the seed Q&A and their broken copies, once per leaf.
    texts = chunks if isinstance(chunks, list) else []
    examples = calibration_examples(knowledge_seeds(leaf), leaf.spec.domain, texts)
    calibration = {f"calibrate_{f}": requests_needed(examples[f], settings.calibration_examples) for f in FILTERS}
    # A fact kept in fewer wordings than asked gets the rest reworded, a short request each.
    rewords = rows if settings.wordings_per_fact >= 2 else 0
    return {"knowledge_qa": first, **{f: rows for f in FILTERS}, **calibration, "reword": rewords,
            **mc_plan(settings)}


def _record_plan(runner: Runner, kp: KnowledgePlan, seeds: int) -> None:
    runner.extra["requests_wanted"] = kp.wanted
    runner.extra["max_requests_bound"] = kp.bound
    runner.extra["request_limit"] = kp.limit
    runner.extra["facts"] = kp.facts
    runner.extra["facts_asked"] = kp.facts_asked
    runner.extra["wordings"] = kp.wordings
    runner.extra["chunks_asked"] = kp.chunks_asked
    runner.extra["seeds_used"] = len({a.example for a in kp.asks}) if seeds else 0


def _credit(chunks: list[Chunk], shown: tuple[int, ...], answers: list[str]) -> int:
    """The chunk a fact's pairs are credited to, of the chunks one request showed: the one that holds
    most of their key facts, then shares most of their words (the first among equals)."""
    if len(shown) == 1:
        return shown[0]
    text = "\n".join(answers)
    words = set(text.lower().split())

    def rank(c: int) -> tuple[int, int, int]:
        chunk = chunks[c].text
        return (-len(unsupported_facts(text, chunk)), len(words & set(chunk.lower().split())), -c)

    return max(shown, key=rank)


async def run_knowledge(runner: Runner, taxonomy_root: Path) -> list[dict[str, Any]]:
    leaf, s = runner.leaf, runner.settings
    documents, chunks = _read_chunks(runner, taxonomy_root)
    if not chunks:
        return []
    seeds = knowledge_seeds(leaf) or [{"context": "", "pairs": []}]
    domain, outline = leaf.spec.domain, leaf.spec.document_outline
    kp = plan_from_texts([c.text for c in chunks], len(seeds), s)
    leaf_rows = quota(leaf, s, len(chunks))
    runner.extra["quota"] = leaf_rows
    _record_plan(runner, kp, len(seeds))
    runner.funnel = dict.fromkeys(("asked", "parsed", "deduplicated", "supported", "judged"), 0)
    # The multiple-choice items need only the chunks: asked for at once, beside the Q&A.
    mc_asked = runner.spawn(mc_generate(runner, chunks, domain, outline))
    dedup = Deduper(s.dedup_threshold)
    for seed in seeds:
        for q, a in seed["pairs"]:
            dedup.add(f"{q}\n{a}")
    chain = _judge_chain(runner, documents, calibration_examples(seeds, domain, [c.text for c in chunks]))
    runner.count("asked", kp.pairs)
    turns = Turns()
    facts_seen: Counter[int] = Counter()  # fact ids handed out per chunk, in request order

    async def qa(i: int) -> None:
        request = _qa_request(runner, i, kp.asks[i], seeds[kp.asks[i].example], chunks, domain, outline)
        resp = await runner.ask("knowledge_qa", request, readable=lambda t: bool(parse_fact_pairs(t, 1)))
        async with turns.turn(i):  # deduplicated and numbered in request order
            for row in _pair_rows(runner, chunks, kp.asks[i].chunks, kp.asks[i], resp, dedup, facts_seen):
                chain.add(row)

    for i in range(kp.requests):
        runner.spawn(qa(i))
    await runner.settle()
    runner.count("deduplicated", chain.size)
    rows, validation = split_by_fact(runner, chain.rows(), leaf_rows)
    rows = await reword_facts(runner, rows, dedup, {d.path: d.text for d in documents})
    _record_coverage(runner, rows + validation)
    runner.held_out += [filters.as_validation(_sample(runner, row)) for row in validation]
    # A separate stage: closed-book multiple-choice test items from the same chunks.
    seed_questions = [q for seed in seeds for q, _ in seed["pairs"]]
    runner.held_out += await mc_items(runner, mc_asked.result(), rows + validation, seed_questions)
    return [_sample(runner, row) for row in rows]


def _read_chunks(runner: Runner, taxonomy_root: Path) -> tuple[list[Document], list[Chunk]]:
    """The leaf's documents, read, and their chunks sized in the teacher's tokens (recorded in its stats)."""
    s = runner.settings
    documents = load_documents(runner.leaf, taxonomy_root, s.document_reader)
    runner.extra["document_readers"] = dict(sorted(Counter(d.reader for d in documents).items()))
    chunks = chunk_documents(documents, s.chunk_tokens, count_tokens_for(runner.teacher))
    runner.extra["chunks_sized_by"] = token_counter(runner.teacher)
    runner.extra["documents"] = len(documents)
    runner.extra["chunks"] = len(chunks)
    return documents, chunks


def _qa_request(runner: Runner, i: int, ask: Ask, example: dict[str, Any], chunks: list[Chunk], domain: str,
                outline: str) -> Any:
    """Q&A request i: its chunks, the facts and wordings it asks for, a seed example's pairs as the style."""
    shown_pairs = example["pairs"][: max(1, min(3, ask.pairs))]
    shown = "\n".join(f"Question: {q}\nAnswer: {a}" for q, a in shown_pairs)
    runner.show(example["context"], *(text for pair in shown_pairs for text in pair))
    return runner.request(
        "knowledge_qa", i, domain=domain, outline=outline, example_context=example["context"],
        example_pairs=shown, chunk="\n\n".join(chunks[c].text for c in ask.chunks), n=str(ask.pairs),
        facts=str(ask.facts), wordings=str(ask.wordings),
    )


def _judge_chain(runner: Runner, documents: list[Document], examples: dict[str, Examples]) -> filters.Chain:
    """Each pair is checked against its chunk (no teacher: any teacher's pair passes or fails the same
    way), then goes through the judges of knowledge.yaml's chain, each as soon as the one before has answered."""
    drop_reasons = {name: runner.pipeline.stages[name].drop or f"not_{name}" for name in FILTERS}

    def judge(name: str) -> filters.Step:
        def make(i: int, row: Row) -> Any:
            return runner.request(name, i, chunk=row.context or "", question=row.question, answer=row.answer or "")

        return filters.judge_step(runner, name, make, parse_yes, drop_reasons[name], examples[name])

    return filters.Chain(runner, [("supported", extractive_step(runner, {d.path: d.text for d in documents})),
                                  *(("judged" if name == FILTERS[-1] else None, judge(name)) for name in FILTERS)])


def _record_coverage(runner: Runner, kept: list[Row]) -> None:
    """The chunks and facts the kept pairs cover, and the facts kept in two wordings or more."""
    runner.extra["chunks_covered"] = len({(r.extra["document"], r.extra["chunk"]) for r in kept})
    by_fact = Counter(r.extra["fact"] for r in kept)
    runner.extra["facts_covered"] = len(by_fact)
    runner.extra["facts_with_wordings"] = sum(1 for n in by_fact.values() if n >= 2)


def _fact_cut(rows: list[Row], n: int) -> int:
    """The largest cut at or below `n` that falls between two facts (else `n`): the wordings of one
    fact stay together, all trained or all held out."""
    n = min(n, len(rows))
    cut = n
    while 0 < cut < len(rows) and rows[cut - 1].extra["fact"] == rows[cut].extra["fact"]:
        cut -= 1
    return cut or n


def split_by_fact(runner: Runner, rows: list[Row], limit: int) -> tuple[list[Row], list[Row]]:
    """filters.split_quota with both cuts moved back to a fact's edge (the rows of a fact are adjacent:
    they come from one reply)."""
    train = _fact_cut(rows, limit)
    end = _fact_cut(rows, train + runner.settings.validation_per_leaf) if runner.settings.validation_per_leaf else train
    if end == train and runner.settings.validation_per_leaf and end < len(rows):
        end += 1
        while end < len(rows) and rows[end].extra["fact"] == rows[end - 1].extra["fact"]:
            end += 1  # the next fact whole, when validation_per_leaf is smaller than one fact's wordings
    validation = rows[train:end]
    if len(rows) > end:
        runner.drop("over_quota", len(rows) - end)
    if validation:
        runner.drop("held_out_validation", len(validation))  # counted like a drop: kept + dropped = generated
    return rows[:train], validation


def extractive_step(runner: Runner, documents: dict[str, str] | None = None) -> filters.Step:
    """Drop a pair whose answer names a number, date or name its chunk does not hold, or whose question
    names one that its whole document does not hold (`unsupported_facts`; a question can teach a
    wrong premise); the missing facts are recorded in the row's scores either way. A pair whose question
    already states every key fact of its answer is dropped too (`given_away`: it teaches nothing, and
    as a held-out test item any reply that echoes the question would pass).

    The question is checked against the document, not the chunk: a question that stands alone names
    its subject ("When was the Kessary Salt Railway's tunnel dug?"), which a chunk in the middle of the
    document need not repeat; checked against the chunk, 12 of bench/heldout's 15 seed pairs failed
    (bench/faithful_bench.py)."""
    texts = documents or {}

    async def step(i: int, row: Row) -> bool:
        chunk = row.context or ""
        whole = texts.get(str(row.extra.get("document")), chunk)
        in_answer = unsupported_facts(row.answer or "", chunk)
        missing = in_answer + tuple(f for f in unsupported_facts(row.question, whole) if f not in in_answer)
        row.scores["extractive"] = list(missing)
        if missing:
            runner.drop("facts_not_in_chunk")
            return False
        if given_away(row.question, row.answer or ""):
            runner.drop("answer_in_question")
            return False
        return True

    return step


def _pair_rows(runner: Runner, chunks: list[Chunk], shown: tuple[int, ...], ask: Ask, resp: Any, dedup: Deduper,
               facts_seen: Counter[int]) -> list[Row]:
    """The new rows of one Q&A reply (parsed, a cut last pair dropped, deduplicated), each with its
    fact's id: the pairs of one fact in the reply share it."""
    if not resp.ok:
        return []
    pairs = parse_fact_pairs(resp.text, ask.wordings)[: ask.pairs]
    if not pairs:
        runner.unusable("knowledge_qa")
        return []
    if resp.finish_reason == "length":
        # The last pair may be cut mid-answer: it costs that row only.
        runner.generated += 1
        runner.drop("answer_truncated")
        pairs = pairs[:-1]
    runner.count("parsed", len(pairs))
    groups: dict[int, list[tuple[str, str]]] = {}
    for group, q, a in pairs:
        groups.setdefault(group, []).append((q, a))
    rows = []
    for members in (part for group in groups.values() for part in split_fact(group)):
        c = _credit(chunks, shown, [a for _, a in members])
        chunk = chunks[c]
        fact = f"{chunk.document}#{chunk.index}/{facts_seen[c]}"
        facts_seen[c] += 1
        for q, a in members:
            runner.generated += 1
            why = dedup.check(f"{q}\n{a}")
            if why:
                runner.drop(f"duplicate_{why}")
            else:
                rows.append(Row(q, chunk.text, a, extra={"document": chunk.document, "chunk": chunk.index,
                                                         "fact": fact}))
    return rows


def split_fact(members: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    """The pairs a reply wrote under one `Fact:` line, split where they are about different facts: a
    pair joins the first part whose answers share a number, date or name with its answer (a pair whose
    answer has none stays with the first part). A 1.5B teacher wrote "When was the furnace lit? In
    1881.", "What was it called? Old Brimstone." and "Where was it? In Tillford." under one line:
    three facts, and holding one out as the closed-book test of the other two would test a fact that
    was never trained."""
    parts: list[tuple[set[str], list[tuple[str, str]]]] = []
    for q, a in members:
        facts = set(key_facts(a))
        facts |= {str(int(f[:4])) for f in facts if re.match(r"\d{4}-", f)}  # "3 May 1874" is also "1874"
        home = next((p for p in parts if p[0] & facts), None) if facts else (parts[0] if parts else None)
        if home is None:
            parts.append((set(facts), [(q, a)]))
        else:
            home[0].update(facts)
            home[1].append((q, a))
    return [pairs for _, pairs in parts]


def home_chunk(context: str, answer: str, chunks: Sequence[str]) -> str:
    """The chunk of the leaf's documents that holds a seed example: of the chunks holding every key
    fact of its answer, the one sharing most words with its context; the seed's own context when no
    chunk holds it (a seed written apart from the documents)."""
    words = set(context.lower().split())
    holding = [c for c in chunks if not unsupported_facts(answer, c)]
    if not holding or not words & set(" ".join(holding).lower().split()):
        return context
    return max(holding, key=lambda c: (len(words & set(c.lower().split())), -len(c)))


def calibration_examples(seeds: list[dict[str, Any]], domain: str,
                         chunks: Sequence[str] = ()) -> dict[str, Examples]:
    """Per filter, the seed Q&A (good) and broken copies of them: for `faithful` an answer its
    document chunk does not hold (another seed's), for `relevant` an off-topic question or another
    pair's answer, for `standalone` the question made to point at "the passage above". One pair per
    seed first, so a few examples still span every seed context.

    Each example is shown with the chunk of the documents that holds it (`home_chunk`), as the
    generated pairs are: a judge shown a two-sentence seed context gives P(yes) on another scale than
    one shown a whole chunk, and a cut placed on the seeds' scale dropped every generated pair of a
    1.5B teacher (docs/sdg.md, *Per-leaf calibration*). Without chunks (or for a seed no chunk holds)
    the seed's own context is shown, as before."""
    flat = [(s["context"], q, a) for k in range(3) for s in seeds if s["context"] and len(s["pairs"]) > k
            for q, a in [s["pairs"][k]]]
    shown = [home_chunk(c, a, chunks) if chunks else c for c, _, a in flat]
    good = [Row(q, h, a) for h, (_, q, a) in zip(shown, flat)]
    answers = [a for _, _, a in flat]
    not_in_document = []
    for k, (h, (c, q, own)) in enumerate(zip(shown, flat)):
        # The next seed answer (in turn) that this chunk does not hold; else the next one shown with
        # the seed's own context, which cannot hold it.
        others = [a for a in rotate(answers, k + 1) if a != own]
        foreign = next((a for a in others if unsupported_facts(a, h)), None)
        if foreign is not None:
            not_in_document.append(Row(q, h, foreign))
        elif others:
            not_in_document.append(Row(q, c, others[0]))
    topic = " ".join([domain] + [q for _, q, _ in flat])
    off_topic = [Row(pick_off_topic(topic, i), h, a) for i, (h, (_, _, a)) in enumerate(zip(shown, flat))]
    mixed = [r for pair in zip(off_topic, not_in_document) for r in pair]
    return {
        "faithful": (good, not_in_document),
        "relevant": (good, mixed),
        "standalone": (good, [Row(dependent(q), h, a) for h, (_, q, a) in zip(shown, flat)]),
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
