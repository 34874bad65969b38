"""Teachers: the models that write synthetic data. Every backend implements `Teacher` (base.py).

`make_teacher(kind, ...)` builds one by name:
  embedded / transformers  in-process batched generation (`model` = "embedded", "tiny" or a local dir)
  openai                   any OpenAI-compatible server(s) given by `endpoints`
  vllm                     vLLM's in-process engine (GPU)
Backends are imported only when chosen, so the openai teacher never imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from labtax.errors import UsageError
from labtax.teachers.base import Teacher, TeacherRequest, TeacherResponse
from labtax.teachers.lazy import LazyTeacher, teacher_model_id

KINDS = ("embedded", "transformers", "openai", "vllm")

__all__ = ["KINDS", "Teacher", "TeacherRequest", "TeacherResponse", "TeacherSpec", "make_teacher"]


def make_teacher(kind: str, **options: Any) -> Teacher:
    """Build a teacher by name; `options` are `TeacherSpec`'s fields (endpoints, model, api_key_env,
    concurrency, timeout and retries per request, completions, batch_size, the vLLM engine settings)."""
    if "endpoints" in options:
        options["endpoints"] = tuple(options["endpoints"])
    return TeacherSpec(teacher=kind, **options).build()


@dataclass(frozen=True)
class TeacherSpec:
    """Which teacher to build and how it reaches its model: the values of the shared teacher options
    (built from them by the command line, `labtax.cli_options.teacher_spec`). Its errors name the
    flags as the user knows the settings."""

    teacher: str = "embedded"
    endpoints: tuple[str, ...] = ()
    model: str | None = None
    api_key_env: str | None = None
    concurrency: int = 16
    timeout: float = 120.0
    completions: bool = False
    batch_size: int = 0  # in-process: 0 = the width measured on this machine (cached)
    retries: int = 6
    # vLLM engine settings (--teacher vllm), named as `vllm serve` names them.
    tensor_parallel_size: int = 1
    max_model_len: int | None = None
    gpu_memory_utilization: float = 0.9
    dtype: str = "auto"

    def __post_init__(self) -> None:
        if self.teacher != "openai" and self.endpoints:
            raise UsageError("--endpoint needs --teacher openai")
        engine = (self.tensor_parallel_size, self.max_model_len, self.gpu_memory_utilization)
        if self.teacher == "openai" and self.dtype != "auto":
            raise UsageError("--dtype is the model's compute dtype of an in-process teacher (embedded, "
                             "transformers, vllm)", hint="a server chooses its own: pass it to the server")
        if self.teacher != "vllm" and engine != (1, None, 0.9):
            raise UsageError("--tensor-parallel-size, --max-model-len and --gpu-memory-utilization "
                             "are vLLM engine settings: they need --teacher vllm",
                             hint="for a vLLM server, pass them to `vllm serve` and use --teacher openai")

    def vllm_options(self) -> Any:
        """The engine settings as the vllm teacher takes them (validated there)."""
        from labtax.teachers.vllm import VLLMEngineOptions

        return VLLMEngineOptions(tensor_parallel_size=self.tensor_parallel_size, max_model_len=self.max_model_len,
                                 gpu_memory_utilization=self.gpu_memory_utilization, dtype=self.dtype)

    def build(self) -> Teacher:
        """The backend, imported only now (the openai teacher never imports torch)."""
        if self.teacher in ("embedded", "transformers"):
            from labtax.teachers.transformers import TransformersTeacher

            return TransformersTeacher(self.model or "embedded", batch_size=self.batch_size or None,
                                       dtype=None if self.dtype == "auto" else self.dtype)
        if self.teacher == "openai":
            from labtax.teachers.openai import OpenAITeacher

            return OpenAITeacher(list(self.endpoints), model=self.model, api_key_env=self.api_key_env,
                                 concurrency=self.concurrency, timeout=self.timeout, completions=self.completions,
                                 max_retries=self.retries)
        if self.teacher == "vllm":
            from labtax.teachers.vllm import VLLMTeacher

            return VLLMTeacher(self.model or "embedded", self.vllm_options())
        raise UsageError(f"unknown teacher {self.teacher!r} (choose one of: {', '.join(KINDS)})")

    def build_lazy(self) -> Teacher:
        """Built on first use: a run with nothing to generate never loads a model."""
        return LazyTeacher(self.build, teacher_model_id(self.teacher, self.model))
