"""Lenient parsers for teacher output. Each returns None (or nothing) for output it cannot read, so a
garbage answer costs only its own row; the caller counts why.

Every parser is linear in the length of the reply: patterns are applied to one line at a time, are
anchored, and have no nested or lazy quantifier followed by an unbounded scan (a reply of 2,000
"Question:" lines with no "Answer:" once took 25 s through one DOTALL regex with a look-ahead)."""

from __future__ import annotations

import re

_NUMBERED = re.compile(r"\s*(?:\d{1,3}\s*[.):]|[-*•])\s+(\S.*)")
_PREFIX = re.compile(r"^\s*(?:\*\*)?(?:question|q)\s*\d*\s*[:.)-]\s*(?:\*\*)?\s*", re.IGNORECASE)
_CONTEXT_PREFIX = re.compile(r"^\s*(?:\*\*)?context\s*:\s*(?:\*\*)?\s*", re.IGNORECASE)
_VERDICT = re.compile(r"verdict\s*[:=-]?\s*\**\s*(\w+)", re.IGNORECASE)
_SCORE = re.compile(r"score\s*[:=-]?\s*\**\s*([1-3])\b", re.IGNORECASE)
_Q_LINE = re.compile(r"[ \t]*(?:\*\*)?(?:question|q)[ \t]*\d*[ \t]*[:.][ \t]*(?:\*\*)?[ \t]*", re.IGNORECASE)
_A_LINE = re.compile(r"[ \t]*(?:\*\*)?(?:answer|a)[ \t]*\d*[ \t]*[:.][ \t]*(?:\*\*)?[ \t]*", re.IGNORECASE)
MIN_QUESTION_WORDS = 3


def _clean_question(text: str) -> str | None:
    text = _PREFIX.sub("", text).strip().strip('"').strip()
    if len(text.split()) < MIN_QUESTION_WORDS:
        return None
    return text


def parse_questions(text: str) -> list[str]:
    """A numbered or bulleted list; failing that, the lines that end with '?'."""
    lines = text.splitlines()
    items = [m.group(1).rstrip() for m in (_NUMBERED.match(line) for line in lines) if m]
    if not items:
        items = [line for line in lines if line.strip().endswith("?")]
    out = []
    for item in items:
        q = _clean_question(item)
        if q is not None:
            out.append(q)
    return out


def parse_context(text: str) -> str | None:
    text = _CONTEXT_PREFIX.sub("", text.strip()).strip()
    return text if len(text.split()) >= 5 else None


def parse_verdict(text: str, yes: tuple[str, ...], no: tuple[str, ...]) -> bool | None:
    """The last 'Verdict: X' if present, else the last yes/no-like word; None when neither."""
    matches = [m.group(1).lower() for m in _VERDICT.finditer(text)]
    for word in reversed(matches):
        if word in yes:
            return True
        if word in no:
            return False
    words = re.findall(r"[a-z]+", text.lower())
    for word in reversed(words):
        if word in yes:
            return True
        if word in no:
            return False
    return None


def parse_keep(text: str) -> bool | None:
    return parse_verdict(text, ("keep", "yes", "accept"), ("drop", "no", "reject"))


def parse_yes(text: str) -> bool | None:
    return parse_verdict(text, ("yes", "true", "pass"), ("no", "false", "fail"))


def parse_score(text: str) -> int | None:
    """The last 'Score: N' (N in 1..3); else a lone digit 1-3 if the whole reply is that short."""
    matches = _SCORE.findall(text)
    if matches:
        return int(matches[-1])
    stripped = text.strip().rstrip(".")
    if stripped in ("1", "2", "3"):
        return int(stripped)
    return None


def parse_answer(text: str) -> str | None:
    text = text.strip()
    return text or None


def unwrap(text: str) -> str:
    """`text` without the Markdown emphasis a teacher wrapped a labelled line in: "**Question: When was
    it built?**" leaves "When was it built?**" once the label is read, and the 1.5B teacher wrote such
    lines; a marker is taken off an end when the text is wrapped in one pair of it or holds it an odd
    number of times (emphasis inside the text, "the **Lantern** ferry", stays)."""
    text = text.strip()
    for mark in ("**", "__"):
        wrapped = text.startswith(mark) and text.endswith(mark) and text.count(mark) == 2 and len(text) > 4
        if wrapped:
            text = text[2:-2].strip()
        elif text.count(mark) % 2 and text.endswith(mark):
            text = text[:-2].rstrip()
        elif text.count(mark) % 2 and text.startswith(mark):
            text = text[2:].lstrip()
    return text


