"""The knowledge judges are calibrated on the chunks they judge (issue 20): each seed example is shown
with the chunk of the leaf's document that holds it, as every generated pair is, so a judge whose
P(yes) sits on another scale for a whole chunk than for a two-sentence seed context still keeps the
faithful pairs and drops the broken ones."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from openai_server import OpenAIServer, Reply, lab_responder, verdict_logprobs
from sdgleaves import make_leaf, run

from labtax.data.facts import unsupported_facts
from labtax.sdg.documents import Document, chunk_documents
from labtax.sdg.pipelines import generate_leaf
from labtax.sdg.pipelines.calibrate import off_topic_questions
from labtax.sdg.pipelines.knowledge import calibration_examples, home_chunk, knowledge_seeds
from labtax.sdg.pipelines.runner import LeafResult
from labtax.sdg.settings import GenerationSettings
from labtax.teachers import make_teacher

# A made-up ferry service: three paragraphs of ~16 words, one chunk each at 24 tokens.
FERRY = (
    "The Quarrow ferry was founded in 1821 by Halden Brisk. It crossed the Amble strait.\n\n"
    "Its largest boat, the Tern, carried 140 passengers. The Tern was built in Ostrel in 1903.\n\n"
    "The service closed in 1988. Its last captain was Mara Vell, who served for 27 years."
)
SEED_CONTEXTS = [
    ("The Quarrow ferry was founded in 1821 by Halden Brisk.",
     [("When was the Quarrow ferry founded?", "In 1821."), ("Who founded the Quarrow ferry?", "Halden Brisk."),
      ("Which strait did the ferry cross?", "The Amble strait.")]),
    ("Its largest boat, the Tern, carried 140 passengers.",
     [("What was the largest boat called?", "The Tern."), ("How many passengers did the Tern carry?", "140."),
      ("Where was the Tern built?", "In Ostrel.")]),
    ("The service closed in 1988.",
     [("When did the service close?", "In 1988."), ("Who was the last captain?", "Mara Vell."),
      ("How long did Mara Vell serve?", "For 27 years.")]),
    ("It crossed the Amble strait.",
     [("What did the ferry cross?", "The Amble strait."), ("Who founded the ferry?", "Halden Brisk."),
      ("In which year was the ferry founded?", "In 1821.")]),
    ("The Tern was built in Ostrel in 1903.",
     [("When was the Tern built?", "In 1903."), ("In which town was the Tern built?", "In Ostrel."),
      ("Which boat was built in Ostrel?", "The Tern.")]),
]


def ferry_data() -> dict[str, Any]:
    return {
        "version": 3, "created_by": "tester", "domain": "transport",
        "document_outline": "A made-up ferry service",
        "seed_examples": [{"context": c, "questions_and_answers": [{"question": q, "answer": a} for q, a in pairs]}
                          for c, pairs in SEED_CONTEXTS],
        "document": {"repo": ".documents/ferry", "commit": "", "patterns": ["*.md"]},
    }


def ferry_chunks() -> list[str]:
    return [c.text for c in chunk_documents([Document("ferry.md", FERRY)], 24, lambda t: round(len(t.split()) * 1.3))]


def test_each_seed_is_shown_with_the_chunk_that_holds_it() -> None:
    chunks = ferry_chunks()
    assert len(chunks) == 3
    assert home_chunk("The service closed in 1988.", "In 1988.", chunks) == chunks[2]
    # A seed no chunk holds keeps its own context.
    assert home_chunk("Pluto is far.", "Pluto.", chunks) == "Pluto is far."
    seeds = knowledge_seeds(make_leaf("knowledge/transport/ferry/qna.yaml", ferry_data()))
    examples = calibration_examples(seeds, "transport", chunks)
    good, broken = examples["faithful"]
    assert len(good) == len(broken) == 15
    for row in good:
        assert row.context in chunks and not unsupported_facts(row.answer or "", row.context)
    for row in broken:  # a wrong answer that its chunk does not hold: what the judge must refuse
        assert row.context in chunks and unsupported_facts(row.answer or "", row.context)
    assert all(r.context in chunks for r in examples["relevant"][1] + examples["standalone"][1])
    # Without chunks (the plan's request count before the documents are read): the seed contexts.
    plain = calibration_examples(seeds, "transport")
    assert {r.context for r in plain["faithful"][0]} == {c for c, _ in SEED_CONTEXTS}


def scale_shifting_judge(kind: str, body: dict[str, Any]) -> Any:
    """The knowledge judges as the 1.5B teacher behaved: a wrong answer (a number or name its document
    does not hold) or an off-topic question gets a low P(yes), but every P(yes) is lower when the
    document shown is a whole chunk than when it is a one-sentence seed context."""
    system, user = body["messages"][0]["content"], body["messages"][1]["content"]
    if not any(f"STAGE: {s}" in system for s in ("faithful", "relevant", "standalone")):
        return lab_responder()(kind, body)
    if "STAGE: standalone" in system:
        p = 0.1 if "passage above" in user else 0.9
        return Reply("yes" if p > 0.5 else "no", top_logprobs=verdict_logprobs(p))
    document = user.split("Document:", 1)[1].split("\nQuestion:", 1)[0].strip()
    question = user.rsplit("Question:", 1)[1].split("\nAnswer:", 1)[0].strip()
    answer = user.rsplit("Answer:", 1)[1].split("\n", 1)[0].strip()
    wrong = bool(unsupported_facts(answer, document)) or question in set(off_topic_questions())
    long_document = len(document.split()) > 12
    p = (0.2 if wrong else 0.6) if long_document else (0.5 if wrong else 0.95)
    return Reply("yes" if p > 0.5 else "no", top_logprobs=verdict_logprobs(p))


def test_pairs_judged_on_their_chunk_are_kept_when_the_judge_scale_shifts(tmp_path: Path,
                                                                          openai_server: OpenAIServer) -> None:
    docs = tmp_path / "tax" / ".documents" / "ferry"
    docs.mkdir(parents=True)
    (docs / "ferry.md").write_text(FERRY, encoding="utf-8")
    leaf = make_leaf("knowledge/transport/ferry/qna.yaml", ferry_data())
    openai_server.responder = scale_shifting_judge
    teacher = make_teacher("openai", endpoints=[openai_server.base_url], model="test-model")
    settings = GenerationSettings(samples_per_leaf=5, chunk_tokens=24, seed=3, calibration_examples=4)

    async def go() -> LeafResult:
        try:
            return await generate_leaf(leaf, teacher, settings, taxonomy_root=tmp_path / "tax")
        finally:
            await teacher.aclose()

    result = run(go())
    cal = result.stats["calibration"]
    for stage in ("faithful", "relevant"):
        # Calibrated on the chunks' scale (good 0.6, broken 0.2), not the seed contexts' (0.95 / 0.5),
        # whose cut would sit above every generated pair's 0.6.
        assert cal[stage]["status"] == "calibrated" and cal[stage]["auc"] == 1.0, (stage, cal[stage])
        assert 0.2 < cal[stage]["threshold"] <= 0.6, (stage, cal[stage])
    assert result.stats["dropped"].get("unfaithful", 0) == result.stats["dropped"].get("irrelevant", 0) == 0
    assert result.stats["kept"] > 0 and result.samples
    for sample in result.samples:
        verdicts = sample["metadata"]["verdicts"]
        assert {verdicts[s]["verdict"] for s in ("faithful", "relevant", "standalone")} == {"pass"}


def test_the_extractive_check_reads_the_question_against_the_whole_document() -> None:
    """A question that stands alone names its subject, which a chunk in the middle of the document need
    not repeat: the question's facts are looked up in the document, the answer's in its chunk."""
    from labtax.sdg.pipelines.filters import Row as R
    from labtax.sdg.pipelines.knowledge import extractive_step

    class Counts:
        def __init__(self) -> None:
            self.dropped: list[str] = []

        def drop(self, reason: str, n: int = 1) -> None:
            self.dropped.append(reason)

    chunks = ferry_chunks()
    counts = Counts()
    step = extractive_step(counts, {"ferry.md": FERRY})  # type: ignore[arg-type]
    good = R("When did the Quarrow ferry service close?", chunks[2], "In 1988.", extra={"document": "ferry.md"})
    assert run(step(0, good)) and good.scores["extractive"] == []
    # The answer's facts must be in its chunk: 1821 is in the document, not in this chunk.
    elsewhere = R("When did the Quarrow ferry service close?", chunks[2], "In 1821.", extra={"document": "ferry.md"})
    # A question naming what the document never says teaches a wrong premise.
    premise = R("When did the Quarrow ferry reach Lisbon?", chunks[2], "In 1988.", extra={"document": "ferry.md"})
    assert not run(step(1, elsewhere)) and elsewhere.scores["extractive"] == ["1821"]
    assert not run(step(2, premise)) and premise.scores["extractive"] == ["lisbon"]
    assert counts.dropped == ["facts_not_in_chunk", "facts_not_in_chunk"]


def test_pairs_under_one_fact_line_about_different_facts_are_split() -> None:
    from labtax.sdg.pipelines.knowledge import split_fact

    # What the 1.5B teacher wrote under one "Fact:" line: three facts, one wording each.
    assert len(split_fact([("When was the largest furnace lit?", "In 1881."),
                           ("What was the largest furnace called?", "Old Brimstone."),
                           ("Where was the largest furnace?", "In Tillford.")])) == 3
    # One fact in three wordings (a date's year is the same fact); a pair naming none stays with them.
    same = [("When was the ferry founded?", "On 3 May 1821."), ("In which year did the ferry start?", "In 1821."),
            ("What began in 1821?", "The Quarrow ferry began in 1821."), ("Was it a ferry?", "Yes, it was.")]
    assert split_fact(same) == [same]
