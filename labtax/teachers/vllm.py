"""The `vllm` teacher: vLLM's in-process engine on a GPU runner (imported only when chosen).

Requests go through `LLM.chat`, so the model's own chat template renders them and the prompt is
tokenized without adding special tokens a second time (rendering the template to text and passing
it to `generate` would put a second BOS in front of templates that already start with one). Each
request keeps its own `SamplingParams` (its own seed).

Batching across leaves: leaves run concurrently and each hands the teacher a few requests at a
time; one engine call at a time drains *everything* that is waiting, from every leaf, and the
requests that arrive while it runs form the next call. So the engine always gets the largest batch
there is, and the GPU does not idle between one leaf's stages while another leaf has work.

Verdicts: a request with `choices` is one decoding step with `logprobs` (vllm_choices.py): the
choices' first-token probabilities go to `extra["choice_probs"]` and the most likely choice is the
text, as the transformers teacher does; only a request whose top tokens hold no choice is generated
as a text verdict (the fallback), with its own sampling settings.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from labtax.errors import UsageError
from labtax.teachers.base import TeacherBase, TeacherRequest, TeacherResponse
from labtax.teachers.redact import redact

DTYPES = ("auto", "bfloat16", "float16", "float32")


@dataclass(frozen=True)
class VLLMEngineOptions:
    """The engine settings people pass to `vllm serve`, under the same names."""

    tensor_parallel_size: int = 1
    max_model_len: int | None = None  # None: the model's own context length
    gpu_memory_utilization: float = 0.9
    dtype: str = "auto"

    def __post_init__(self) -> None:
        if self.tensor_parallel_size < 1:
            raise UsageError("--tensor-parallel-size must be at least 1")
        if not 0.0 < self.gpu_memory_utilization <= 1.0:
            raise UsageError("--gpu-memory-utilization must be in (0, 1]")
        if self.max_model_len is not None and self.max_model_len < 16:
            raise UsageError("--max-model-len must be at least 16 tokens")
        if self.dtype not in DTYPES:
            raise UsageError(f"--dtype must be one of {', '.join(DTYPES)}")

    def as_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"tensor_parallel_size": self.tensor_parallel_size,
                                  "gpu_memory_utilization": self.gpu_memory_utilization, "dtype": self.dtype}
        if self.max_model_len is not None:
            kwargs["max_model_len"] = self.max_model_len
        return kwargs


class VLLMTeacher(TeacherBase):
    batch_size = 64  # what callers hand over at a time; the engine call drains every waiting request

    def __init__(self, model: str = "embedded", options: VLLMEngineOptions | None = None,
                 engine_module: Any = None) -> None:
        """`engine_module` is the `vllm` module (imported here when None); anything with its `LLM`
        and `SamplingParams` works."""
        if engine_module is None:
            try:
                import vllm
            except ImportError:
                raise UsageError("the vllm teacher needs the vllm package", hint="pip install 'labtax[vllm]'") from None
            engine_module = vllm
        from labtax import models

        path = model
        if model in models.NAMES:
            # The embedded model's Hugging Face directory (converted from the GGUF once).
            path = str(models.load_tokenizer(model).name_or_path)
        self.model_id = models.model_id(model) if model in models.NAMES else f"vllm:{model}"
        self.options = options or VLLMEngineOptions()
        self._vllm = engine_module
        self.llm = engine_module.LLM(model=path, **self.options.as_kwargs())
        self.tokenizer = self.llm.get_tokenizer()
        self._pending: list[tuple[TeacherRequest, asyncio.Future[TeacherResponse]]] = []
        self._drainer: asyncio.Task[None] | None = None
        self.engine_calls: list[int] = []  # requests per engine call (reported in stats)
        self._choice_ids: dict[tuple[str, ...], dict[str, list[int]]] = {}

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    async def complete(self, requests: Sequence[TeacherRequest]) -> list[TeacherResponse]:
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[TeacherResponse]] = [loop.create_future() for _ in requests]
        self._pending.extend(zip(requests, futures))
        if self._drainer is None or self._drainer.done() or self._drainer.get_loop() is not loop:
            self._drainer = loop.create_task(self._drain())
        return list(await asyncio.gather(*futures))

    async def _drain(self) -> None:
        """One engine call at a time, each taking every request waiting when it starts."""
        while self._pending:
            await asyncio.sleep(0)  # the other leaves' requests that are ready join this call
            batch, self._pending = self._pending, []
            try:
                responses = await asyncio.to_thread(self._complete_sync, [r for r, _ in batch])
            except Exception as exc:  # noqa: BLE001 - handed to the waiting leaves, never lost
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), response in zip(batch, responses):
                if not future.done():
                    future.set_result(response)

    async def aclose(self) -> None:
        return None

    def stats(self) -> dict[str, Any]:
        calls = self.engine_calls
        return {"engine_calls": len(calls), "requests_per_call_max": max(calls, default=0),
                "requests_per_call_mean": round(sum(calls) / len(calls), 2) if calls else 0.0}

    def _complete_sync(self, requests: Sequence[TeacherRequest]) -> list[TeacherResponse]:
        self.engine_calls.append(len(requests))
        out: list[TeacherResponse | None] = [None] * len(requests)
        verdicts = [i for i, r in enumerate(requests) if r.choices]
        for i, resp in zip(verdicts, self._score([requests[i] for i in verdicts])):
            out[i] = resp
        # Everything else, and a verdict whose top tokens held no choice (read from its text).
        rest = [i for i, r in enumerate(out) if r is None]
        for i, resp in zip(rest, self._generate([requests[i] for i in rest])):
            out[i] = resp
        return [r if r is not None else TeacherResponse("", ok=False, error="not generated") for r in out]

    def _chat(self, requests: Sequence[TeacherRequest], params: list[Any]) -> list[Any] | str:
        """LLM.chat's outputs, or the error text (each request then fails alone)."""
        if not requests:
            return []
        try:
            return list(self.llm.chat([r.as_messages() for r in requests], params, use_tqdm=False,
                                      add_generation_prompt=True))
        except (RuntimeError, ValueError) as exc:  # the text may quote a prompt
            return redact(f"generation failed: {exc}")

    def _generate(self, requests: Sequence[TeacherRequest]) -> list[TeacherResponse]:
        params = [
            self._vllm.SamplingParams(
                n=1, temperature=r.temperature, top_p=r.top_p, max_tokens=r.max_tokens, seed=r.seed,
                stop=list(r.stop) or None,
            )
            for r in requests
        ]
        outputs = self._chat(requests, params)
        if isinstance(outputs, str):
            return [TeacherResponse("", ok=False, error=outputs) for _ in requests]
        responses = []
        for out in outputs:
            best = out.outputs[0]
            responses.append(
                TeacherResponse(
                    text=best.text.strip(),
                    prompt_tokens=len(out.prompt_token_ids or []),
                    completion_tokens=len(best.token_ids),
                    finish_reason=best.finish_reason,
                )
            )
        return responses

    def _score(self, requests: Sequence[TeacherRequest]) -> list[TeacherResponse | None]:
        """One decoding step per verdict: P(choice) from the first position's logprobs; None where no
        choice was among the top tokens (the caller generates those as text)."""
        from labtax.teachers.choices import token_ids
        from labtax.teachers.vllm_choices import TOP_LOGPROBS, choice_probs

        params = [self._vllm.SamplingParams(n=1, temperature=0.0, max_tokens=1, logprobs=TOP_LOGPROBS, seed=r.seed)
                  for r in requests]
        outputs = self._chat(requests, params)
        if isinstance(outputs, str):
            return [TeacherResponse("", ok=False, error=outputs) for _ in requests]
        responses: list[TeacherResponse | None] = []
        for request, out in zip(requests, outputs):
            ids = self._choice_ids.get(request.choices)
            if ids is None:
                ids = self._choice_ids[request.choices] = token_ids(self.tokenizer, request.choices)
            best = out.outputs[0]
            found = choice_probs((best.logprobs or [None])[0], ids, request.choices)
            if found is None:
                responses.append(None)
                continue
            probs, mass = found
            responses.append(TeacherResponse(
                text=max(request.choices, key=lambda c: probs[c]), prompt_tokens=len(out.prompt_token_ids or []),
                completion_tokens=len(best.token_ids), finish_reason="stop",
                extra={"choice_probs": probs, "choice_mass": mass}))
        return responses
