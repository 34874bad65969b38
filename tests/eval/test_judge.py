"""The judge path against the real OpenAI-protocol test server on 127.0.0.1."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from openai_server import Fault, OpenAIServer

from labtax.cli import cli
from labtax.eval.gate import Thresholds
from labtax.eval.judge import JUDGE_TAG, parse_rating
from labtax.eval.run import EvalOptions, JudgeOptions, run_eval
from labtax.teachers.openai import OpenAITeacher


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The answer is right.\nRating: [[7]]", 7.0),
        ("[[3]] at first, but on reflection [[8.5]]", 8.5),
        ("Rating: 4", 4.0),
        ("**Rating:** 9", 9.0),  # a markdown-bolded label still reads
        ("Rating: [[11]]", None),
        ("Rating: [[0]]", None),
        ("I cannot rate this.", None),
        ("", None),
    ],
)
def test_parse_rating(text: str, expected: float | None) -> None:
    assert parse_rating(text) == expected


def _user_text(body: dict[str, Any]) -> str:
    return "\n".join(str(m.get("content", "")) for m in body.get("messages", []) if m.get("role") == "user")


def _bucket(body: dict[str, Any]) -> int:
    """A stable pseudo-random bucket per request, so the test knows which replies it scripted."""
    return int(hashlib.sha256(_user_text(body).encode()).hexdigest()[:8], 16) % 4


def scripted(kind: str, body: dict[str, Any]) -> Any:
    bucket = _bucket(body)
    if bucket == 0:
        return "The assistant's answer is off topic; I will not give a number."  # malformed
    if bucket == 1:
        return "Rating: [[12]]"  # out of range: malformed
    return f"Compared with the reference the answer is weak.\nRating: [[{bucket + 3}]]"


def _options(trained: dict[str, Path], server: OpenAIServer) -> EvalOptions:
    return EvalOptions(
        base=str(trained["base"]), candidate=str(trained["candidate"]), data_dir=trained["data"],
        judge=JudgeOptions(endpoints=(server.base_url,), model="judge-model", max_new_tokens=8),
    )


def test_judge_scores_and_malformed_replies_are_counted(trained: dict[str, Path],
                                                        openai_server: OpenAIServer) -> None:
    openai_server.responder = scripted
    report = run_eval(_options(trained, openai_server))
    bodies = [r.body for r in openai_server.requests if r.kind == "chat"]
    assert len(bodies) == 2 * 8  # every held-out example, answered by base and by candidate
    assert all(b["model"] == "judge-model" and b["temperature"] == 0.0 for b in bodies)
    assert all("[The Start of Reference Answer]" in _user_text(b) for b in bodies)
    malformed = sum(1 for b in bodies if _bucket(b) in (0, 1))
    assert report["judge"]["requests"] == 16
    assert report["judge"]["malformed"] == malformed and report["judge"]["failed"] == 0
    rated = [r["judge"] for r in report["leaves"]]
    assert sum(j["base_rated"] + j["candidate_rated"] for j in rated) == 16 - malformed
    for j in rated:
        for side in ("base", "candidate"):
            assert j[side] is None or 5.0 <= j[side] <= 6.0  # only [[5]] and [[6]] are readable
    # The judge informs; the log-likelihood gate decides.
    assert report["verdict"] == "pass" and report["exit_code"] == 0
    assert JUDGE_TAG == "eval_judge"


def test_failed_judge_requests_are_counted_not_fatal(trained: dict[str, Path]) -> None:
    def flaky(kind: str, body: dict[str, Any]) -> Any:
        return Fault(500) if _bucket(body) == 0 else "Rating: [[6]]"

    with OpenAIServer(flaky) as server:
        # The candidate against itself: scored and answered once, judged twice (cheaper, same counts).
        # min_improvement -1 %: "no change" passes, so the exit code shows the failures are not fatal.
        options = replace(_options(trained, server), base=str(trained["candidate"]),
                          thresholds=Thresholds(min_improvement_pct=-1.0))
        report = run_eval(options, make_teacher=lambda: OpenAITeacher(
            [server.base_url], model="judge-model", max_retries=1, backoff_base=0.01))
        attempts = [r.body for r in server.requests]
    # Each scripted failure is tried twice (max_retries=1), then given up on.
    failed = sum(1 for b in attempts if _bucket(b) == 0) // 2
    assert failed > 0 and len(attempts) == 16 + failed
    assert report["judge"]["failed"] == failed and report["judge"]["malformed"] == 0
    assert report["exit_code"] == 0


def test_cli_judge_columns(trained: dict[str, Path], openai_server: OpenAIServer) -> None:
    openai_server.responder = lambda kind, body: "Fine.\nRating: [[7]]"
    result = CliRunner().invoke(cli, [
        "eval", "--base", str(trained["candidate"]), "--candidate", str(trained["candidate"]),
        "--data", str(trained["data"]), "--judge-endpoint", openai_server.base_url, "--max-new-tokens", "4",
        "--min-improvement", "-1",  # the same model twice: let "no change" pass
        "--format", "markdown",
    ])
    assert result.exit_code == 0, result.output
    assert "| Judge base | Judge candidate |" in result.stdout
    assert "| 7.00 | 7.00 |" in result.stdout
    assert "0 malformed and 0 failed replies of 16" in result.stdout
    assert openai_server.count("chat") == 16
