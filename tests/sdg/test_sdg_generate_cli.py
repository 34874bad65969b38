"""`labtax generate` end to end against the real test server: files, counts, exit codes, secrets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from gitrepo import GitRepo
from openai_server import Fault, OpenAIServer
from sdgleaves import FREEFORM, GROUNDED, PLANETS_MD, knowledge_data, write_taxonomy

from labtax.cli import cli
from labtax.errors import EXIT_TEACHER

REPO_ROOT = Path(__file__).resolve().parents[2]


def _taxonomy(tmp_path: Path, make_git_repo: Callable[[str], GitRepo]) -> Path:
    docs = make_git_repo("planet-docs")
    docs.write("planets.md", PLANETS_MD)
    pinned = docs.commit("docs")
    root = tmp_path / "tax"
    write_taxonomy(root, {
        "compositional_skills/writing/poems/qna.yaml": FREEFORM,
        "compositional_skills/email/summary/qna.yaml": GROUNDED,
        "knowledge/astronomy/planets/qna.yaml": knowledge_data(f"file://{docs.root}", pinned, ["*.md"]),
    })
    return root


def test_generate_writes_one_jsonl_per_leaf(tmp_path: Path, make_git_repo: Callable[[str], GitRepo],
                                            openai_server: OpenAIServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABTAX_CACHE", str(tmp_path / "cache"))
    root = _taxonomy(tmp_path, make_git_repo)
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, [
        "generate", "--taxonomy", str(root), "--output", str(out), "--teacher", "openai",
        "--endpoint", openai_server.base_url, "--samples-per-leaf", "4", "--seed", "5", "--chunk-tokens", "80",
    ])
    assert result.exit_code == 0, result.output
    # sets/ is a diff-generate output directory: the sets, their manifest, the leaf store and the ledger
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.jsonl") if p.relative_to(out).parts[0] != "sets")
    assert files == ["compositional_skills/email/summary.jsonl", "compositional_skills/writing/poems.jsonl",
                     "knowledge/astronomy/planets.jsonl"]
    report = json.loads((out / "generate-report.json").read_text(encoding="utf-8"))
    # Knowledge volume follows the document: 4 samples per 5 (seed example, chunk) cells.
    chunks = report["knowledge/astronomy/planets/qna.yaml"]["chunks"]
    for rel in files:
        rows = [json.loads(line) for line in (out / rel).read_text(encoding="utf-8").splitlines()]
        assert len(rows) == (4 * chunks if rel.startswith("knowledge") else 4)
        for row in rows:
            assert set(row) == {"messages", "metadata", "unmask"}
            meta = row["metadata"]
            assert meta["leaf"] == rel[: -len(".jsonl")] + "/qna.yaml"
            assert meta["teacher"] == "openai:test-model" and meta["seed"] == 5
            assert row["unmask"] is (meta["kind"] == "knowledge")
            for key in ("question", "answer", "context", "scores", "pipeline"):
                assert key in meta
    lines = result.output.strip().splitlines()
    assert len(lines) == 3 and all("generated" in line and "kept 4" in line and "tokens" in line
                                   for line in lines if not line.startswith("knowledge"))
    assert report["knowledge/astronomy/planets/qna.yaml"]["kept"] == 4 * chunks


def test_generate_one_forced_leaf_by_folder(tmp_path: Path, openai_server: OpenAIServer,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "tax"
    write_taxonomy(root, {"compositional_skills/writing/poems/qna.yaml": FREEFORM,
                          "compositional_skills/email/summary/qna.yaml": GROUNDED})
    monkeypatch.chdir(root)
    result = CliRunner().invoke(cli, [
        "generate", "compositional_skills/writing/poems", "--output", str(tmp_path / "out"),
        "--teacher", "openai", "--endpoint", openai_server.base_url, "--samples-per-leaf", "2", "--completions",
    ])
    assert result.exit_code == 0, result.output
    out = tmp_path / "out"
    assert [p.name for p in out.rglob("*.jsonl") if p.relative_to(out).parts[0] != "sets"] == ["poems.jsonl"]
    assert openai_server.count("completions") > 0 and openai_server.count("chat") == 0


def test_teacher_failure_exits_3_and_other_leaves_still_written(tmp_path: Path, openai_server: OpenAIServer) -> None:
    root = tmp_path / "tax"
    write_taxonomy(root, {"compositional_skills/writing/poems/qna.yaml": FREEFORM,
                          "compositional_skills/email/summary/qna.yaml": GROUNDED})
    base = openai_server.responder
    # Every request about emails fails for good; the poems leaf is unaffected.
    openai_server.responder = lambda k, b: Fault(500) if "email" in json.dumps(b) else base(k, b)
    result = CliRunner().invoke(cli, [
        "generate", "--taxonomy", str(root), "--output", str(tmp_path / "out"), "--teacher", "openai",
        "--endpoint", openai_server.base_url, "--samples-per-leaf", "2", "--timeout", "5", "--retries", "1",
    ])
    assert result.exit_code == EXIT_TEACHER, result.output
    assert "compositional_skills/email/summary/qna.yaml: FAILED" in result.output
    assert (tmp_path / "out" / "compositional_skills/writing/poems.jsonl").exists()
    assert "Traceback" not in result.output


def test_api_key_never_printed_by_a_real_process(tmp_path: Path, openai_server: OpenAIServer) -> None:
    secret = "sk-labtax-test-secret-42"
    root = tmp_path / "tax"
    write_taxonomy(root, {"compositional_skills/writing/poems/qna.yaml": FREEFORM})
    env = {**os.environ, "MY_TEACHER_KEY": secret, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "labtax", "generate", "--taxonomy", str(root), "--output", str(tmp_path / "out"),
         "--teacher", "openai", "--endpoint", openai_server.base_url, "--api-key-env", "MY_TEACHER_KEY",
         "--samples-per-leaf", "2"],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert all(r.headers.get("Authorization") == f"Bearer {secret}" for r in openai_server.requests)
    # the ledger (sets/ledger.sqlite) is binary: read every file as bytes
    written = "".join(p.read_bytes().decode("utf-8", "replace") for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert secret not in proc.stdout + proc.stderr + written
    assert "writing/poems [" not in proc.stderr  # stderr is a pipe: no progress bars


def test_bad_options_are_usage_errors(tmp_path: Path) -> None:
    root = tmp_path / "tax"
    write_taxonomy(root, {"compositional_skills/writing/poems/qna.yaml": FREEFORM})
    result = CliRunner().invoke(cli, ["generate", "--taxonomy", str(root), "--teacher", "openai"])
    assert result.exit_code == 2 and "--endpoint" in result.output
    result = CliRunner().invoke(cli, ["generate", "--taxonomy", str(root), "--teacher", "openai",
                                      "--endpoint", "http://127.0.0.1:9/v1", "--model", "m",
                                      "--api-key-env", "LABTAX_UNSET_VARIABLE_X"])
    assert result.exit_code == 2 and "LABTAX_UNSET_VARIABLE_X" in result.output


def test_progress_bars_only_on_a_terminal(tmp_path: Path, openai_server: OpenAIServer) -> None:
    import fcntl
    import pty
    import struct
    import termios

    root = tmp_path / "tax"
    write_taxonomy(root, {"compositional_skills/writing/poems/qna.yaml": FREEFORM})
    args = [sys.executable, "-m", "labtax", "generate", "--taxonomy", str(root), "--teacher", "openai",
            "--endpoint", openai_server.base_url, "--samples-per-leaf", "2"]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    master, slave = pty.openpty()
    # A terminal 120 columns wide (a fresh pty is 0 wide, and tqdm draws nothing in 0 columns).
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
    proc = subprocess.Popen([*args, "--output", str(tmp_path / "b")], stdout=subprocess.PIPE, stderr=slave,
                            env=env)
    os.close(slave)
    shown = b""
    while True:  # read the terminal while the process runs (a pty buffer is small)
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the process closed its end
            break
        if not chunk:
            break
        shown += chunk
    out, _ = proc.communicate(timeout=120)
    os.close(master)
    assert proc.returncode == 0
    assert b"compositional_skills/writing/poems [" in shown and b"req" in shown
    assert b"kept 2" in out
