"""`labtax generate` runs through the diff-generate engine (issue 25): its `sets/` is a diff-generate
output directory (leaf store, ledger, sets, manifest with content keys), so a leaf whose requests
failed is retried alone by the next run, and a finished run's rerun asks the teacher nothing."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from openai_server import Fault, OpenAIServer, fail_first, lab_responder
from sdgleaves import FREEFORM, GROUNDED, write_taxonomy

from labtax.cli import cli
from labtax.errors import EXIT_TEACHER

POEMS, EMAIL = "compositional_skills/writing/poems/qna.yaml", "compositional_skills/email/summary/qna.yaml"


def _some_email_answers(kind: str, body: dict[str, Any]) -> bool:
    """About half the email leaf's answer requests (a stage whose every request fails fails its leaf
    whole, a TeacherError; these fail some)."""
    text = json.dumps(body, sort_keys=True)
    return "STAGE: answer" in text and "email" in text and hashlib.sha256(text.encode()).digest()[0] % 2 == 0


def test_generate_resumes_from_its_ledger(tmp_path: Path, openai_server: OpenAIServer) -> None:
    root, out = tmp_path / "tax", tmp_path / "out"
    write_taxonomy(root, {POEMS: FREEFORM, EMAIL: GROUNDED})
    args = ["generate", "--taxonomy", str(root), "--output", str(out), "--teacher", "openai",
            "--endpoint", openai_server.base_url, "--samples-per-leaf", "2", "--seed", "3"]
    # 400 is not retried by the teacher: these requests fail once, then work.
    openai_server.responder = fail_first(lab_responder(), Fault(400), times=1, match=_some_email_answers)

    first = CliRunner().invoke(cli, args)
    # The email leaf had failed requests: not written, not mixed, said so, exit 5 (it was written
    # half-done with exit 0 before); the poems leaf is whole.
    assert first.exit_code == EXIT_TEACHER, first.output
    assert f"{EMAIL}: FAILED: " in first.output and "rerun to retry them" in first.output
    assert not (out / "compositional_skills/email/summary.jsonl").exists()
    poems = (out / "compositional_skills/writing/poems.jsonl").read_bytes()
    manifest = json.loads((out / "sets" / "manifest.json").read_text(encoding="utf-8"))
    assert {e["path"]: e["status"] for e in manifest["leaves"]} == {EMAIL: "failed", POEMS: "generated"}
    assert (out / "sets" / "ledger.sqlite").is_file() and list((out / "sets" / "leaves").rglob("*.jsonl"))
    answered = {str(r.body) for r in openai_server.requests if r.status == 200}
    failed = {str(r.body) for r in openai_server.requests if r.status == 400}
    before = openai_server.count()

    second = CliRunner().invoke(cli, args)
    assert second.exit_code == 0, second.output
    resent = {str(r.body) for r in openai_server.requests[before:]}
    assert failed <= resent and not resent & answered  # only the failed requests went out again
    assert (out / "compositional_skills/writing/poems.jsonl").read_bytes() == poems  # replayed: the same rows
    manifest = json.loads((out / "sets" / "manifest.json").read_text(encoding="utf-8"))
    assert {e["status"] for e in manifest["leaves"]} == {"generated"} and all(e["key"] for e in manifest["leaves"])
    sets = {p.name: p.read_bytes() for p in (out / "sets").glob("*.jsonl")}
    after = openai_server.count()

    third = CliRunner().invoke(cli, args)
    assert third.exit_code == 0, third.output
    assert openai_server.count() == after  # every request replayed from the ledger
    assert {p.name: p.read_bytes() for p in (out / "sets").glob("*.jsonl")} == sets
