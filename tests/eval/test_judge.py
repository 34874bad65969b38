"""The pairwise judge against the real OpenAI-protocol test server on 127.0.0.1: both orders, win rate,
malformed and failed verdicts counted."""

from __future__ import annotations

import hashlib
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from eval_fixtures import LEAF_A, LEAF_B
from openai_server import Fault, OpenAIServer

from labtax.cli import cli
from labtax.eval.data import select_leaves
from labtax.eval.gate import Thresholds
from labtax.eval.judge import JUDGE_TAG, generate_answers, parse_verdict
from labtax.eval.run import EvalOptions, JudgeOptions, judged_leaves, load_for_eval, run_eval
from labtax.models import load_tokenizer
from labtax.teachers.openai import OpenAITeacher

MAX_NEW = 8


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("A is closer to the reference. [[A]]", "A"),
        ("At first [[A]], but on reflection [[B]]", "B"),
        ("Both are equally good: [[C]]", "C"),
        ("[[ B ]]", "B"),
        ("Verdict: A", None),
        ("[[D]]", None),
        ("", None),
    ],
)
def test_parse_verdict(text: str, expected: str | None) -> None:
    assert parse_verdict(text) == expected


def _user(body: dict[str, Any]) -> str:
    return "\n".join(str(m.get("content", "")) for m in body.get("messages", []) if m.get("role") == "user")


def _answers(body: dict[str, Any]) -> tuple[str, str]:
    text = _user(body)
    a = re.search(r"Answer of assistant A:\n(.*?)\n\nAnswer of assistant B:\n(.*)\Z", text, re.DOTALL)
    assert a is not None, text
    return a.group(1).strip(), a.group(2).strip()


def _question(body: dict[str, Any]) -> str:
    return _user(body).split("Question:\n", 1)[1].split("\n\nReference answer:", 1)[0]


def _options(trained: dict[str, Path], server: OpenAIServer) -> EvalOptions:
    return EvalOptions(
        base=str(trained["base"]), candidate=str(trained["candidate"]), data_dir=trained["data"],
        judge=JudgeOptions(endpoints=(server.base_url,), model="judge-model", max_new_tokens=MAX_NEW),
    )


def _candidate_answers(trained: dict[str, Path]) -> set[str]:
    """The candidate's own greedy answers, computed independently of run_eval."""
    options = EvalOptions(base="tiny", candidate=str(trained["candidate"]), data_dir=trained["data"])
    questions = [ex for exs in judged_leaves(select_leaves(trained["data"])).values() for ex in exs]
    model = load_for_eval(options.candidate, options)
    return set(generate_answers(model, load_tokenizer(options.candidate), questions, max_new_tokens=MAX_NEW))


def test_both_orders_are_asked_and_a_position_bias_cancels(trained: dict[str, Path],
                                                            openai_server: OpenAIServer) -> None:
    openai_server.responder = lambda kind, body: "The first answer reads better. [[A]]"
    report = run_eval(_options(trained, openai_server))
    bodies = [r.body for r in openai_server.requests if r.kind == "chat"]
    assert len(bodies) == 2 * 4  # leaf A's four questions (the changed skill leaf), two orders each
    assert all(b["model"] == "judge-model" and b["temperature"] == 0.0 for b in bodies)
    by_question: dict[str, list[tuple[str, str]]] = {}
    for b in bodies:
        by_question.setdefault(_question(b), []).append(_answers(b))
    for (a1, b1), (a2, b2) in by_question.values():
        assert (a1, b1) == (b2, a2)  # the same two answers, swapped
    rows = {r.leaf: r for r in report.leaves}
    j = rows[LEAF_A].judge
    # Always "the first": the candidate wins one order and loses the other of every question.
    assert j.win_rate == 0.5 and j.wins == 4 and j.losses == 4 and j.malformed == 0
    assert rows[LEAF_A].evidence == "judge" and rows[LEAF_A].verdict == "no-change"
    assert rows[LEAF_B].judge is None  # unchanged leaves are not judged
    assert report.verdict == "fail" and report.exit_code == 1
    assert JUDGE_TAG == "eval_pairwise"