def parse_pairs(text: str) -> list[tuple[str, str]]:
    """'Question: …' / 'Answer: …' blocks, in order; incomplete blocks are skipped.

    One pass over the lines: a question line opens a block (the question may run over several
    lines), an answer line closes the question, and the answer runs to the next question line."""
    pairs: list[tuple[str, str]] = []
    question: list[str] | None = None  # the question being read, before its answer label
    answer: list[str] | None = None  # the answer being read
    current = ""

    def close() -> None:
        if answer is not None:
            q, a = unwrap(current), unwrap("\n".join(answer))
            if len(q.split()) >= MIN_QUESTION_WORDS and a:
                pairs.append((q, a))

    for line in text.strip().split("\n"):
        q = _Q_LINE.match(line)
        if q is not None and line[q.end():].strip():
            close()
            question, answer = [line[q.end():]], None
            continue
        if question is not None:
            a = _A_LINE.match(line)
            if a is not None:
                current, answer, question = " ".join(" ".join(question).split()), [line[a.end():]], None
            else:
                question.append(line)
            continue
        if answer is not None:
            answer.append(line)
    close()
    return pairs


_FACT_LINE = re.compile(r"[ \t]*(?:\*\*)?(?:key[ \t]+)?fact[ \t]*\d*[ \t]*[:.)-][ \t]*(?:\*\*)?[ \t]*", re.IGNORECASE)


def parse_fact_pairs(text: str, wordings: int) -> list[tuple[int, str, str]]:
    """(group, question, answer) for each 'Question:'/'Answer:' pair, grouped by fact: a 'Fact: ...'
    line opens a group; a reply without such lines is read as the prompt asked, `wordings` pairs of
    one fact after another. Groups are numbered 0, 1, ... in order; a group without pairs is skipped."""
    blocks: list[list[str]] = [[]]
    labelled = False
    for line in text.strip().split("\n"):
        m = _FACT_LINE.match(line)
        if m is not None and not _Q_LINE.match(line) and line[m.end():].strip():
            labelled = True
            blocks.append([])
            continue
        blocks[-1].append(line)
    if not labelled:
        return [(k // max(1, wordings), q, a) for k, (q, a) in enumerate(parse_pairs(text))]
    out: list[tuple[int, str, str]] = []
    group = 0
    for block in blocks:
        pairs = parse_pairs("\n".join(block))
        if pairs:
            out += [(group, q, a) for q, a in pairs]
            group += 1
    return out


def parse_choice(text: str, options: int) -> int | None:
    """The option picked by a reply: 'Answer: B', '(B)', 'B.' or a lone letter; None when none reads."""
    letters = "ABCDEFGH"[:options]
    m = re.search(rf"(?i:answer|option|choice)\s*(?i:is)?\s*[:=-]?\s*\(?\**([{letters}])\b", text)
    if m is None:
        m = re.match(rf"\s*\(?\**([{letters}])\b", text)
    return None if m is None else letters.index(m.group(1).upper())


_MC_LABEL = re.compile(r"^\s*(?:\*\*)?(question|right|correct|wrong|incorrect)(?:\s+answer)?\s*\d*\s*[:.)-]\s*(?:\*\*)?\s*(.*)$",
                       re.IGNORECASE)


def parse_mc(text: str, wrong: int = 3) -> list[tuple[str, str, list[str]]]:
    """'Question:' / 'Right:' / 'Wrong:' blocks as (question, right answer, wrong answers), in order.
    One pass over the lines. A block is kept only with a question of MIN_QUESTION_WORDS words or more,
    one right answer and exactly `wrong` distinct wrong ones that all differ from the right one."""
    items: list[tuple[str, str, list[str]]] = []
    question: str | None = None
    right: str | None = None
    wrongs: list[str] = []

    def close() -> None:
        if question is None or right is None or len(question.split()) < MIN_QUESTION_WORDS:
            return
        keys = {right.casefold(), *(w.casefold() for w in wrongs)}
        if len(wrongs) == wrong and len(keys) == wrong + 1:
            items.append((question, right, list(wrongs)))

    for line in text.splitlines():
        m = _MC_LABEL.match(line)
        if m is None:
            continue
        label, value = m.group(1).lower(), " ".join(m.group(2).split()).strip("*").strip()
        if label == "question":
            close()
            question, right, wrongs = value, None, []
        elif not value or question is None:
            continue
        elif label in ("right", "correct") and right is None:
            right = value
        elif label in ("wrong", "incorrect"):
            wrongs.append(value)
    close()
    return items
