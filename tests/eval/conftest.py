"""Eval fixtures: the data directory and a real trained (base, candidate) pair, built once."""

from __future__ import annotations

from pathlib import Path

import pytest
from eval_fixtures import make_eval_data


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Phase 1 (rivers + metals) from `tiny` gives the base; phase 2 (rivers + a metals replay) from
    it gives the candidate. Real `labtax train` phases, fixed seed, `--select eval` with our scorer."""
    import yaml

    from labtax.eval.scorer import score_checkpoint
    from labtax.train.config import load_config
    from labtax.train.phases import run_training

    root = tmp_path_factory.mktemp("eval-trained")
    data = make_eval_data(root / "data")
    config = root / "train.yaml"
    config.write_text(yaml.safe_dump({
        "seed": 42,
        "common": {"max_seq_len": 256, "max_tokens_per_batch": 1024, "warmup_steps": 2,
                   "effective_batch": 8, "schedule": "constant",
                   "save_state": False},  # never resumed: no optimizer state written with each checkpoint
        "knowledge": {"lr": 3e-3, "epochs": 1},  # 24 steps, one checkpoint
        "skills": {"lr": 1e-3, "epochs": 2},
    }))
    summary = run_training(
        data, "tiny", root / "out", ["knowledge", "skills"], load_config(config), select="eval",
        scorer=lambda path: score_checkpoint(path, data), log=lambda _line: None,
    )
    return {
        "data": data,
        "base": Path(summary["phases"]["knowledge"]["selected"]["path"]),
        "candidate": Path(summary["phases"]["skills"]["selected"]["path"]),
        "summary": summary,  # type: ignore[dict-item]
    }


@pytest.fixture
def eval_data(tmp_path: Path) -> Path:
    return make_eval_data(tmp_path / "data")
