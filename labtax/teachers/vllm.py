"""The `vllm` teacher: vLLM's in-process engine on a GPU runner (imported only when chosen).

Prompts are rendered with the model's own chat template, then one `LLM.generate` call takes a whole
batch with one `SamplingParams` per request (each request keeps its own seed); vLLM schedules them
with continuous batching.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Sequence
from typing import Any

from labtax.errors import UsageError
from labtax.teachers.base import TeacherBase, TeacherRequest, TeacherResponse
from labtax.teachers.redact import redact


class VLLMTeacher(TeacherBase):
    batch_size = 64  # vLLM batches internally; callers hand it this many requests at a time

    def __init__(self, model: str = "embedded", **engine_kwargs: Any) -> None:
        try:
            import vllm
        except ImportError:
            raise UsageError("the vllm teacher needs the vllm package", hint="pip install 'labtax[vllm]'") from None
        from labtax import models

        path = model
        if model in (models.EMBEDDED, models.TINY):
            # The embedded model's Hugging Face directory (converted from the GGUF once).
            path = str(models.load_tokenizer(model).name_or_path)
        self.model_id = models.model_id(model) if model in (models.EMBEDDED, models.TINY) else f"vllm:{model}"
        self._vllm = vllm
        self.llm = vllm.LLM(model=path, **engine_kwargs)
        self.tokenizer = self.llm.get_tokenizer()
        # One generate() at a time, per event loop (a lock belongs to the loop it first waited in).
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    async def complete(self, requests: Sequence[TeacherRequest]) -> list[TeacherResponse]:
        async with self._locks.setdefault(asyncio.get_running_loop(), asyncio.Lock()):
            return await asyncio.to_thread(self._complete_sync, requests)

    async def aclose(self) -> None:
        return None

    def _complete_sync(self, requests: Sequence[TeacherRequest]) -> list[TeacherResponse]:
        prompts = [
            self.tokenizer.apply_chat_template(r.as_messages(), tokenize=False, add_generation_prompt=True)
            for r in requests
        ]
        params = [
            self._vllm.SamplingParams(
                n=1, temperature=r.temperature, top_p=r.top_p, max_tokens=r.max_tokens, seed=r.seed,
                stop=list(r.stop) or None,
            )
            for r in requests
        ]
        try:
            outputs = self.llm.generate(prompts, params, use_tqdm=False)
        except (RuntimeError, ValueError) as exc:  # each request fails alone; the text may quote a prompt
            return [TeacherResponse("", ok=False, error=redact(f"generation failed: {exc}")) for _ in requests]
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
