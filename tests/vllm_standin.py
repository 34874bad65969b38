"""vLLM's surfaces for the stand-in engines of the vllm teacher tests (the real engine runs in
`make check-vllm`): `SamplingParams` (the fields labtax sets, recorded as given) and the `LLMEngine`
step API the teacher feeds (`StepEngine`, inside a `StepLLM`)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any


@dataclass
class SamplingParams:
    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 16
    seed: int | None = None
    stop: list[str] | None = None
    logprobs: int | None = None  # a verdict: the top tokens of each position


class StepEngine:
    """vLLM's `LLMEngine` step API (`add_request`, `step`, `has_unfinished_requests`), scheduled as
    vLLM schedules: at most `max_num_seqs` requests run; each step decodes one token of every running
    request; a request added between two steps is scheduled at the next one, beside those running;
    `step()` returns the outputs of the requests that made progress (cumulative), `finished` on the
    last. The text is deterministic: the seed, then a word per further token.
    A prompt containing "FAIL" makes the step raise (an engine error)."""

    def __init__(self, tokenizer: Any, max_num_seqs: int = 8, step_seconds: float = 0.0) -> None:
        self.tokenizer = tokenizer
        self.max_num_seqs = max_num_seqs
        self.step_seconds = step_seconds  # a step's duration (a forward pass on the device)
        self.waiting: list[tuple[str, list[int], SamplingParams]] = []
        self.running: dict[str, tuple[list[int], SamplingParams, list[int]]] = {}
        self.added: list[tuple[str, list[int], SamplingParams]] = []  # every add_request, in order
        self.batch_sizes: list[int] = []  # running requests at each step
        self.finished_at: dict[str, int] = {}  # step index at which each request finished

    def add_request(self, request_id: str, prompt: dict[str, Any], params: SamplingParams) -> None:
        ids = list(prompt["prompt_token_ids"])
        self.added.append((request_id, ids, params))
        self.waiting.append((request_id, ids, params))

    def abort_request(self, request_ids: list[str]) -> None:
        for rid in request_ids:
            self.running.pop(rid, None)
        self.waiting = [w for w in self.waiting if w[0] not in request_ids]

    def has_unfinished_requests(self) -> bool:
        return bool(self.waiting or self.running)

    def step(self) -> list[Any]:
        while self.waiting and len(self.running) < self.max_num_seqs:
            rid, ids, params = self.waiting.pop(0)
            self.running[rid] = (ids, params, [])
        self.batch_sizes.append(len(self.running))
        time.sleep(self.step_seconds)
        if any("FAIL" in self.tokenizer.decode(ids) for ids, _, _ in self.running.values()):
            raise RuntimeError("CUDA error: an illegal memory access (stand-in)")
        outputs = []
        for rid, (ids, params, generated) in list(self.running.items()):
            generated.append(1000 + len(generated))
            done = len(generated) >= (1 if params.logprobs else params.max_tokens)
            text = " ".join([f"seed{params.seed}"] + [f"w{i}" for i in range(len(generated) - 1)])
            logprobs = [self._first_position(ids)] if params.logprobs else None
            outputs.append(SimpleNamespace(request_id=rid, prompt_token_ids=ids, finished=done,
                                           outputs=[SimpleNamespace(text=text, token_ids=list(generated),
                                                                    finish_reason="length" if done else None,
                                                                    logprobs=logprobs)]))
            if done:
                del self.running[rid]
                self.finished_at[rid] = len(self.batch_sizes) - 1
        return outputs

    def _first_position(self, ids: list[int]) -> dict[int, float]:
        """A verdict's top tokens: leaning to what the prompt asks ("lean yes"/"lean no"), else an
        unrelated token only."""
        text = self.tokenizer.decode(ids)
        yes = self.tokenizer.encode("yes", add_special_tokens=False)[0]
        no = self.tokenizer.encode("no", add_special_tokens=False)[0]
        if "lean yes" in text:
            return {yes: -0.1, no: -2.5}
        if "lean no" in text:
            return {yes: -2.5, no: -0.1}
        return {self.tokenizer.encode(" The", add_special_tokens=False)[0]: -0.1}


class StepLLM:
    """vLLM's `LLM` as the vllm teacher uses it with a recent vLLM: `get_tokenizer()` and
    `llm_engine` (a `StepEngine`); no `chat`, so only the fed-engine path can work."""

    tokenizer: Any = None  # set by the test (the real SmolLM2 tokenizer)
    max_num_seqs = 8
    step_seconds = 0.0

    def __init__(self, model: str, **kwargs: Any) -> None:
        self.model, self.kwargs = model, kwargs
        self.llm_engine = StepEngine(StepLLM.tokenizer, StepLLM.max_num_seqs, StepLLM.step_seconds)

    def get_tokenizer(self) -> Any:
        return StepLLM.tokenizer
