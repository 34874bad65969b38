"""The knowledge pipeline's facts: the extractive check drops wrong pairs and multiple-choice items by
reason, a budget buys every fact before a second wording, and --dry-run says what it buys."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from lab_taxonomy import add_knowledge, run_cli
from openai_server import OpenAIServer, lab_responder
from sdgleaves import generate_with_server, knowledge_data, make_leaf

from labtax.data import GenerationStats, LeafEntry
from labtax.report.diff_generate import funnel_line
from labtax.sdg.generate import LeafOutcome, summary_line
from labtax.sdg.pipelines.runner import LeafResult
from labtax.sdg.settings import CPU_BUDGET_TOKENS, GenerationSettings, budget_policy

GUILD = ("The Ostrava Guild of Lamp Makers was founded on 2 March 1899 by Marie Vell in Brno. By 1910 it "
         "had 1,200 members.\n\nIts second workshop opened in Plzen in 1923 under Karel Dusek, with 45 "
         "apprentices.")


def _generate(server: OpenAIServer, root: Path, settings: GenerationSettings) -> LeafResult:
    leaf = make_leaf("knowledge/guild/qna.yaml", knowledge_data(".documents/guild", "", ["*.md"]))
    result: LeafResult = generate_with_server(server.base_url, leaf, settings, root)
    return result


def _write(root: Path) -> None:
    docs = root / ".documents" / "guild"
    docs.mkdir(parents=True)
    (docs / "guild.md").write_text(GUILD, encoding="utf-8")


def _document(text: str) -> str:
    return text.rsplit("Document:", 1)[-1]


def guild_teacher(kind: str, body: dict[str, Any]) -> Any:
    """Two facts per Q&A request, two wordings each: on the first chunk one wording of the founding
    says 1898 (wrong) and one of the members says 1,200 (right); multiple-choice items whose key is
    wrong, whose distractor the chunk states, whose open-book answer misses, and one good one."""
    system, user = body["messages"][0]["content"], body["messages"][-1]["content"]
    if "STAGE: knowledge_qa" in system:
        if "Marie Vell" in _document(user):
            return ("Fact: The guild was founded on 2 March 1899.\n"
                    "Question: When was the Ostrava Guild of Lamp Makers founded?\n"
                    "Answer: It was founded on 2 March 1899.\n"
                    "Question: On what date did Marie Vell found the lamp makers' guild?\n"
                    "Answer: Marie Vell founded it on 2 March 1898.\n\n"
                    "Fact: By 1910 the guild had 1,200 members.\n"
                    "Question: How many members did the guild have by 1910?\n"
                    "Answer: By 1910 it had 1200 members.\n"
                    "Question: What was the membership of the lamp makers' guild in 1910?\n"
                    "Answer: Its membership reached 1,200 in 1910.")
        return ("Fact: The second workshop opened in Plzen in 1923.\n"
                "Question: Where did the guild open its second workshop?\n"
                "Answer: The second workshop opened in Plzen in 1923.\n"
                "Question: In which town was the guild's second workshop opened in 1923?\n"
                "Answer: It opened in Plzen.")
    if "STAGE: knowledge_mc" in system:
        if "Marie Vell" not in _document(user):
            return "nothing"
        return ("Question: Who founded the lamp makers' guild in Brno?\nRight: Marie Vell\nWrong: Anna Novak\n"
                "Wrong: Petr Hora\nWrong: Jan Kral\n\n"
                "Question: In which year was the lamp makers' guild founded?\nRight: 1897\nWrong: 1901\n"
                "Wrong: 1905\nWrong: 1907\n\n"
                "Question: How many members did the lamp makers' guild have by 1910?\nRight: 1,200\n"
                "Wrong: 1,100\nWrong: 1899\nWrong: 1,300\n\n"
                "Question: In which city was the lamp makers' guild founded in 1899?\nRight: Brno\n"
                "Wrong: Prague\nWrong: Vienna\nWrong: Krakow\n")
    if "STAGE: mc_open_book" in system:
        options = dict(re.findall(r"^([A-D])\. (.+)$", user, re.MULTILINE))
        # Picks the founder right, and Vienna for the city (a miss).
        for letter, option in options.items():
            if option in ("Marie Vell", "Vienna"):
                return f"Answer: {letter}"
        return "Answer: A"
    return lab_responder()(kind, body)


def test_wrong_facts_and_unfair_items_are_dropped_and_counted(tmp_path: Path) -> None:
    _write(tmp_path)
    settings = GenerationSettings(chunk_tokens=40, seed=3, mc_per_request=4, mc_per_leaf=2, validation_per_leaf=0,
                                  qa_per_request=4, wordings_per_fact=2)
    with OpenAIServer(guild_teacher) as server:
        result = _generate(server, tmp_path, settings)
    st = result.stats
    assert st["chunks"] == 2 and st["chunks_covered"] == 2
    answers = [s["messages"][-1]["content"] for s in result.samples]
    assert "Marie Vell founded it on 2 March 1898." not in answers  # the wrong date
    assert "It was founded on 2 March 1899." in answers and "Its membership reached 1,200 in 1910." in answers
    assert st["dropped"]["facts_not_in_chunk"] == 1 and st["funnel"]["supported"] == st["funnel"]["deduplicated"] - 1
    # The wordings of one fact share its id; the founding fact kept one wording, the members fact two.
    # The wrong-date pair shares no number, date or name with its fact's other answer, so it was split
    # off as a fact of its own (#0/1) before the check dropped it.
    facts = {s["metadata"]["fact"] for s in result.samples}
    assert facts == {"guild.md#0/0", "guild.md#0/2", "guild.md#1/0"}
    assert st["facts_covered"] == 3 and st["facts_with_wordings"] == 2
    mc = st["mc"]
    assert mc["generated"] == 4 and mc["kept"] == 1
    assert mc["dropped"] == {"mc_key_not_in_chunk": 1, "mc_distractor_in_chunk": 1, "mc_open_book_missed": 1}
    item = next(r for r in result.held_out if r["metadata"].get("source") == "mc")
    assert item["choices"][item["answer_index"]] == "Marie Vell"
    # The run summary and the manifest's funnel line say chunks and facts covered, and each drop reason.
    line = summary_line(LeafOutcome(result.leaf, result))
    assert "supported" in line and "chunks covered 2/2; facts covered 3/10" in line and "facts_not_in_chunk 1" in line
    entry = LeafEntry(result.leaf, None, "knowledge", "generated", True, {}, 0, 0.0,
                      generation=GenerationStats.from_stats(st))
    funnel = funnel_line(entry) or ""
    assert "chunks covered 2/2; facts covered 3/10" in funnel and "facts_not_in_chunk 1" in funnel
    assert "multiple choice kept 1 of 4 (dropped mc_distractor_in_chunk 1, mc_key_not_in_chunk 1, " \
           "mc_open_book_missed 1)" in funnel
    assert entry.to_json()["generation"]["mc"]["dropped"]["mc_open_book_missed"] == 1


def test_a_budget_buys_every_fact_in_two_wordings_before_a_third(tmp_path: Path) -> None:
    _write(tmp_path)
    with OpenAIServer(lab_responder()) as server:
        full = _generate(server, tmp_path, GenerationSettings(chunk_tokens=40, qa_per_request=4, max_tokens=256,
                                                              wordings_per_fact=3))
        tight = _generate(server, tmp_path, GenerationSettings(chunk_tokens=40, qa_per_request=4, max_tokens=256,
                                                               wordings_per_fact=3, budget_tokens=256 * 6))
    assert full.stats["wordings"] == 3 and full.stats["facts_asked"] == full.stats["facts"] == 10
    assert full.stats["stages"]["knowledge_qa"]["requests"] == 10
    assert tight.stats["wordings"] == 2 and tight.stats["facts_asked"] == 10 and tight.stats["request_limit"] == 6
    assert tight.stats["stages"]["knowledge_qa"]["requests"] <= 6 and tight.stats["chunks_asked"] == 2


def test_the_budget_default_follows_the_teacher() -> None:
    assert budget_policy("embedded", None) == CPU_BUDGET_TOKENS
    assert budget_policy("openai", None) == 0
    assert budget_policy("embedded", 0) == 0


def test_dry_run_says_what_the_budget_buys(git_repo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    add_knowledge(git_repo, "knowledge/history/guild", doc=GUILD)
    git_repo.commit("a knowledge leaf")
    args = ["diff-generate", "--taxonomy", str(git_repo.root), "--base", "empty", "--output", str(tmp_path / "o"),
            "--dry-run", "--teacher", "openai", "--endpoint", "http://127.0.0.1:9/v1", "--model", "m",
            "--chunk-tokens", "40", "--qa-per-request", "2", "--max-tokens", "256"]
    code, text = run_cli([*args, "--budget-tokens", "1536"])
    assert code == 0, text
    # Two wordings at the least (one held out, one trained): 6 of the 10 facts, rather than 10 in one wording.
    assert "budget buys 6 Q&A requests (<= 1536 completion tokens): 6/10 facts asked, 2 wordings each, 2/2 chunks" \
        in text
    code, text = run_cli([*args, "--format", "json"])
    leaf = json.loads(text)["leaves"][0]
    assert leaf["knowledge"] == {"requests": 10, "completion_tokens": 2560, "facts": 10, "facts_asked": 10,
                                 "wordings": 2, "chunks": 2, "chunks_asked": 2}
