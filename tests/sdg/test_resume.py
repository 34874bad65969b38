"""Resume after SIGKILL, and two runs at once: real subprocesses against the real test server."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lab_taxonomy import add_knowledge, add_skill, manifest, run_cli, teacher_args

from labtax.sdg.replay import ledger_request_key
from labtax.teachers.base import TeacherRequest

SETS = ("phase1_knowledge.jsonl", "phase2_skills.jsonl", "test.jsonl")
MODEL_ID = "openai:test-model"


def build(repo: Any) -> None:
    for name in ("haiku", "limerick", "sonnet"):
        add_skill(repo, f"compositional_skills/writing/{name}")
    add_skill(repo, "compositional_skills/reading/summary", grounded=True)
    add_knowledge(repo, "knowledge/astro/moon")
    add_knowledge(repo, "knowledge/astro/mars")
    repo.commit("taxonomy")


def args(repo: Any, out: Path, server: Any) -> list[str]:
    return ["diff-generate", "--taxonomy", str(repo.root), "--base", "empty", "--head", "HEAD",
            "--output", str(out), *teacher_args(server)]


def spawn(argv: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "labtax", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)


def request_key(body: dict[str, Any]) -> str:
    """The ledger key of the request the openai teacher sent as `body`."""
    req = TeacherRequest(
        messages=tuple((m["role"], m["content"]) for m in body["messages"]),
        max_tokens=body["max_tokens"], temperature=body["temperature"], top_p=body["top_p"],
        seed=body["seed"], stop=tuple(body.get("stop") or ()),
    )
    return ledger_request_key(MODEL_ID, req)


def completed_keys(out: Path) -> set[str]:
    db = out / "ledger.sqlite"
    if not db.exists():
        return set()
    con = sqlite3.connect(db)
    try:
        return {k for (k,) in con.execute("SELECT key FROM requests")}
    except sqlite3.OperationalError:  # killed before the schema was created
        return set()
    finally:
        con.close()


def kill_when(proc: subprocess.Popen[bytes], ready: Callable[[], bool], limit: float = 60.0) -> bool:
    """SIGKILL `proc` as soon as `ready()` holds; False when it finished first."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        if ready():
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.002)
    proc.kill()
    raise AssertionError("the run neither finished nor reached the kill point")


def test_sigkill_at_several_points_then_resume(git_repo, openai_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    build(git_repo)
    # The reference: one uninterrupted run with the same seed.
    ref = tmp_path / "ref"
    code, text = run_cli(args(git_repo, ref, openai_server))
    assert code == 0, text
    total = openai_server.count()
    assert total > 40
    openai_server.reset()
    openai_server.delay_ms = 5  # requests in flight at the moment of each kill

    out = tmp_path / "out"
    store_files = lambda: len(list((out / "leaves").glob("*/*.jsonl"))) if (out / "leaves").exists() else 0
    points: list[Callable[[int], Callable[[], bool]]] = [
        lambda start: lambda: openai_server.count() >= start + 1,  # the first answer
        lambda start: lambda: openai_server.count() >= start + 12,  # mid-stage
        lambda start: lambda: store_files() >= 1,  # right after a leaf was stored
        lambda start: lambda: openai_server.count() >= start + 25,
        lambda start: lambda: store_files() >= 4,
    ]
    kills = 0
    seen_until = 0
    completed: set[str] = set()
    for point in points:
        proc = spawn(args(git_repo, out, openai_server))
        start = openai_server.count()
        killed = kill_when(proc, point(start))
        # No request that had completed (recorded in the ledger) before this run was sent again.
        new = [request_key(r.body) for r in openai_server.requests[seen_until:]]
        assert not completed & set(new)
        seen_until = len(openai_server.requests)
        completed = completed_keys(out)
        kills += killed
        if not killed:
            break
    assert kills >= 3

    proc = spawn(args(git_repo, out, openai_server))
    output = proc.communicate(timeout=120)[0].decode()
    assert proc.returncode == 0, output
    new = [request_key(r.body) for r in openai_server.requests[seen_until:]]
    assert not completed & set(new)

    # The final sets equal the uninterrupted run's, byte for byte; nothing lost, nothing duplicated.
    for name in SETS:
        assert (out / name).read_bytes() == (ref / name).read_bytes(), name
    got, want = manifest(out), manifest(ref)
    assert [(e["path"], e["key"], e["counts"]) for e in got["leaves"]] == [
        (e["path"], e["key"], e["counts"]) for e in want["leaves"]]
    # Requests sent across all interrupted runs: at most the reference's plus those in flight at kills.
    keys = [request_key(r.body) for r in openai_server.requests]
    assert set(keys) == completed_keys(out)
    assert len(set(keys)) == total


def test_two_runs_at_once(git_repo, openai_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    build(git_repo)
    out = tmp_path / "out"
    openai_server.delay_ms = 30
    first = spawn(args(git_repo, out, openai_server))
    try:
        deadline = time.monotonic() + 60
        while openai_server.count() < 1 and time.monotonic() < deadline and first.poll() is None:
            time.sleep(0.01)
        code, text = run_cli(args(git_repo, out, openai_server))
        assert code == 4, text
        assert "in use by another labtax run" in text and str(first.pid) in text
        # With --wait the second run waits for the first, then has nothing left to do.
        second = spawn([*args(git_repo, out, openai_server), "--wait", "120"])
        out2 = second.communicate(timeout=120)[0].decode()
    finally:
        out1 = first.communicate(timeout=120)[0].decode()
    assert first.returncode == 0, out1
    assert second.returncode == 0, out2
    assert "nothing to generate" in out2
    keys = [request_key(r.body) for r in openai_server.requests]
    assert len(keys) == len(set(keys))  # the store and ledger stayed consistent: nothing sent twice
    assert {e["status"] for e in manifest(out)["leaves"]} == {"reused"}
