"""`labtax generate` writes the held-out rows diff-generate writes: `labtax eval` and `--select` read them."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from openai_server import OpenAIServer, lab_responder
from sdgleaves import FREEFORM, PLANETS_MD, knowledge_data, write_taxonomy

from labtax.cli import cli
from labtax.eval.scorer import score_checkpoint
from labtax.models import load_model, load_tokenizer


def test_generate_mixes_sets_with_test_and_validation_rows(tmp_path: Path, openai_server: OpenAIServer) -> None:
    openai_server.responder = lab_responder()
    root = tmp_path / "tax"
    write_taxonomy(root, {"compositional_skills/writing/poems/qna.yaml": FREEFORM,
                          "knowledge/astronomy/planets/qna.yaml": knowledge_data(".documents/planets", "", ["*.md"])})
    (root / ".documents" / "planets").mkdir(parents=True)
    (root / ".documents" / "planets" / "planets.md").write_text(PLANETS_MD, encoding="utf-8")
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, [
        "generate", "--taxonomy", str(root), "--output", str(out), "--teacher", "openai",
        "--endpoint", openai_server.base_url, "--samples-per-leaf", "1", "--seed", "5", "--chunk-tokens", "80", "--max-requests-per-leaf", "3",
    ])
    assert result.exit_code == 0, result.output
    sets = out / "sets"
    test = [json.loads(line) for line in (sets / "test.jsonl").read_text(encoding="utf-8").splitlines()]
    validation = [json.loads(line) for line in (sets / "validation.jsonl").read_text(encoding="utf-8").splitlines()]
    train = [json.loads(line) for name in ("phase1_knowledge.jsonl", "phase2_skills.jsonl")
             for line in (sets / name).read_text(encoding="utf-8").splitlines()]
    mc = [r for r in test if "choices" in r]
    seeds = [r for r in test if r["metadata"]["source"] == "seed"]
    assert mc and all(r["metadata"]["leaf"] == "knowledge/astronomy/planets/qna.yaml" for r in mc)
    assert not any(r["metadata"]["shown_to_teacher"] for r in mc)
    # 5 knowledge seed examples x 3 pairs + 5 skill seeds; 3 requests a stage showed 3 seed examples only.
    assert len(seeds) == 20 and 0 < sum(r["metadata"]["shown_to_teacher"] for r in seeds) < 20
    assert validation and all(r["metadata"]["split"] == "validation" for r in validation)
    held_out = {r["messages"][-2]["content"] for r in test + validation}
    assert not held_out & {r["messages"][-2]["content"] for r in train}
    manifest = json.loads((sets / "manifest.json").read_text(encoding="utf-8"))
    assert {e["path"]: (e["status"], e["changed"]) for e in manifest["leaves"]} == {
        "compositional_skills/writing/poems/qna.yaml": ("generated", True),
        "knowledge/astronomy/planets/qna.yaml": ("generated", True)}

    # `labtax eval` reads the sets as it reads diff-generate's (changed leaves from the manifest) ...
    report = CliRunner().invoke(cli, ["eval", "--base", "tiny", "--candidate", "tiny", "--data", str(sets),
                                      "--format", "json", "--device", "cpu"])
    # (the same model twice: the changed leaves are not improved, so the gate fails, exit 1)
    assert report.exit_code == 1, report.output
    leaves = json.loads(report.stdout)["leaves"]
    assert {r["leaf"] for r in leaves} == {"compositional_skills/writing/poems", "knowledge/astronomy/planets"}
    assert all(r["changed"] and r["verdict"] == "no-change" for r in leaves)
    assert next(r for r in leaves if r["leaf"].startswith("knowledge"))["items"]["choices"] == len(mc)
    # ... and `--select eval` scores a checkpoint on the validation split.
    ckpt = tmp_path / "ckpt"
    load_model("tiny").save_pretrained(ckpt)
    load_tokenizer("tiny").save_pretrained(ckpt)
    assert score_checkpoint(ckpt, sets, device="cpu") < 0
