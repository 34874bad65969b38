"""`labtax export --format ilab`: the sets as instructlab-sdg's mixer writes them, read by the
`datasets` library always and by instructlab-training's own data processing when it is importable
(LABTAX_ILAB_TRAINING names a `pip install --target` folder of it, default /tmp/ilab-training)."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from labtax.cli import cli

KNOWLEDGE = {"messages": [{"role": "user", "content": "The Nile flows north.\n\nWhich way does the Nile flow?"},
                          {"role": "assistant", "content": "North, to the Mediterranean."}],
             "metadata": {"leaf": "knowledge/geo/rivers/qna.yaml", "kind": "knowledge", "question_at": 23},
             "unmask": True}
SKILL = {"messages": [{"role": "user", "content": "Write a haiku about rain."},
                      {"role": "assistant", "content": "Grey roofs drum softly\nthe gutters hum to the street\npuddles hold the sky"}],
         "metadata": {"leaf": "compositional_skills/writing/haiku/qna.yaml", "kind": "compositional_skills"},
         "unmask": False}


def data_dir(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "phase1_knowledge.jsonl").write_text(json.dumps(KNOWLEDGE) + "\n" + json.dumps(
        {**KNOWLEDGE, "metadata": {**KNOWLEDGE["metadata"], "chunk": 1}}) + "\n")
    (root / "phase2_skills.jsonl").write_text(json.dumps(SKILL) + "\n" + json.dumps(
        {**KNOWLEDGE, "unmask": False, "metadata": {**KNOWLEDGE["metadata"], "replay": True}}) + "\n")
    return root


def export(tmp_path: Path, *extra: str) -> Path:
    out = tmp_path / "ilab"
    result = CliRunner().invoke(cli, ["export", "--data", str(data_dir(tmp_path / "data")), "--format", "ilab",
                                      "--output", str(out), *extra])
    assert result.exit_code == 0, result.output
    assert "knowledge_train_msgs.jsonl (2 rows, from phase1_knowledge.jsonl)" in result.output
    return out


def test_rows_have_the_mixers_shape_and_datasets_reads_them(tmp_path: Path) -> None:
    from datasets import load_dataset

    out = export(tmp_path, "--system-prompt", "I am a careful assistant.")
    for name in ("knowledge_train_msgs.jsonl", "skills_train_msgs.jsonl"):
        ds = load_dataset("json", data_files=str(out / name), split="train")
        assert set(ds.column_names) == {"id", "messages", "metadata"} and len(ds) == 2
        assert len(set(ds["id"])) == 2
        for row in ds:
            assert isinstance(row["metadata"], str) and json.loads(row["metadata"])["leaf"].endswith("/qna.yaml")
            assert row["messages"][0] == {"role": "system", "content": "I am a careful assistant."}
    knowledge = [json.loads(line) for line in (out / "knowledge_train_msgs.jsonl").read_text().splitlines()]
    assert knowledge[0]["messages"][1] == {"role": "pretraining", "content": (
        "<|user|>\nThe Nile flows north.\n\nWhich way does the Nile flow?\n<|assistant|>\nNorth, to the Mediterranean.")}
    skills = [json.loads(line) for line in (out / "skills_train_msgs.jsonl").read_text().splitlines()]
    assert [m["role"] for m in skills[0]["messages"]] == ["system", "user", "assistant"]
    assert [m["role"] for m in skills[1]["messages"]] == ["system", "user", "assistant"]  # replay: not unmasked
    before = (out / "skills_train_msgs.jsonl").read_bytes()
    again = export(tmp_path / "again", "--system-prompt", "I am a careful assistant.")
    assert (again / "skills_train_msgs.jsonl").read_bytes() == before  # ids from content: same files


def test_missing_sets_are_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["export", "--data", str(tmp_path), "--output", str(tmp_path / "o")])
    assert result.exit_code == 2 and "run labtax diff-generate first" in result.output


def _ilab_training() -> bool:
    target = os.environ.get("LABTAX_ILAB_TRAINING", "/tmp/ilab-training")
    if Path(target, "instructlab", "training").is_dir() and target not in sys.path:
        sys.path.append(target)
    try:
        return importlib.util.find_spec("instructlab.training.data_process") is not None
    except ModuleNotFoundError:
        return False


@pytest.mark.skipif(not _ilab_training(), reason="instructlab-training is not importable")
def test_instructlab_trainings_own_data_processing_reads_them(tmp_path: Path) -> None:
    from instructlab.training.data_process import process_data

    from labtax.models import load_tokenizer

    out = export(tmp_path)
    model = str(load_tokenizer("tiny").name_or_path)  # SmolLM2's tokenizer, with its chat template
    for name in ("knowledge_train_msgs.jsonl", "skills_train_msgs.jsonl"):
        processed = tmp_path / f"processed-{name}"
        process_data(data_path=str(out / name), data_output_path=str(processed), max_seq_len=1024,
                     model_path=model, num_cpu_procs=1)
        rows = [json.loads(line) for line in (processed / "data.jsonl").read_text().splitlines()]
        assert len(rows) == 2
        for row in rows:
            trained = [t for t in row["labels"] if t != -100]
            assert row["input_ids"] and 0 < len(trained) < len(row["input_ids"])  # the system prompt is masked
