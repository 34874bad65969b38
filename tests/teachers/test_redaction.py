"""Secrets never reach output: a server that quotes the API key back (as real ones do on a 401) must
not put it on stdout, stderr or into any file labtax writes, in any command or teacher."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from lab_taxonomy import add_skill
from openai_server import Fault, OpenAIServer
from sdgleaves import FREEFORM, write_taxonomy

from labtax.errors import EXIT_TEACHER
from labtax.util.redact import MARK, redact, register_secret

REPO_ROOT = Path(__file__).resolve().parents[2]
# Not shaped like any known token: only the registry of keys read can catch it.
SECRET = "zq7-LabtaxPlainSecret-5591"


def _quoting(kind: str, body: dict[str, Any]) -> Fault:
    # The key straddles byte 200 of the body: cutting the body before redacting would leak its start.
    padding = "x" * 140
    return Fault(401, body=json.dumps({"error": {"message": f"{padding} Incorrect API key provided: {SECRET}."}}))


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MY_TEACHER_KEY": SECRET, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run([sys.executable, "-m", "labtax", *args], capture_output=True, text=True, env=env,
                          timeout=120, check=False)


def _everything_written(out: Path) -> str:
    return "".join(p.read_bytes().decode("utf-8", "replace") for p in out.rglob("*") if p.is_file())


def test_generate_never_prints_or_writes_a_quoted_key(tmp_path: Path) -> None:
    root = tmp_path / "tax"
    write_taxonomy(root, {"compositional_skills/writing/poems/qna.yaml": FREEFORM})
    out = tmp_path / "out"
    with OpenAIServer(_quoting) as server:
        proc = _run(["generate", "--taxonomy", str(root), "--output", str(out), "--teacher", "openai",
                     "--endpoint", server.base_url, "--model", "m", "--api-key-env", "MY_TEACHER_KEY",
                     "--samples-per-leaf", "2"])
    assert proc.returncode == EXIT_TEACHER, proc.stderr
    assert "status 401" in proc.stdout and "Incorrect API key" in proc.stdout  # the reason is still said
    assert SECRET not in proc.stdout + proc.stderr + _everything_written(out)
    assert SECRET[:8] not in proc.stdout + proc.stderr + _everything_written(out)


def test_diff_generate_never_prints_or_writes_a_quoted_key(git_repo: Any, tmp_path: Path) -> None:
    add_skill(git_repo, "compositional_skills/writing/haiku")
    git_repo.commit("taxonomy")
    out = tmp_path / "out"
    with OpenAIServer(_quoting) as server:
        proc = _run(["diff-generate", "--taxonomy", str(git_repo.root), "--base", "empty", "--output", str(out),
                     "--teacher", "openai", "--endpoint", server.base_url, "--model", "m",
                     "--api-key-env", "MY_TEACHER_KEY", "--samples-per-leaf", "2"])
    assert proc.returncode == EXIT_TEACHER, proc.stderr
    assert "401" in proc.stdout + proc.stderr
    assert SECRET not in proc.stdout + proc.stderr + _everything_written(out)
    assert SECRET[:8] not in proc.stdout + proc.stderr + _everything_written(out)


def test_eval_judge_client_redacts_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    from labtax.eval.run import JudgeOptions, default_teacher_factory
    from labtax.teachers.base import TeacherRequest

    monkeypatch.setenv("MY_JUDGE_KEY", SECRET + "-judge")
    with OpenAIServer(lambda kind, body: Fault(401, body=f"bad key {SECRET}-judge")) as server:
        teacher = default_teacher_factory(JudgeOptions(endpoints=(server.base_url,), model="m",
                                                       api_key_env="MY_JUDGE_KEY"))()

        async def go() -> list[Any]:
            try:
                return await teacher.complete([TeacherRequest(messages=(("user", "rate"),))])
            finally:
                await teacher.aclose()

        [resp] = asyncio.run(go())
    assert not resp.ok and "401" in (resp.error or "")
    assert SECRET not in (resp.error or "") and MARK in (resp.error or "")


@pytest.mark.parametrize("text", [
    "Authorization: Bearer abcdefghijklmnop123",
    "key sk-proj-AAAAbbbbCCCCdddd was refused",
    "https://h/v1?api_key=s3cr3tvalue&x=1",
    '{"password": "hunter2hunter2"}',
    "token ghp_abcdefghij1234567890",
])
def test_credential_shapes_are_redacted_whatever_their_source(text: str) -> None:
    out = redact(text)
    assert MARK in out
    for secret in ("abcdefghijklmnop123", "AAAAbbbbCCCCdddd", "s3cr3tvalue", "hunter2hunter2", "ghp_abcdefghij"):
        assert secret not in out


def test_registered_secret_is_redacted_everywhere_and_plain_text_is_kept() -> None:
    register_secret("plain-registered-value-77")
    assert redact("x plain-registered-value-77 y") == f"x {MARK} y"
    assert redact("status 429: slow down") == "status 429: slow down"
    assert redact("the reply exceeds the token budget") == "the reply exceeds the token budget"
