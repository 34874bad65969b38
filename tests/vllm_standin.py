"""vLLM's `SamplingParams` surface for the stand-in engines of the vllm teacher tests (the real engine
runs in `make check-vllm`): the fields labtax sets, recorded as given."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class SamplingParams:
    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 16
    seed: int | None = None
    stop: list[str] | None = None
    logprobs: int | None = None  # a verdict: the top tokens of each position
