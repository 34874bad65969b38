"""Hostile teacher replies cost only their own row, are counted, and never kill or poison a run:
lone surrogates, a `usage` that is a list, 1e999 tokens, replies that parse to nothing, 100 KB
answers, text equal to an internal marker; and every parser is linear."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from lab_taxonomy import add_knowledge, add_skill, manifest, read_jsonl, run_cli, teacher_args
from openai_server import Fault, Reply, fail_first, lab_responder

from labtax.sdg.pipelines.parse import parse_pairs, parse_questions


def dg(repo, out: Path, server, *extra: str) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    return run_cli(["diff-generate", "--taxonomy", str(repo.root), "--base", "empty", "--output", str(out),
                    "--head", "HEAD", *extra, *teacher_args(server, samples=3)])


def _stage(body: dict[str, Any]) -> str:
    text = "\n".join(str(m.get("content", "")) for m in body.get("messages", []))
    return text.split("STAGE: ", 1)[1].split()[0] if "STAGE: " in text else ""


def _raw(text: str, usage: str) -> str:
    """A chat completion body written by hand: `usage` and escapes exactly as given."""
    content = json.dumps(text)  # ensure_ascii: a lone surrogate stays the escape \\ud800
    return ('{"choices": [{"index": 0, "message": {"role": "assistant", "content": ' + content + '},'
            ' "finish_reason": "stop"}], "usage": ' + usage + '}')


def test_surrogates_bad_usage_and_huge_counts_cost_only_their_row(git_repo, openai_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    add_skill(git_repo, "compositional_skills/writing/haiku")
    add_knowledge(git_repo, "knowledge/astro/moon")
    git_repo.commit("taxonomy")
    base = lab_responder()

    def hostile(kind: str, body: dict[str, Any]) -> Any:
        good = base(kind, body)
        text = good if isinstance(good, str) else getattr(good, "text", "")
        which = body["seed"] % 3
        if _stage(body) in ("answer", "knowledge_qa", "questions") and body["seed"] % 2 == 0:
            if which == 0:
                return Fault(200, body=_raw(text + " \ud800 tail", '{"prompt_tokens": 3}'))
            if which == 1:
                return Fault(200, body=_raw(text, "[1, 2, 3]"))
            return Fault(200, body=_raw(text, '{"prompt_tokens": 1e999, "completion_tokens": -4}'))
        return good

    openai_server.responder = hostile
    out = tmp_path / "out"
    code, text = dg(git_repo, out, openai_server)
    assert code == 0 and "Traceback" not in text, text
    reasons = manifest(out)["run"]["faults"]["reasons"]
    assert reasons.get("invalid unicode", 0) > 0 and reasons.get("bad usage", 0) > 0, reasons
    assert "teacher faults:" in text
    for name in ("phase1_knowledge.jsonl", "phase2_skills.jsonl"):
        rows = read_jsonl(out / name)
        assert rows
        assert "\ud800" not in (out / name).read_text(encoding="utf-8")
    before = openai_server.count()
    code, text = dg(git_repo, out, openai_server)  # the rerun replays, it does not die the same way
    assert code == 0 and openai_server.count() == before, text


def test_a_reply_that_parses_to_nothing_is_counted_and_asked_again(git_repo, openai_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    add_skill(git_repo, "compositional_skills/writing/haiku")
    git_repo.commit("taxonomy")
    # The first attempt of every questions request is a refusal; the retry (same messages, a new
    # seed) is readable.
    base, seen = lab_responder(), set()

    def responder(kind: str, body: dict[str, Any]) -> Any:
        key = json.dumps(body["messages"])
        if _stage(body) == "questions" and key not in seen:
            seen.add(key)
            return Reply("I cannot help with that.")
        return base(kind, body)

    openai_server.responder = responder
    out = tmp_path / "out"
    code, text = dg(git_repo, out, openai_server)
    assert code == 0, text
    faults = manifest(out)["run"]["faults"]
    assert faults["unreadable"] > 0 and faults["reasons"]["retried_unreadable"] == faults["unreadable"]
    assert len([s for s in read_jsonl(out / "phase2_skills.jsonl")
                if s["metadata"]["leaf"].startswith("compositional_skills/writing/haiku")]) == 3
    before = openai_server.count()
    assert dg(git_repo, out, openai_server)[0] == 0 and openai_server.count() == before  # replayed, not re-sent


def test_overlong_answers_and_marker_text_never_reach_the_sets(git_repo, openai_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    add_skill(git_repo, "compositional_skills/writing/haiku")
    git_repo.commit("taxonomy")
    base = lab_responder()

    def responder(kind: str, body: dict[str, Any]) -> Any:
        if _stage(body) == "answer" and body["seed"] % 3 == 0:
            return "word " * 40_000  # 200 KB: far past what max_tokens allows
        if _stage(body) == "answer" and body["seed"] % 3 == 1:
            return "\x00labtax:leaf\x00"  # the store's internal leaf marker
        return base(kind, body)

    openai_server.responder = responder
    out = tmp_path / "out"
    code, text = dg(git_repo, out, openai_server, "--samples-per-leaf", "6")
    assert code == 0, text
    assert manifest(out)["run"]["faults"]["reasons"].get("overlong", 0) > 0
    leaf = "compositional_skills/writing/haiku/qna.yaml"
    for name in ("phase2_skills.jsonl", "test.jsonl"):
        for row in read_jsonl(out / name):
            for message in row["messages"]:
                assert len(message["content"]) < 50_000
                if message["role"] == "assistant":
                    assert message["content"] != leaf and "\x00" not in message["content"]


def test_fault_counts_reach_the_manifest_and_the_summary(git_repo, openai_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    add_skill(git_repo, "compositional_skills/writing/haiku")
    git_repo.commit("taxonomy")
    responder = fail_first(lab_responder(), Fault(429, {"Retry-After": "0"}), match=lambda k, b: b["seed"] % 4 == 0)
    openai_server.responder = fail_first(responder, Fault(500), match=lambda k, b: b["seed"] % 4 == 1)
    out = tmp_path / "out"
    code, text = dg(git_repo, out, openai_server)
    assert code == 0, text
    faults = manifest(out)["run"]["faults"]
    assert faults["retried"] > 0 and faults["reasons"]["status 429"] > 0 and faults["reasons"]["status 500"] > 0
    assert faults["retried"] == faults["reasons"]["status 429"] + faults["reasons"]["status 500"]
    line = next(x for x in text.splitlines() if x.startswith("teacher faults:"))
    assert f"{faults['retried']} retried" in line and "status 429" in line


def _cpu(fn: Any, arg: str) -> float:
    """CPU seconds per call, best of 3 runs of enough calls to last 20 ms (timer noise)."""
    best = float("inf")
    for _ in range(3):
        start, calls = time.process_time(), 0
        while calls == 0 or time.process_time() - start < 0.02:
            fn(arg)
            calls += 1
        best = min(best, (time.process_time() - start) / calls)
    return best


def test_parsers_are_linear() -> None:
    # A ratio of CPU times on inputs 4x apart: ~4 for a linear parser, ~16 for the old regex.
    small = "Question: what is this thing about\n" * 150
    assert parse_pairs(small) == []
    ratio = _cpu(parse_pairs, small * 4) / _cpu(parse_pairs, small)
    assert ratio < 9, ratio
    spaces = "1. x" + " " * 20_000 + "y"
    ratio = _cpu(parse_questions, spaces * 4) / _cpu(parse_questions, spaces)
    assert ratio < 9, ratio
