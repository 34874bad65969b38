"""Teachers: the models that write synthetic data. Every backend implements `Teacher` (base.py).

`make_teacher(kind, ...)` builds one by name:
  embedded / transformers  in-process batched generation (`model` = "embedded", "tiny" or a local dir)
  openai                   any OpenAI-compatible server(s) given by `endpoints`
  vllm                     vLLM's in-process engine (GPU)
Backends are imported only when chosen, so the openai teacher never imports torch.
"""

from __future__ import annotations

from collections.abc import Sequence

from labtax.errors import UsageError
from labtax.teachers.base import Teacher, TeacherRequest, TeacherResponse

KINDS = ("embedded", "transformers", "openai", "vllm")

__all__ = ["KINDS", "Teacher", "TeacherRequest", "TeacherResponse", "make_teacher"]


def make_teacher(
    kind: str,
    *,
    endpoints: Sequence[str] = (),
    model: str | None = None,
    api_key_env: str | None = None,
    concurrency: int = 16,
    timeout: float = 120.0,
    completions: bool = False,
    batch_size: int = 8,
    retries: int = 6,
) -> Teacher:
    """Build a teacher. `timeout` and `retries` are per request (openai); `batch_size` is prompts per
    forward pass (transformers)."""
    if kind in ("embedded", "transformers"):
        if endpoints:
            raise UsageError("--endpoint is only for --teacher openai")
        from labtax.teachers.transformers import TransformersTeacher

        return TransformersTeacher(model or "embedded", batch_size=batch_size)
    if kind == "openai":
        from labtax.teachers.openai import OpenAITeacher

        return OpenAITeacher(
            list(endpoints), model=model, api_key_env=api_key_env, concurrency=concurrency,
            timeout=timeout, completions=completions, max_retries=retries,
        )
    if kind == "vllm":
        from labtax.teachers.vllm import VLLMTeacher

        return VLLMTeacher(model or "embedded")
    raise UsageError(f"unknown teacher {kind!r} (choose one of: {', '.join(KINDS)})")
