"""The `transformers` teacher: in-process batched generation with a local Hugging Face model.

`embedded` (the default teacher) is Qwen2.5-Coder-1.5B-Instruct from `labtax.models` (bf16),
`embedded-small` SmolLM2-135M-Instruct; any local model directory works too. Requests are grouped by
sampling parameters and generated `batch_size` at a time by labtax's own loop (decode.py): each
prompt prefilled at its own length, no padding computed, and a row leaves the batch when it ends (end
of sequence, a stop string, its token budget). Generation runs in a worker thread so the event
loop stays responsive (progress bars, a ledger writing rows). Calls that arrive together (a wrapper
that sends one request per call, several leaves generated at once) are merged into shared batches.

Threads: `threads=` (else $LABTAX_TORCH_THREADS, else `models.choose_threads()`: the cores the load
leaves free) sets torch's thread count for the process; on a shared CPU one thread is several times
faster than two oversubscribed ones.

Verdicts: a request with `choices` is not generated at all. One forward pass over the prompt gives the
next-token distribution; the probability mass on each choice's tokens, normalised, is the answer
(`extra["choice_probs"]`, and the most likely choice as the text). That is one pass instead of a
generation of up to max_tokens steps, and a prompt prefix shared by a batch (a leaf's judge prompts,
calibration copies) is computed once (prefix.py).

Sampling seeds: each request draws from its own generator seeded with its seed (teachers/sampling.py),
so a request's text does not depend on the other requests of its batch: a leaf's samples are the same
whichever leaves share its batches.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from labtax.teachers import prefix
from labtax.teachers.base import TeacherBase, TeacherRequest, TeacherResponse
from labtax.teachers.redact import redact


class _Queue:
    def __init__(self) -> None:
        self.pending: list[tuple[list[TeacherRequest], asyncio.Future[list[TeacherResponse]]]] = []
        self.worker: asyncio.Task[None] | None = None


class TransformersTeacher(TeacherBase):
    def __init__(
        self,
        model: str = "embedded",
        *,
        batch_size: int = 8,
        dtype: Any = None,
        threads: int | None = None,
        device: str | None = None,
    ) -> None:
        from labtax import models

        threads = threads or models.choose_threads()
        # Process-wide. On a shared or small CPU one thread per process beats oversubscription by far
        # (measured here: 8 tokens/s with 1 thread, 1.3 with 2 threads on 2 busy cores).
        import torch

        torch.set_num_threads(threads)
        self.threads = threads

        self.name = model
        self.batch_size = max(1, batch_size)
        self.model_id = models.model_id(model)
        self.tokenizer = models.load_tokenizer(model)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        import torch

        # A GPU when there is one (a self-hosted runner), else the CPU; `device=` overrides.
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        if dtype is None and self.device == "cpu" and os.environ.get("LABTAX_TEACHER_DTYPE") != "bf16":
            # The bf16 cache is computed in fp32 on a CPU: without native bf16 (AVX2) a bf16 matmul ran
            # at 10.6 GFLOPS against 77 for fp32 here, one thread; decoding was no faster in bf16 either.
            dtype = torch.float32
        self.model = models.load_model(model, dtype=dtype).to(self.device)  # type: ignore[arg-type]
        self._choice_ids: dict[tuple[str, ...], dict[str, list[int]]] = {}
        self._counts: dict[str, dict[str, Any]] = {}
        # What ends a row: the tokenizer's end-of-sequence, the model's (generation config) and padding.
        ends = getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)
        self._eos = {int(t) for t in ([ends] if isinstance(ends, int) else list(ends or []))}
        self._eos |= {int(t) for t in (self.tokenizer.eos_token_id, self.tokenizer.pad_token_id) if t is not None}
        # Per event loop: the calls waiting to be generated, and the task that generates them.
        self._queues: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Queue] = weakref.WeakKeyDictionary()

    def __repr__(self) -> str:
        return f"TransformersTeacher(model={self.name!r}, batch_size={self.batch_size})"

    def count_tokens(self, text: str) -> int:
        """The teacher's own token count: knowledge chunking budgets in these tokens."""
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def render(self, request: TeacherRequest) -> str:
        from labtax.models import render_chat

        return render_chat(self.tokenizer, request.as_messages(), add_generation_prompt=True)

    async def complete(self, requests: Sequence[TeacherRequest]) -> list[TeacherResponse]:
        """Queue the requests; concurrent calls are generated together, so callers that send one
        request per call (a ledger wrapper, several leaves at once) still fill whole batches."""
        if not requests:
            return []
        loop = asyncio.get_running_loop()
        queue = self._queues.setdefault(loop, _Queue())
        future: asyncio.Future[list[TeacherResponse]] = loop.create_future()
        queue.pending.append((list(requests), future))
        if queue.worker is None or queue.worker.done():
            queue.worker = loop.create_task(self._drain(queue))
        return await future

    async def _drain(self, queue: _Queue) -> None:
        """Generate everything queued, one thread call at a time (torch already uses every core)."""
        while queue.pending:
            await asyncio.sleep(0)  # calls made in the same tick as the first one join its batch
            jobs, queue.pending = queue.pending, []
            flat = [r for reqs, _ in jobs for r in reqs]
            try:
                out = await asyncio.to_thread(self.complete_sync, flat)
            except Exception as exc:  # noqa: BLE001 - handed to every waiting caller
                for _, future in jobs:
                    if not future.done():
                        future.set_exception(exc)
                continue
            start = 0
            for reqs, future in jobs:
                if not future.done():
                    future.set_result(out[start : start + len(reqs)])
                start += len(reqs)

    async def aclose(self) -> None:
        return None

    def complete_sync(self, requests: Sequence[TeacherRequest]) -> list[TeacherResponse]:
        """Generate every request, `batch_size` prompts per forward pass; answers in request order."""
        prompts = [self.render(r) for r in requests]
        ids: list[list[int]] = [list(x) for x in self.tokenizer(prompts, add_special_tokens=False)["input_ids"]]
        lengths = [len(x) for x in ids]
        groups: dict[tuple[int, float, float], list[int]] = {}
        scored: dict[tuple[str, ...], list[int]] = {}
        for i, r in enumerate(requests):
            if r.choices:
                scored.setdefault(r.choices, []).append(i)
            else:
                groups.setdefault((r.max_tokens, r.temperature, r.top_p), []).append(i)
        out: list[TeacherResponse | None] = [None] * len(requests)
        for choices, members in sorted(scored.items()):
            # Verdicts: sorted by token ids, so prompts that share a prefix (a leaf's judge prompts,
            # calibration copies of one seed) share a batch and compute that prefix once (prefix.py).
            members.sort(key=lambda i: (ids[i], i))
            for batch, shared in prefix.plan_batches(ids, members, self.batch_size):
                t0 = time.monotonic()
                for i, resp in zip(batch, self._score([ids[i] for i in batch], shared, choices)):
                    out[i] = resp
                computed = shared + sum(lengths[i] - shared for i in batch)
                self._account("verdicts", t0, len(batch), sum(lengths[i] for i in batch), computed, 0)
        for (max_tokens, temperature, top_p), members in sorted(groups.items()):
            # Stable sort by length: deterministic batches with little padding.
            members.sort(key=lambda i: (lengths[i], i))
            for start in range(0, len(members), self.batch_size):
                batch = members[start : start + self.batch_size]
                t0 = time.monotonic()
                texts = self._generate([ids[i] for i in batch], [requests[i] for i in batch],
                                       max_tokens, temperature, top_p)
                prompt = sum(lengths[i] for i in batch)
                self._account("generation", t0, len(batch), prompt, prompt, sum(r.completion_tokens for r in texts))
                for i, resp in zip(batch, texts):
                    out[i] = resp
        return [r if r is not None else TeacherResponse("", ok=False, error="not generated") for r in out]

    def _account(self, kind: str, t0: float, rows: int, prompt: int, computed: int, new: int) -> None:
        """Where the teacher's time goes (stats(), and one line per batch on stderr with
        $LABTAX_TEACHER_TRACE): rows, prompt tokens, prompt tokens actually computed (a shared
        prefix once), generated tokens, seconds."""
        seconds = time.monotonic() - t0
        c = self._counts.setdefault(kind, {"batches": 0, "rows": 0, "prompt_tokens": 0, "computed_tokens": 0,
                                           "new_tokens": 0, "seconds": 0.0})
        for key, n in (("batches", 1), ("rows", rows), ("prompt_tokens", prompt), ("computed_tokens", computed),
                       ("new_tokens", new), ("seconds", seconds)):
            c[key] += n
        if os.environ.get("LABTAX_TEACHER_TRACE"):
            print(f"teacher {kind}: {rows} rows, {prompt} prompt tokens ({computed} computed), {new} new, "
                  f"{seconds:.1f}s", file=sys.stderr, flush=True)

    def stats(self) -> dict[str, Any]:
        return {"time": {k: {**v, "seconds": round(v["seconds"], 2)} for k, v in self._counts.items()}}

    def _score(self, rows: list[list[int]], shared: int, choices: tuple[str, ...]) -> list[TeacherResponse]:
        """One forward pass (the first `shared` tokens once for every row): P(choice) from the
        distribution of the token after each prompt."""
        import torch

        from labtax.teachers import choices as choice_tokens

        ids = self._choice_ids.get(choices)
        if ids is None:
            ids = self._choice_ids[choices] = choice_tokens.token_ids(self.tokenizer, choices)
        with torch.inference_mode():
            try:
                logits = prefix.last_token_logits(self.model, rows, shared, self.tokenizer.pad_token_id, self.device)
            except (RuntimeError, ValueError) as exc:
                return [TeacherResponse("", ok=False, error=f"scoring failed: {exc}") for _ in rows]
            probs = torch.softmax(logits.float(), dim=-1)
        responses = []
        for row, tokens in zip(probs, rows):
            mass = {c: float(row[ids[c]].sum()) if ids[c] else 0.0 for c in choices}
            normalised = choice_tokens.normalise(mass)
            if normalised is None:
                responses.append(TeacherResponse("", ok=True, prompt_tokens=len(tokens), finish_reason="stop"))
                continue
            best = max(choices, key=lambda c: normalised[c])
            responses.append(
                TeacherResponse(
                    text=best, prompt_tokens=len(tokens), completion_tokens=0, finish_reason="stop",
                    extra={"choice_probs": normalised, "choice_mass": round(sum(mass.values()), 6)},
                )
            )
        return responses

    def _generate(self, rows: list[list[int]], requests: list[TeacherRequest], max_tokens: int,
                  temperature: float, top_p: float) -> list[TeacherResponse]:
        """Generate a batch with labtax's own loop (decode.py: prompts unpadded, finished rows leave the
        batch, stop strings end a row); sampling per request (sampling.py), greedy at temperature 0."""
        import torch

        from labtax.teachers import decode
        from labtax.teachers.sampling import PerRequestSampler

        pick: Callable[[torch.Tensor, Sequence[int]], torch.Tensor]
        if temperature > 0:
            pick = PerRequestSampler([r.seed for r in requests], temperature, top_p, self.device).pick
        else:
            def pick(logits: torch.Tensor, active: Sequence[int]) -> torch.Tensor:
                return logits.argmax(dim=-1)

        def text_of(tokens: list[int]) -> str:
            return str(self.tokenizer.decode(tokens, skip_special_tokens=True))

        todo = [decode.Row(ids, max_tokens, tuple(r.stop)) for ids, r in zip(rows, requests)]
        with torch.inference_mode():
            try:
                generated = decode.generate(self.model, todo, eos=self._eos, pick=pick, text_of=text_of,
                                            batch_size=self.batch_size, device=self.device)
            except (RuntimeError, ValueError) as exc:
                return [TeacherResponse("", ok=False, error=redact(f"generation failed: {exc}")) for _ in rows]
        responses = []
        for out, request, ids in zip(generated, requests, rows):
            text, finish = text_of(out.tokens), out.finish
            for stop in request.stop:
                if stop in text:
                    text, finish = text[: text.index(stop)], "stop"
            responses.append(TeacherResponse(text=text.strip(), prompt_tokens=len(ids),
                                             completion_tokens=len(out.tokens), finish_reason=finish))
        return responses
