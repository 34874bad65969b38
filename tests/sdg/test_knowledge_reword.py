"""The reword stage: a fact the teacher wrote in one wording gets a second one, checked without a
teacher (a question, new, its names in the document, about the same thing, not giving the answer
away), so the mixer can hold one wording out as a closed-book test question."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from openai_server import OpenAIServer
from sdgleaves import document_leaf, generate_with_server

from labtax.mix.held_out import choose_held_out
from labtax.sdg.pipelines.filters import Row
from labtax.sdg.pipelines.knowledge_reword import check_reword, missing_wordings, parse_reword
from labtax.sdg.pipelines.runner import LeafResult
from labtax.sdg.settings import GenerationSettings

GUILD = ("The Ostrava Guild of Lamp Makers was founded on 2 March 1899 by Marie Vell in Brno. By 1910 it "
         "had 1,200 members. Its second workshop opened in Plzen in 1923.")
PAIRS = [("When was the Ostrava Guild of Lamp Makers founded?", "It was founded on 2 March 1899."),
         ("Who founded the Ostrava Guild of Lamp Makers?", "Marie Vell founded it."),
         ("How many members did the Ostrava guild have by 1910?", "It had 1,200 members."),
         ("Where did the Ostrava guild open its second workshop?", "In Plzen, in 1923.")]
# What the teacher rewords each question to: a good one, one that gives the answer away, one naming a
# city the document does not, and a reply that is no question at all.
REWORDS = {PAIRS[0][0]: "Question: On what day did the Ostrava Guild of Lamp Makers come into being?",
           PAIRS[1][0]: "Question: Did Marie Vell start the Ostrava guild?",
           PAIRS[2][0]: "Question: By 1910, how many people belonged to the Ostrava guild in Prague?",
           PAIRS[3][0]: "Sure! Here it is."}


def one_wording_teacher(kind: str, body: dict[str, Any]) -> str:
    """Asked for two wordings per fact, writes one (as a 1.5B teacher did); rewords as REWORDS says."""
    system, user = body["messages"][0]["content"], body["messages"][-1]["content"]
    if "STAGE: knowledge_qa" in system:
        return "\n\n".join(f"Fact: {a}\nQuestion: {q}\nAnswer: {a}" for q, a in PAIRS)
    if "STAGE: reword" in system:
        return next(r for q, r in REWORDS.items() if f"Question: {q}" in user)
    return "Verdict: yes"


def test_parse_reword_reads_a_labelled_line_or_a_question() -> None:
    assert parse_reword("Question: Who built the bridge?") == "Who built the bridge?"
    assert parse_reword("**New question:** Who built the bridge?") == "Who built the bridge?"
    assert parse_reword("Here you go:\nWho built the old bridge?") == "Who built the old bridge?"
    assert parse_reword("Question: Who built it") is None  # not a question
    assert parse_reword("Question: Who?") is None  # too short
    assert parse_reword("Sure!") is None


def test_check_reword_drops_by_reason() -> None:
    row = Row(PAIRS[0][0], GUILD, PAIRS[0][1])
    assert check_reword(row, "On what day did the Ostrava Guild of Lamp Makers begin?", GUILD) is None
    assert check_reword(row, "When did the Ostrava guild in Vienna begin?", GUILD) == "reword_unsupported"
    assert check_reword(row, "When did Marie Vell's company begin work?", GUILD) == "reword_off_fact"
    assert check_reword(row, "Was the Ostrava guild founded in 1899?", GUILD) == "reword_leaks_answer"
    # A question with no names is not held to sharing one.
    assert check_reword(Row("What did they make?", GUILD, "Lamps."), "What was it they made?", GUILD) is None


def test_missing_wordings_lists_each_fact_short_of_its_wordings() -> None:
    rows = [Row("q1", extra={"fact": "a"}), Row("q2", extra={"fact": "a"}), Row("q3", extra={"fact": "b"})]
    assert [(f, r.question, n) for f, r, n in missing_wordings(rows, 2)] == [("b", "q3", 1)]
    assert [(f, n) for f, _, n in missing_wordings(rows, 3)] == [("a", 1), ("b", 2)]


def test_a_fact_written_once_gets_a_checked_second_wording(tmp_path: Path) -> None:
    leaf = document_leaf(tmp_path, "guild", GUILD)
    settings = GenerationSettings(chunk_tokens=400, seed=3, qa_per_request=8, wordings_per_fact=2, mc_per_leaf=0,
                                  validation_per_leaf=0)
    with OpenAIServer(one_wording_teacher) as server:
        result: LeafResult = generate_with_server(server.base_url, leaf, settings, tmp_path, concurrency=4)
    st = result.stats
    assert st["reworded"] == 1 and st["facts_covered"] == 4 and st["facts_with_wordings"] == 1
    assert st["dropped"]["reword_leaks_answer"] == 1 and st["dropped"]["reword_unsupported"] == 1
    assert st["dropped"]["reword_unusable"] == 1
    assert st["stages"]["reword"]["requests"] == 4
    founded = [s for s in result.samples if s["metadata"]["answer"] == PAIRS[0][1]]
    assert [s["metadata"]["question"] for s in founded] == [
        PAIRS[0][0], "On what day did the Ostrava Guild of Lamp Makers come into being?"]
    assert [s["metadata"].get("reworded", False) for s in founded] == [False, True]
    assert len({s["metadata"]["fact"] for s in founded}) == 1
    # The mixer can now hold one wording of that fact out (and only of that one).
    held = choose_held_out(result.samples, leaf.path, 42)
    assert len(held) == 1 and result.samples[held[0]]["metadata"]["answer"] == PAIRS[0][1]
