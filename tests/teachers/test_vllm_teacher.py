"""The vllm teacher on a GPU runner (skipped without CUDA and the vllm package)."""

from __future__ import annotations

import importlib.util

import pytest
from sdgleaves import run

from labtax.teachers.base import TeacherRequest

pytestmark = pytest.mark.gpu


def _has_cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


@pytest.mark.skipif(importlib.util.find_spec("vllm") is None or not _has_cuda(), reason="needs vllm and a CUDA GPU")
def test_vllm_teacher_answers_a_batch() -> None:
    from labtax.teachers import make_teacher

    teacher = make_teacher("vllm", model="embedded")
    requests = [TeacherRequest(messages=(("user", f"Count to {i}."),), max_tokens=16, seed=i) for i in range(1, 5)]
    out = run(teacher.complete(requests))
    assert len(out) == 4 and all(r.ok and r.completion_tokens > 0 for r in out)
    again = run(teacher.complete(requests))
    assert [r.text for r in out] == [r.text for r in again]  # per-request seeds


def test_vllm_teacher_without_vllm_is_a_usage_error() -> None:
    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vllm is installed")
    from labtax.errors import UsageError
    from labtax.teachers import make_teacher

    with pytest.raises(UsageError, match="vllm"):
        make_teacher("vllm")
