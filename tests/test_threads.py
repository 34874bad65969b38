"""How many torch threads an in-process model takes (labtax.models.choose_threads)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from labtax import models


def loadavg(tmp_path: Path, line: str) -> Path:
    path = tmp_path / "loadavg"
    path.write_text(line)
    return path


def test_runnable_tasks_besides_the_reader(tmp_path: Path) -> None:
    assert models.others_running(loadavg(tmp_path, "1.00 0.90 0.80 1/312 4242\n"), samples=2, interval=0) == 0
    assert models.others_running(loadavg(tmp_path, "0.10 0.20 0.30 3/312 4242\n"), samples=2, interval=0) == 2


def test_no_count_means_none(tmp_path: Path) -> None:
    assert models.others_running(tmp_path / "absent", samples=1) is None
    assert models.others_running(loadavg(tmp_path, "garbage\n"), samples=1) is None


def test_an_idle_machine_after_a_busy_minute_gets_every_core(monkeypatch: pytest.MonkeyPatch) -> None:
    # A 1-minute load average of 1.0 left by the previous step of the same job is not other work.
    monkeypatch.delenv("LABTAX_TORCH_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0, 1})
    monkeypatch.setattr(os, "getloadavg", lambda: (1.0, 1.0, 1.0))
    monkeypatch.setattr(models, "others_running", lambda: 0)
    assert models.choose_threads() == 2
    monkeypatch.setattr(models, "others_running", lambda: 1)
    assert models.choose_threads() == 1
    monkeypatch.setattr(models, "others_running", lambda: 5)
    assert models.choose_threads() == 1


def test_the_load_average_is_the_fallback_and_the_variable_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0, 1, 2, 3})
    monkeypatch.setattr(os, "getloadavg", lambda: (1.2, 1.0, 1.0))
    monkeypatch.setattr(models, "others_running", lambda: None)
    monkeypatch.delenv("LABTAX_TORCH_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert models.choose_threads() == 2
    monkeypatch.setenv("LABTAX_TORCH_THREADS", "3")
    assert models.choose_threads() == 3


def test_a_thread_count_the_user_set_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    # OMP_NUM_THREADS=1 is how a user (and the resume tests) pin a run: a count chosen from the load
    # would override it, and a resumed run would sum floats in another order than the killed one.
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0, 1, 2, 3})
    monkeypatch.setattr(models, "others_running", lambda: 0)
    monkeypatch.delenv("LABTAX_TORCH_THREADS", raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert models.choose_threads() == 1
    monkeypatch.setenv("LABTAX_TORCH_THREADS", "3")
    assert models.choose_threads() == 3
    monkeypatch.delenv("LABTAX_TORCH_THREADS")
    monkeypatch.setenv("OMP_NUM_THREADS", "not a number")
    assert models.choose_threads() == 4


def test_loading_a_model_sets_the_threads_for_eval_and_train(monkeypatch: pytest.MonkeyPatch) -> None:
    """eval and train load through models.load_model: it sets torch's threads (shared among a
    torchrun's local ranks), the teacher passes its own."""
    import torch

    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("LABTAX_TORCH_THREADS", "2")
        monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
        models.load_model("tiny")
        assert torch.get_num_threads() == 1
        monkeypatch.delenv("LOCAL_WORLD_SIZE")
        models.load_model("tiny")
        assert torch.get_num_threads() == 2
        models.load_model("tiny", threads=1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_upcast_in_place_keeps_tied_weights_tied_and_values_equal() -> None:
    import torch

    model = models.build_tiny_model().to(torch.bfloat16)
    expected = {k: v.float() for k, v in model.state_dict().items()}
    models.upcast_in_place(model, torch.float32)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight  # still one tensor
    assert all(torch.equal(v, expected[k]) for k, v in model.state_dict().items())
