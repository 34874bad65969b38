"""The `transformers` teacher: in-process generation with a local Hugging Face model, continuously batched.

`embedded` (the default teacher) is Qwen2.5-Coder-1.5B-Instruct from `labtax.models`,
`embedded-small` SmolLM2-135M-Instruct; any local model directory works too. Generation requests
join one continuous batch (decode.py): `batch_size` slots decode together, a finished row's slot is
refilled at once with the next waiting request, and calls that arrive meanwhile (other leaves, the
next stage of a leaf) join as slots free; each call is answered when its last request ends. The
generation runs in a worker thread so the event loop stays responsive (progress, a ledger writing
rows).

On the machine that runs (labtax/compute.py): the dtype (bf16 with bf16 matrix hardware, else
measured; `dtype=` overrides), the batch width (`batch_size=None`: measured, cached) and the threads
(`threads=`, else $LABTAX_TORCH_THREADS, else `models.choose_threads()`: the cores the load leaves
free; on a shared CPU one thread is several times faster than two oversubscribed ones). The KV cache
is kept within `kv_budget_gib` ($LABTAX_TEACHER_KV_GIB, default 1 GiB) by narrowing the batch.

Verdicts: a request with `choices` is not generated at all. One forward pass over the prompt gives the
next-token distribution; the probability mass on each choice's tokens, normalised, is the answer
(`extra["choice_probs"]`, and the most likely choice as the text). That is one pass instead of a
generation of up to max_tokens steps, and a prompt prefix shared by a batch (a leaf's judge prompts,
calibration copies) is computed once (prefix.py).

Sampling seeds: each request draws from its own generator seeded with its seed (`_Picker`, the
arithmetic of teachers/sampling.py row by row), so a request's text does not depend on the other requests of its batch: a leaf's samples are the same
whichever leaves share its batches.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
import weakref
from collections.abc import Sequence
from typing import Any

from labtax import compute, models
from labtax.models import render_chat
from labtax.progress import count_generation, note
from labtax.teachers import choices as choice_tokens
from labtax.teachers import decode, prefix
from labtax.teachers.base import TeacherBase, TeacherRequest, TeacherResponse, TeacherStats
from labtax.util.redact import redact

# Prompt tokens one verdict forward pass computes at most (rows x the longest prompt): bounds the
# activations (an fp32 1.5B MLP holds 36 KB a token in each of its two 8960-wide tensors).
VERDICT_TOKENS = 4096


class _Call:
    """One `complete` call being served: its responses fill in as its rows end."""

    def __init__(self, requests: list[TeacherRequest], future: asyncio.Future[list[TeacherResponse]],
                 loop: asyncio.AbstractEventLoop) -> None:
        self.requests, self.future, self.loop = requests, future, loop
        self.responses: list[TeacherResponse | None] = [None] * len(requests)
        self.left = len(requests)

    def answer(self, k: int, response: TeacherResponse) -> None:
        """Record request k's response; resolve the caller's future once every request has one."""
        if self.responses[k] is None:
            self.left -= 1
        self.responses[k] = response
        if self.left == 0:
            done = [r if r is not None else TeacherResponse("", ok=False, error="not generated")
                    for r in self.responses]
            self.loop.call_soon_threadsafe(_resolve, self.future, done)

    def fail(self, error: BaseException) -> None:
        self.loop.call_soon_threadsafe(_reject, self.future, error)


def _resolve(future: asyncio.Future[list[TeacherResponse]], value: list[TeacherResponse]) -> None:
    if not future.done():
        future.set_result(value)


def _reject(future: asyncio.Future[list[TeacherResponse]], error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)


class _Queue:
    def __init__(self) -> None:
        self.pending: list[_Call] = []
        self.lock = threading.Lock()  # `pending` is read by the generating thread too
        self.worker: asyncio.Task[None] | None = None

    def take(self) -> list[_Call]:
        with self.lock:
            calls, self.pending = self.pending, []
        return calls


class _Picker:
    """The next token of each row: argmax for greedy rows; a sampled row draws from its own generator
    (seeded with its request's seed) with its own temperature and top-p, the same arithmetic as
    `PerRequestSampler.pick` row by row, so rows with different settings share one batch."""

    def __init__(self, device: Any) -> None:
        self.device = device
        self.sampled: dict[int, tuple[float, float, Any]] = {}

    def add(self, row: int, request: TeacherRequest) -> None:
        if request.temperature > 0:
            import torch

            generator = torch.Generator(device=self.device).manual_seed(int(request.seed))
            self.sampled[row] = (request.temperature, request.top_p, generator)

    def __call__(self, logits: Any, rows: list[int]) -> Any:
        import torch

        chosen = logits.argmax(dim=-1)
        for k, row in enumerate(rows):
            if row in self.sampled:
                temperature, top_p, generator = self.sampled[row]
                chosen[k] = _draw(logits[k], temperature, top_p, generator)
        return chosen if isinstance(chosen, torch.Tensor) else torch.tensor(chosen)


def _draw(row: Any, temperature: float, top_p: float, generator: Any) -> Any:
    import torch

    logits = row[None, :].float() / temperature
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        probs = torch.softmax(sorted_logits, dim=-1)
        # Keep the smallest prefix whose mass reaches top_p (always the first token).
        remove = probs.cumsum(dim=-1) - probs >= top_p
        sorted_logits = sorted_logits.masked_fill(remove, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    return torch.multinomial(torch.softmax(logits, dim=-1)[0], 1, generator=generator)[0]


class TransformersTeacher(TeacherBase):
    def __init__(
        self,
        model: str = "embedded",
        *,
        batch_size: int | None = None,
        dtype: Any = None,
        threads: int | None = None,
        device: str | None = None,
        kv_budget_gib: float | None = None,
    ) -> None:
        import torch

        threads = threads or models.choose_threads()
        # Process-wide. On a shared or small CPU one thread per process beats oversubscription by far
        # (measured here: 8 tokens/s with 1 thread, 1.3 with 2 threads on 2 busy cores).
        torch.set_num_threads(threads)
        self.threads = threads
        self.name = model
        self.model_id = models.model_id(model)
        self.tokenizer = models.load_tokenizer(model)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        # A GPU when there is one (a self-hosted runner), else the CPU; `device=` overrides.
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        shape = models.mlp_shape(model)
        self.choice_file = compute.choice_file(models.weights_dir(model))
        if isinstance(dtype, torch.dtype):
            self.dtype = compute.DtypeChoice(str(dtype).removeprefix("torch."), "asked for")
        else:
            # bf16 on bf16 matrix hardware; else the fastest of fp32, bf16 and bf16 weights with fp32
            # compute that a short measurement finds (cached) among those whose weights fit the memory
            # budget: on an AVX2 CPU the 1.5B teacher gets bf16-fp32 (fp32 weights alone are 6.2 GB).
            self.dtype = compute.choose_for(model, self.device, threads, requested=dtype)
        # Loaded in the weights' dtype (the embedded cache is bf16; fp32 widens tensor by tensor),
        # never two whole copies; bf16-fp32 widens each Linear's weight chunk by chunk as it runs.
        self.model = compute.load(model, self.dtype, threads=threads, device=self.device)

        self.kv_token_bytes = decode.kv_bytes_per_token(self.model)
        gib = kv_budget_gib if kv_budget_gib is not None else float(os.environ.get("LABTAX_TEACHER_KV_GIB") or 1.0)
        self.kv_budget = int(gib * (1 << 30))
        self.batch_size = max(1, batch_size) if batch_size else self._measured_width(shape)
        note(f"teacher {model}: {compute.describe(self.dtype)}, {threads} thread(s), batch width "
             f"{self.batch_size}", level=2)
        self._choice_ids: dict[tuple[str, ...], dict[str, list[int]]] = {}
        self._counts: dict[str, dict[str, Any]] = {}
        # What ends a row: the tokenizer's end-of-sequence, the model's (generation config) and padding.
        ends = getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)
        self._eos = {int(t) for t in ([ends] if isinstance(ends, int) else list(ends or []))}
        self._eos |= {int(t) for t in (self.tokenizer.eos_token_id, self.tokenizer.pad_token_id) if t is not None}
        # Per event loop: the calls waiting to be generated, and the task that generates them.
        self._queues: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Queue] = weakref.WeakKeyDictionary()

    def _measured_width(self, shape: tuple[int, int]) -> int:
        """The decode batch width with the most tokens per second on this machine, measured once (a
        few decode steps at widths 4..64, well under a minute for the 1.5B teacher) and cached."""
        key = f"width-{compute.read_cpuinfo().key(self.threads)}-{self.model_id}-{self.dtype.name}-{self.device}"
        known = compute.recall(self.choice_file, key)
        if isinstance(known.get("width"), int) and known["width"] > 0:
            return int(known["width"])
        if self.device != "cpu":
            return 32
        note(f"teacher {self.name}: measuring the fastest batch width on this machine (once)")
        import torch

        with torch.inference_mode():
            width, rates = compute.choose_width(lambda w: decode.step_seconds(self.model, w, self.device))
        compute.remember(self.choice_file, key, width=width, tokens_per_s=rates)
        compute.remember_rate(self.model_id, decode_tokens_per_s=max(rates.values()), threads=self.threads)
        return width

    def __repr__(self) -> str:
        return f"TransformersTeacher(model={self.name!r}, batch_size={self.batch_size})"

    def count_tokens(self, text: str) -> int:
        """The teacher's own token count: knowledge chunking budgets in these tokens."""
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def render(self, request: TeacherRequest) -> str:
        return render_chat(self.tokenizer, request.as_messages(), add_generation_prompt=True)

    async def complete(self, requests: Sequence[TeacherRequest]) -> list[TeacherResponse]:
        """Queue the requests; they join the generation already running as soon as a slot is free
        (continuous batching), so callers that send one request per call (a ledger wrapper, several
        leaves at once) still fill the batch."""
        if not requests:
            return []
        loop = asyncio.get_running_loop()
        queue = self._queues.setdefault(loop, _Queue())
        future: asyncio.Future[list[TeacherResponse]] = loop.create_future()
        with queue.lock:
            queue.pending.append(_Call(list(requests), future, loop))
        if queue.worker is None or queue.worker.done():
            queue.worker = loop.create_task(self._drain(queue))
        return await future

    async def _drain(self, queue: _Queue) -> None:
        """Serve everything queued, one thread at a time (torch already uses every core it is given)."""
        while queue.pending:
            await asyncio.sleep(0)  # calls made in the same tick as the first one start together
            await asyncio.to_thread(self._serve, queue)

    async def aclose(self) -> None:
        return None

    def complete_sync(self, requests: Sequence[TeacherRequest]) -> list[TeacherResponse]:
        """Generate every request at once, outside an event loop (benchmarks, tools); answers in order."""

        async def run() -> list[TeacherResponse]:
            return await self.complete(requests)

        return asyncio.run(run())

    def _serve(self, queue: _Queue) -> None:
        """Verdicts are scored as their calls arrive; generation requests run in one continuous batch
        that takes newly queued calls whenever a slot is free; each call is answered when its last
        request ends."""
        import torch

        serving = _Serving(self, queue)
        first = serving.more()
        longest = max((len(r.ids) + r.max_new for r in first), default=1024) + decode.TRIM + decode.GROW
        # The KV cache within its budget: slots x (longest prompt + its tokens) x bytes a token.
        width = max(1, min(self.batch_size, self.kv_budget // max(1, self.kv_token_bytes * longest)))
        stats: dict[str, int] = {}
        t0 = time.monotonic()
        try:
            with torch.inference_mode():
                decode.generate(self.model, first, eos=self._eos, pick=serving.picker, text_of=serving.text_of,
                                batch_size=width, device=self.device, tick=lambda n, t: count_generation(n, t),
                                more=serving.more, on_done=serving.done, stats=stats)
        except (RuntimeError, ValueError) as exc:
            serving.answer_unanswered(redact(f"generation failed: {exc}"))
        except BaseException as exc:  # handed to every waiting caller, then raised
            for call in serving.touched:
                call.fail(exc)
            raise
        if serving.rows:
            self._account("generation", t0, serving.rows, serving.prompt_tokens, stats.get("computed", 0),
                          serving.new_tokens)

    def _verdicts(self, call: _Call, ids: list[list[int]], members: list[int], choices: tuple[str, ...]) -> None:
        """Score one call's verdict requests with these choices: sorted by token ids, so prompts that
        share a prefix (a leaf's judge prompts, calibration copies of one seed) share a batch and
        compute that prefix once (prefix.py)."""
        lengths = [len(x) for x in ids]
        members = sorted(members, key=lambda i: (ids[i], i))
        longest = max(lengths[i] for i in members)
        # The measured decode width (64 for the 1.5B here) is too wide for whole prompts: 64 rows of
        # 800 tokens are a 2.9 GB fp32 cache and 1.8 GB per MLP activation. Rows are bounded by the KV
        # budget and by VERDICT_TOKENS tokens a forward pass (already wide enough for full-speed matmuls).
        width = max(1, min(self.batch_size, self.kv_budget // max(1, self.kv_token_bytes * longest),
                           VERDICT_TOKENS // max(1, longest)))
        for batch, shared in prefix.plan_batches(ids, members, width):
            t0 = time.monotonic()
            for k, resp in zip(batch, self._score([ids[i] for i in batch], shared, choices)):
                call.answer(k, resp)
            computed = shared + sum(lengths[i] - shared for i in batch)
            self._account("verdicts", t0, len(batch), sum(lengths[i] for i in batch), computed, 0)
            count_generation(len(batch), 0)

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

    def stats(self) -> TeacherStats:
        return TeacherStats(counts={"time": {k: {**v, "seconds": round(v["seconds"], 2)}
                                             for k, v in self._counts.items()}})

    def _score(self, rows: list[list[int]], shared: int, choices: tuple[str, ...]) -> list[TeacherResponse]:
        """One forward pass (the first `shared` tokens once for every row): P(choice) from the
        distribution of the token after each prompt."""
        import torch

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


class _Serving:
    """One `_serve` run: the calls it took from the queue, which call and request each generated row
    answers, and the run's counts. `more` takes newly queued calls (verdicts scored at once, the
    rest as rows for the continuous batch), `done` answers a row's request when it ends."""

    def __init__(self, teacher: TransformersTeacher, queue: _Queue) -> None:
        self.teacher, self.queue = teacher, queue
        self.picker = _Picker(teacher.device)
        self.touched: list[_Call] = []  # every call taken, answered or failed together on an error
        self.owners: list[tuple[_Call, int]] = []  # row -> (its call, its request's index there)
        self.prompt_ids: list[list[int]] = []  # row -> its prompt's token ids
        self.rows = self.prompt_tokens = self.new_tokens = 0

    def more(self) -> list[decode.Row]:
        """The rows of the calls queued since the last look (their verdicts scored here and now)."""
        rows: list[decode.Row] = []
        for call in self.queue.take():
            rows += self._admit(call)
        self.prompt_ids.extend(r.ids for r in rows)
        return rows

    def _admit(self, call: _Call) -> list[decode.Row]:
        teacher = self.teacher
        self.touched.append(call)
        prompts = [teacher.render(r) for r in call.requests]
        ids = [list(x) for x in teacher.tokenizer(prompts, add_special_tokens=False)["input_ids"]]
        scored: dict[tuple[str, ...], list[int]] = {}
        rows: list[decode.Row] = []
        for k, r in enumerate(call.requests):
            if r.choices:
                scored.setdefault(r.choices, []).append(k)
                continue
            self.picker.add(len(self.owners), r)
            self.owners.append((call, k))
            rows.append(decode.Row(ids[k], r.max_tokens, tuple(r.stop)))
            self.rows += 1
            self.prompt_tokens += len(ids[k])
        for choices, members in sorted(scored.items()):
            teacher._verdicts(call, ids, members, choices)
        return rows

    def text_of(self, tokens: list[int]) -> str:
        return str(self.teacher.tokenizer.decode(tokens, skip_special_tokens=True))

    def done(self, i: int, out: decode.Generated) -> None:
        """Row i ended: its text up to the first stop string answers its request."""
        call, k = self.owners[i]
        request = call.requests[k]
        text, finish = self.text_of(out.tokens), out.finish
        for stop in request.stop:
            if stop in text:
                text, finish = text[: text.index(stop)], "stop"
        self.new_tokens += len(out.tokens)
        call.answer(k, TeacherResponse(text=text.strip(), prompt_tokens=len(self.prompt_ids[i]),
                                       completion_tokens=len(out.tokens), finish_reason=finish))

    def answer_unanswered(self, error: str) -> None:
        """Generation failed: every request still without an answer gets `error` (not ok)."""
        for call in self.touched:
            for k, resp in enumerate(call.responses):
                if resp is None:
                    call.answer(k, TeacherResponse("", ok=False, error=error))
