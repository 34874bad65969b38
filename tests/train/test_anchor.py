"""Phase 1's anchor (labtax/train/anchor.py): the start model's predictions on the skill rows, stored
before the first step and kept by a KL term; zero at the start, pulling back where training drifts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from labtax.errors import ConfigError
from labtax.models import load_model, load_tokenizer
from labtax.train.anchor import TARGETS_FILE, TOP_K, Anchor, skill_rows, top_k_kl
from labtax.train.config import load_config
from labtax.train.data import tokenize_file
from labtax.train.lm_loss import TrainModule
from labtax.train.parallel import Runtime
from labtax.train.phases import run_training

torch.set_num_threads(1)

FAST = {"lr": 3e-3, "epochs": 2, "effective_batch": 8, "warmup_steps": 1, "max_seq_len": 512,
        "max_tokens_per_batch": 1024, "save_state": False}
CPU = Runtime(device=torch.device("cpu"))


def _metrics(phase_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (phase_dir / "metrics.jsonl").read_text().splitlines()]


def test_skill_rows_leave_out_the_knowledge_replay(tmp_path: Path) -> None:
    from train_fixtures import make_data_dir

    data = make_data_dir(tmp_path / "data", n_skills=5, n_replay=3)
    rows = skill_rows(data / "phase2_skills.jsonl", tmp_path / "rows.jsonl")
    assert rows is not None
    kept = [json.loads(line) for line in rows.read_text().splitlines()]
    assert len(kept) == 5 and not any(r["metadata"].get("replay") for r in kept)
    only_replay = tmp_path / "replay.jsonl"
    only_replay.write_text("".join(line + "\n" for line in (data / "phase2_skills.jsonl").read_text().splitlines()
                                   if json.loads(line)["metadata"].get("replay")))
    assert skill_rows(only_replay, tmp_path / "none.jsonl") is None
    assert skill_rows(tmp_path / "missing.jsonl", tmp_path / "none.jsonl") is None


def test_top_k_kl_is_zero_for_the_reference_and_positive_elsewhere() -> None:
    gen = torch.Generator().manual_seed(0)
    ref = torch.log_softmax(torch.randn(5, 100, generator=gen), -1)
    top = ref.topk(8, dim=-1)
    assert torch.allclose(top_k_kl(ref, top.indices, top.values), torch.zeros(5), atol=1e-6)
    other = torch.log_softmax(torch.randn(5, 100, generator=gen), -1)
    kl = top_k_kl(other, top.indices, top.values)
    assert (kl > 0).all()
    # the coarse KL never exceeds the full one (grouping outcomes loses information)
    full = (ref.exp() * (ref - other)).sum(-1)
    assert (kl <= full + 1e-6).all()


def test_the_anchor_reads_the_start_model_stores_it_and_pulls_back(tmp_path: Path) -> None:
    from train_fixtures import make_data_dir

    data = make_data_dir(tmp_path / "data", n_skills=6)
    tok = load_tokenizer("tiny")
    rows = tokenize_file(skill_rows(data / "phase2_skills.jsonl", tmp_path / "rows.jsonl"),  # type: ignore[arg-type]
                         tok, 512, tmp_path / "cache")
    module = TrainModule(load_model("tiny", seed=1))
    anchor, fresh = Anchor.prepare(module, rows, 1.0, 4, tmp_path / "phase", CPU, True, 0)
    assert fresh and (tmp_path / "phase" / TARGETS_FILE).is_file()
    assert anchor.ids.shape == (int(rows.loss_counts.sum()), TOP_K)
    kl, positions = anchor.loss(module, 0, CPU)
    assert positions == sum(int(rows.loss_counts[i]) for i in anchor.rows(0))
    assert float(kl.detach()) == pytest.approx(0.0, abs=1e-4)  # the model is its own start
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    kl, _ = anchor.loss(module, 0, CPU)
    assert float(kl.detach()) > 1e-3
    kl.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())
    # A resumed run reads the stored start distributions, not the moved model's.
    again, fresh = Anchor.prepare(module, rows, 1.0, 4, tmp_path / "phase", CPU, True, 0, resuming=True)
    assert not fresh and torch.equal(again.logp, anchor.logp) and np.array_equal(again.offsets, anchor.offsets)
    # A fresh start reads its own model again (a file left behind may be another start's).
    anew, fresh = Anchor.prepare(module, rows, 1.0, 4, tmp_path / "phase", CPU, True, 0)
    assert fresh and not torch.equal(anew.logp, anchor.logp)
    assert anchor.rows(0) == [0, 1, 2, 3] and anchor.rows(1) == [4, 5, 0, 1]


def test_phase_1_with_an_anchor_logs_its_kl_and_stays_closer_to_its_start(tmp_path: Path) -> None:
    from train_fixtures import make_data_dir

    data = make_data_dir(tmp_path / "data", long_words=12, n_skills=6)
    lines: list[str] = []
    run_training(data, "tiny", tmp_path / "anchored", ["knowledge"],
                 load_config(overrides={**FAST, "anchor": 50.0}), select="last", log=lines.append)
    run_training(data, "tiny", tmp_path / "free", ["knowledge"], load_config(overrides={**FAST, "anchor": 0.0}),
                 select="last", log=lines.append)
    assert any("anchor: KL to the start model on 6 skill rows" in line for line in lines), lines
    anchored = [r for r in _metrics(tmp_path / "anchored" / "knowledge") if r["event"] == "step"]
    free = [r for r in _metrics(tmp_path / "free" / "knowledge") if r["event"] == "step"]
    assert all("anchor_kl" in r for r in anchored) and not any("anchor_kl" in r for r in free)
    assert anchored[0]["anchor_kl"] == pytest.approx(0.0, abs=1e-4)
    # The anchored model's predictions on the skill rows moved less than the free one's.
    tok = load_tokenizer("tiny")
    rows = tokenize_file(tmp_path / "anchored" / "cache" / "anchor_rows.jsonl", tok, 512, tmp_path / "cache")
    start = Anchor.prepare(TrainModule(load_model("tiny", seed=42)), rows, 1.0, len(rows), tmp_path / "s", CPU,
                           True, 0)[0]

    def drift(run: str) -> float:
        summary = json.loads((tmp_path / run / "knowledge" / "result.json").read_text())
        from transformers import AutoModelForCausalLM

        module = TrainModule(AutoModelForCausalLM.from_pretrained(summary["selected"]["path"]))
        kl, n = start.loss(module, 0, CPU)
        return float(kl.detach()) / n

    assert drift("anchored") < drift("free")


def test_the_anchor_is_a_setting_of_its_own(tmp_path: Path) -> None:
    config = load_config()
    # On by default in phase 1 (docs/train.md, *Keeping the skills*); phase 2 trains the skill rows.
    assert config.phases["knowledge"].anchor == 1.0 and config.phases["skills"].anchor == 0.0
    assert config.phases["knowledge"].anchor_rows == 4
    assert load_config(overrides={"anchor": 0.5}).phases["knowledge"].anchor == 0.5
    bad = tmp_path / "bad.yaml"
    bad.write_text("knowledge:\n  anchor: -1\n")
    with pytest.raises(ConfigError, match="anchor"):
        load_config(bad)
    bad.write_text("knowledge:\n  anchor_rows: 0\n")
    with pytest.raises(ConfigError, match="anchor_rows"):
        load_config(bad)
