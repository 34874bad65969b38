"""Lenient parsers for teacher output. Each returns None (or nothing) for output it cannot read, so a
garbage answer costs only its own row; the caller counts why."""

from __future__ import annotations

import re

_NUMBERED = re.compile(r"^\s*(?:\d{1,3}\s*[.):]|[-*•])\s+(.+?)\s*$")
_PREFIX = re.compile(r"^\s*(?:\*\*)?(?:question|q)\s*\d*\s*[:.)-]\s*(?:\*\*)?\s*", re.IGNORECASE)
_CONTEXT_PREFIX = re.compile(r"^\s*(?:\*\*)?context\s*:\s*(?:\*\*)?\s*", re.IGNORECASE)
_VERDICT = re.compile(r"verdict\s*[:=-]?\s*\**\s*(\w+)", re.IGNORECASE)
_SCORE = re.compile(r"score\s*[:=-]?\s*\**\s*([1-3])\b", re.IGNORECASE)
_PAIR = re.compile(
    r"(?:^|\n)\s*(?:\*\*)?(?:question|q)\s*\d*\s*[:.]\s*(?:\*\*)?\s*(?P<q>.+?)\s*\n\s*(?:\*\*)?(?:answer|a)\s*\d*"
    r"\s*[:.]\s*(?:\*\*)?\s*(?P<a>.+?)(?=\n\s*(?:\*\*)?(?:question|q)\s*\d*\s*[:.]|\Z)",
    re.IGNORECASE | re.DOTALL,
)
MIN_QUESTION_WORDS = 3


def _clean_question(text: str) -> str | None:
    text = _PREFIX.sub("", text).strip().strip('"').strip()
    if len(text.split()) < MIN_QUESTION_WORDS:
        return None
    return text


def parse_questions(text: str) -> list[str]:
    """A numbered or bulleted list; failing that, the lines that end with '?'."""
    lines = text.splitlines()
    items = [m.group(1) for m in (_NUMBERED.match(line) for line in lines) if m]
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


def parse_pairs(text: str) -> list[tuple[str, str]]:
    """'Question: …' / 'Answer: …' blocks, in order; incomplete blocks are skipped."""
    pairs = []
    for m in _PAIR.finditer(text.strip()):
        q = " ".join(m.group("q").split())
        a = m.group("a").strip()
        if len(q.split()) >= MIN_QUESTION_WORDS and a:
            pairs.append((q, a))
    return pairs
