"""More wordings of a fact's question, when the teacher wrote fewer than asked.

The mixer holds one wording of each fact out as its closed-book test question and trains the others
(mix/held_out.py), so a fact kept in one wording is trained but never tested. Asked for two wordings
of each fact, a 1.5B teacher wrote one: it put a different fact under each question, or repeated the
first question word for word (bench/heldout, session 5: 8 facts kept, none in two wordings, no
closed-book item). A request per missing wording, short and with one thing to do, gets it from any
teacher: "this question, in other words".

A reworded question keeps the pair's answer (already checked against its chunk and judged) and is
kept only when a check that needs no teacher passes it:
  - it reads as a question (a "Question:" line or a line ending in "?", three words or more);
  - it is new: not a near-duplicate of any pair or seed seen so far (`reword_duplicate`);
  - its numbers, dates and names are in the document (`reword_unsupported`);
  - it is about the same thing: it shares a word of the original question's names, numbers or dates
    when the original has any (`reword_off_fact`);
  - it does not give the answer away: no name, number or date of the answer that the original
    question did not already say (`reword_leaks_answer`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from labtax.data.facts import key_facts, unsupported_facts
from labtax.sdg.dedup import Deduper
from labtax.sdg.pipelines.filters import Row
from labtax.sdg.pipelines.runner import Runner

STAGE = "reword"
MIN_QUESTION_WORDS = 3
_LABEL = re.compile(r"^\W*(?:new\s+|reworded\s+)?question\s*\d*\s*[:.)-]\s*\**\s*(.+)$", re.IGNORECASE)


def parse_reword(text: str) -> str | None:
    """The reworded question of a reply: its first "Question: ..." line, else its first line ending
    in "?"; None when neither reads as a question of MIN_QUESTION_WORDS words or more."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    found = next((m.group(1) for m in map(_LABEL.match, lines) if m), None)
    if found is None:
        found = next((line for line in lines if line.endswith("?")), None)
    if found is None:
        return None
    question = found.strip().strip('"*').strip()
    return question if question.endswith("?") and len(question.split()) >= MIN_QUESTION_WORDS else None


def _words(facts: tuple[str, ...]) -> set[str]:
    return {w for f in facts for w in f.split()}


def _with_years(facts: tuple[str, ...]) -> set[str]:
    """The facts and the year of each date among them ("1899-03-02" also says "1899")."""
    return set(facts) | {f[:4] for f in facts if re.match(r"\d{4}-", f)}


def check_reword(original: Row, question: str, document: str) -> str | None:
    """The drop reason of a reworded question (None: keep it); see the module docstring."""
    if unsupported_facts(question, document):
        return "reword_unsupported"
    before, after = key_facts(original.question), key_facts(question)
    if before and not _words(before) & _words(after):
        return "reword_off_fact"
    if (_with_years(after) & _with_years(key_facts(original.answer or ""))) - _with_years(before):
        return "reword_leaks_answer"
    return None


def _by_fact(rows: list[Row]) -> dict[str, list[Row]]:
    """The rows of each fact, the facts in the order they first appear."""
    by_fact: dict[str, list[Row]] = {}
    for row in rows:
        by_fact.setdefault(str(row.extra["fact"]), []).append(row)
    return by_fact


def missing_wordings(rows: list[Row], wordings: int) -> list[tuple[str, Row, int]]:
    """(fact, the row to reword, how many wordings it lacks) for each fact with fewer than `wordings`
    rows, in the order the facts first appear."""
    return [(fact, members[0], wordings - len(members)) for fact, members in _by_fact(rows).items()
            if len(members) < wordings]


async def reword_facts(runner: Runner, rows: list[Row], dedup: Deduper, documents: Mapping[str, str]) -> list[Row]:
    """`rows` with new wordings of each fact that has fewer than settings.wordings_per_fact, grouped
    by fact in the order the facts first appear (a fact's new wordings after its own, in request
    order whatever order the replies came in); the stage's requests, drops and the `reworded` count
    are recorded on the runner."""
    wanted = runner.settings.wordings_per_fact
    missing = missing_wordings(rows, wanted) if wanted >= 2 else []
    new: dict[str, dict[int, Row]] = {}

    async def reword(index: int, fact: str, row: Row) -> None:
        request = runner.request(STAGE, index, question=row.question, answer=row.answer or "")
        resp = await runner.ask(STAGE, request, readable=lambda t: parse_reword(t) is not None)
        question = parse_reword(resp.text) if resp.ok else None
        runner.generated += 1
        if question is None:
            runner.unusable(STAGE)
            runner.drop("reword_unusable")
            return
        document = documents.get(str(row.extra.get("document")), row.context or "")
        why = check_reword(row, question, document) or (
            "reword_duplicate" if dedup.check(f"{question}\n{row.answer}") else None)
        if why:
            runner.drop(why)
            return
        new.setdefault(fact, {})[index] = Row(question, row.context, row.answer, scores=dict(row.scores),
                                              extra={**row.extra, "reworded": True}, verdicts=dict(row.verdicts))

    for k, (fact, row, lacking) in enumerate(missing):
        for j in range(lacking):
            runner.spawn(reword(k * wanted + j, fact, row))
    await runner.settle()
    runner.extra["reworded"] = sum(len(v) for v in new.values())
    return [row for fact, members in _by_fact(rows).items()
            for row in members + [r for _, r in sorted(new.get(fact, {}).items())]]
