"""Two ways a 1.5B teacher's Q&A went wrong on bench/heldout2 (session 7), each caught without a
teacher: a pair whose question already states its answer's key facts ("When did the winter flood of
1962 fill the lower rooms? In 1962.") is dropped as `answer_in_question`, and lines the teacher wrapped
in Markdown bold ("**Question: ...?**") are read without the stray markers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from openai_server import OpenAIServer, lab_responder
from sdgleaves import document_leaf, generate_with_server

from labtax.data.facts import given_away
from labtax.sdg.pipelines.parse import parse_fact_pairs, parse_pairs, unwrap
from labtax.sdg.settings import GenerationSettings

FLOOD = ("In 1962 a winter flood filled the lower rooms of the Tessaly observatory with water up to a depth "
         "of 1.2 metres, and many of the oldest plates were lost.")


def test_a_question_that_states_every_key_fact_of_its_answer_gives_it_away() -> None:
    assert given_away("When did the winter flood of 1962 fill the lower rooms? ", "In 1962.")
    assert given_away("Was the Tessaly observatory flooded in 1962?", "Yes, the Tessaly observatory was, in 1962.")
    assert not given_away("When did the winter flood fill the lower rooms?", "In 1962.")
    assert not given_away("How deep was the water in the flood of 1962?", "It was 1.2 metres deep in 1962.")
    assert not given_away("What was lost in the flood of 1962?", "Many of the oldest plates.")  # no key fact


def test_bold_wrapped_lines_are_read_without_their_markers() -> None:
    reply = ("**Fact: The observatory was built on Vellin Island.**\n"
             "**Question: Where was the Tessaly Marsh Observatory built?**\n"
             "**Answer: On Vellin Island.**\n"
             "Question: Which island holds the Tessaly Marsh Observatory?\n"
             "Answer: The observatory stands on **Vellin Island**.")
    assert parse_fact_pairs(reply, 2) == [
        (0, "Where was the Tessaly Marsh Observatory built?", "On Vellin Island."),
        (0, "Which island holds the Tessaly Marsh Observatory?", "The observatory stands on **Vellin Island**.")]
    assert parse_pairs("Question: **When did the flood come?**\nAnswer: __In 1962.__") == [
        ("When did the flood come?", "In 1962.")]
    assert unwrap("**bold** in the middle") == "**bold** in the middle"


def flood_teacher(kind: str, body: dict[str, Any]) -> Any:
    system = body["messages"][0]["content"]
    if "STAGE: knowledge_qa" in system:
        return ("Fact: The flood reached a depth of 1.2 metres.\n"
                "**Question: How deep was the water of the winter flood in the Tessaly observatory?**\n"
                "**Answer: Up to 1.2 metres.**\n"
                "Question: When did the winter flood fill the lower rooms of the Tessaly observatory in 1962?\n"
                "Answer: In 1962.\n")
    return lab_responder()(kind, body)


def test_the_pipeline_drops_a_given_away_pair_and_counts_it(tmp_path: Path) -> None:
    leaf = document_leaf(tmp_path, "flood", FLOOD)
    settings = GenerationSettings(chunk_tokens=60, seed=3, mc_per_leaf=0, validation_per_leaf=0, qa_per_request=2,
                                  wordings_per_fact=2, max_requests_per_leaf=1)
    with OpenAIServer(flood_teacher) as server:
        result = generate_with_server(server.base_url, leaf, settings, tmp_path)
    assert result.stats["dropped"]["answer_in_question"] == 1
    questions = [s["messages"][-2]["content"] for s in result.samples]
    assert any(q.endswith("How deep was the water of the winter flood in the Tessaly observatory?") for q in questions)
    assert not any("**" in s["messages"][-1]["content"] for s in result.samples)
    assert not any(q.endswith("in 1962?") for q in questions)