def test_a_judge_preferring_the_candidate_gates_a_pass(trained: dict[str, Path],
                                                        openai_server: OpenAIServer) -> None:
    theirs = _candidate_answers(trained)

    def prefers_candidate(kind: str, body: dict[str, Any]) -> str:
        a, b = _answers(body)
        if a == b:
            return "Identical. [[C]]"
        return "[[A]]" if a in theirs else "[[B]]"

    openai_server.responder = prefers_candidate
    report = run_eval(_options(trained, openai_server))
    row = {r.leaf: r for r in report.leaves}[LEAF_A]
    assert row.judge.losses == 0 and row.judge.win_rate > 0.5
    assert row.verdict == "improved" and row.judge.interval.low > 0.5
    assert report.exit_code == 0


def _bucket(body: dict[str, Any]) -> int:
    return int(hashlib.sha256(_user(body).encode()).hexdigest()[:8], 16) % 4


def test_malformed_and_failed_verdicts_are_counted(trained: dict[str, Path]) -> None:
    def flaky(kind: str, body: dict[str, Any]) -> Any:
        bucket = _bucket(body)
        if bucket == 0:
            return Fault(500)
        if bucket == 1:
            return "Both answers are fine, I will not choose."  # malformed: no verdict mark
        return "A tie. [[C]]"

    with OpenAIServer(flaky) as server:
        options = replace(_options(trained, server), thresholds=Thresholds())
        report = run_eval(options, make_teacher=lambda: OpenAITeacher(
            [server.base_url], model="judge-model", max_retries=1, backoff_base=0.01))
        attempts = [r.body for r in server.requests]
    distinct = {_user(b): b for b in attempts}.values()
    failed = sum(1 for b in distinct if _bucket(b) == 0)
    malformed = sum(1 for b in distinct if _bucket(b) == 1)
    assert len(distinct) == 8 and len(attempts) == 8 + failed  # each failure retried once
    assert report.judge.failed == failed and report.judge.malformed == malformed
    j = {r.leaf: r for r in report.leaves}[LEAF_A].judge
    assert j.ties == 8 - failed - malformed and j.wins == j.losses == 0
    assert report.judge.requests == 8


def test_cli_judge_rows(trained: dict[str, Path], openai_server: OpenAIServer) -> None:
    result = CliRunner().invoke(cli, [  # the lab responder judges by overlap with the reference
        "eval", "--base", str(trained["base"]), "--candidate", str(trained["candidate"]),
        "--data", str(trained["data"]), "--judge-endpoint", openai_server.base_url,
        "--max-new-tokens", str(MAX_NEW), "--format", "markdown",
    ])
    assert result.exit_code in (0, 1), result.output
    assert f"| **`{LEAF_A}`** (changed) | judge (4) |" in result.stdout
    assert "malformed and 0 failed replies of 8" in result.stdout
    assert openai_server.count("chat") == 8


def test_cli_judge_option_errors(trained: dict[str, Path]) -> None:
    base = ["eval", "--base", "tiny", "--candidate", "tiny", "--data", str(trained["data"])]
    assert CliRunner().invoke(cli, [*base, "--judge", "openai"]).exit_code == 2
    assert CliRunner().invoke(cli, [*base, "--judge", "embedded", "--judge-endpoint", "http://x/v1"]).exit_code == 2


def test_the_embedded_teacher_can_judge(trained: dict[str, Path]) -> None:
    # The in-process judge path, with the tiny model as the judge: it writes no verdict mark, so every
    # reply is counted malformed, and the leaf falls back to no judged evidence.
    options = EvalOptions(base=str(trained["base"]), candidate=str(trained["candidate"]), data_dir=trained["data"],
                          judge=JudgeOptions(teacher="embedded", model="tiny", max_new_tokens=4, max_tokens=8))
    report = run_eval(options)
    assert report.judge.teacher == "embedded" and report.judge.requests == 8
    assert report.judge.malformed + report.judge.failed == 8
    row = {r.leaf: r for r in report.leaves}[LEAF_A]
    assert row.judge.rated == 0 and row.evidence == "likelihood"
