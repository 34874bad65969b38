"""The `vllm` teacher: vLLM's in-process engine on a GPU runner (imported only when chosen).

Continuous batching (issue 23 item 5): the engine is fed, not called. A thread owns vLLM's
`LLMEngine` (`LLM.llm_engine`): between two `step()`s it adds every request that arrived
(`add_request`), each step advances every running request by a token, and a finished request's
reply goes back to its leaf at once, so the leaf's next request enters while the others run. One
static `LLM.chat` call at a time instead ran until its longest sequence ended, new requests waiting
and the GPU idling in the call's tail. The prompt is the model's chat template rendered to text and
tokenized without adding special tokens a second time (what `LLM.chat` does; `add_generation_prompt`),
handed over as token ids. Each request keeps its own `SamplingParams` (its own seed).

An engine object without the step API (an old vLLM, or a test's stand-in with `LLM.chat` only)
gets the earlier path: one `LLM.chat` call at a time, each draining every request waiting.

Verdicts: a request with `choices` is one decoding step with `logprobs` (vllm_choices.py): the
choices' first-token probabilities go to `extra["choice_probs"]` and the most likely choice is the
text, as the transformers teacher does; only a request whose top tokens hold no choice is generated
as a text verdict (the fallback), with its own sampling settings.
"""

from __future__ import annotations

import asyncio
import itertools
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from labtax import models
from labtax.errors import UsageError
from labtax.teachers.base import TeacherBase, TeacherRequest, TeacherResponse, TeacherStats
from labtax.teachers.choices import token_ids
from labtax.teachers.vllm_choices import TOP_LOGPROBS, choice_probs
from labtax.util.redact import redact

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
        engine = getattr(self.llm, "llm_engine", None)
        steps = all(callable(getattr(engine, name, None)) for name in ("add_request", "step", "has_unfinished_requests"))
        self.feeder: EngineFeeder | None = EngineFeeder(engine) if steps else None

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    async def complete(self, requests: Sequence[TeacherRequest]) -> list[TeacherResponse]:
        if self.feeder is not None:
            return list(await asyncio.gather(*(self._one(r) for r in requests)))
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
        if self.feeder is not None:
            await asyncio.to_thread(self.feeder.close)

    # -- continuous batching: one request at a time into the fed engine --------------------------

    def _prompt(self, request: TeacherRequest) -> dict[str, Any]:
        text = self.tokenizer.apply_chat_template(request.as_messages(), tokenize=False, add_generation_prompt=True)
        return {"prompt_token_ids": list(self.tokenizer(str(text), add_special_tokens=False)["input_ids"])}

    async def _run(self, request: TeacherRequest, params: Any) -> Any:
        """The engine's finished output for one request (raises what the engine raised)."""
        assert self.feeder is not None
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()

        def done(output: Any, error: BaseException | None) -> None:
            def settle() -> None:
                if future.done():
                    return
                if error is not None:
                    future.set_exception(error)
                else:
                    future.set_result(output)
            loop.call_soon_threadsafe(settle)

        self.feeder.submit(self._prompt(request), params, done)
        return await future

    async def _one(self, request: TeacherRequest) -> TeacherResponse:
        try:
            if request.choices:
                verdict = self._verdict(request, await self._run(request, self._score_params(request)))
                if verdict is not None:
                    return verdict
            return self._text(await self._run(request, self._generate_params(request)))
        except (RuntimeError, ValueError) as exc:  # the text may quote a prompt
            return TeacherResponse("", ok=False, error=redact(f"generation failed: {exc}"))

    def stats(self) -> TeacherStats:
        if self.feeder is not None:
            return TeacherStats(counts=self.feeder.stats())
        calls = self.engine_calls
        return TeacherStats(counts={"engine_calls": len(calls), "requests_per_call_max": max(calls, default=0),
                                    "requests_per_call_mean": round(sum(calls) / len(calls), 2) if calls else 0.0})

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

    def _generate_params(self, r: TeacherRequest) -> Any:
        return self._vllm.SamplingParams(n=1, temperature=r.temperature, top_p=r.top_p, max_tokens=r.max_tokens,
                                         seed=r.seed, stop=list(r.stop) or None)

    def _score_params(self, r: TeacherRequest) -> Any:
        return self._vllm.SamplingParams(n=1, temperature=0.0, max_tokens=1, logprobs=TOP_LOGPROBS, seed=r.seed)

    @staticmethod
    def _text(out: Any) -> TeacherResponse:
        best = out.outputs[0]
        return TeacherResponse(text=best.text.strip(), prompt_tokens=len(out.prompt_token_ids or []),
                               completion_tokens=len(best.token_ids), finish_reason=best.finish_reason)

    def _generate(self, requests: Sequence[TeacherRequest]) -> list[TeacherResponse]:
        outputs = self._chat(requests, [self._generate_params(r) for r in requests])
        if isinstance(outputs, str):
            return [TeacherResponse("", ok=False, error=outputs) for _ in requests]
        return [self._text(out) for out in outputs]

    def _score(self, requests: Sequence[TeacherRequest]) -> list[TeacherResponse | None]:
        """One decoding step per verdict: P(choice) from the first position's logprobs; None where no
        choice was among the top tokens (the caller generates those as text)."""
        outputs = self._chat(requests, [self._score_params(r) for r in requests])
        if isinstance(outputs, str):
            return [TeacherResponse("", ok=False, error=outputs) for _ in requests]
        return [self._verdict(request, out) for request, out in zip(requests, outputs)]

    def _verdict(self, request: TeacherRequest, out: Any) -> TeacherResponse | None:
        ids = self._choice_ids.get(request.choices)
        if ids is None:
            ids = self._choice_ids[request.choices] = token_ids(self.tokenizer, request.choices)
        best = out.outputs[0]
        found = choice_probs((best.logprobs or [None])[0], ids, request.choices)
        if found is None:
            return None
        probs, mass = found
        return TeacherResponse(
            text=max(request.choices, key=lambda c: probs[c]), prompt_tokens=len(out.prompt_token_ids or []),
            completion_tokens=len(best.token_ids), finish_reason="stop",
            extra={"choice_probs": probs, "choice_mass": mass})


Done = Callable[[Any, "BaseException | None"], None]


class EngineFeeder:
    """A thread that owns vLLM's `LLMEngine`: new requests join between two steps, a finished one is
    handed back (`done(output, None)`) at once; an engine error fails the requests in it
    (`done(None, error)`) and the thread goes on with new ones."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self._inbox: queue.SimpleQueue[tuple[str, dict[str, Any], Any, Done] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._ids = itertools.count()
        self.steps = 0
        self.requests = 0
        self.peak_running = 0  # the most requests in the engine at once

    def submit(self, prompt: dict[str, Any], params: Any, done: Done) -> None:
        self._inbox.put((f"labtax-{next(self._ids)}", prompt, params, done))
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._serve, name="labtax-vllm-engine", daemon=True)
                self._thread.start()

    def _serve(self) -> None:
        running: dict[str, Done] = {}
        while True:
            # Block for work only when the engine has none; otherwise take what arrived and step.
            waiting = [self._inbox.get()] if not running else []
            while True:
                try:
                    waiting.append(self._inbox.get_nowait())
                except queue.Empty:
                    break
            for item in waiting:
                if item is None:
                    return
                request_id, prompt, params, done = item
                try:
                    self.engine.add_request(request_id, prompt, params)
                except (RuntimeError, ValueError) as exc:  # this request alone (a prompt too long)
                    done(None, exc)
                    continue
                running[request_id] = done
                self.requests += 1
            self.peak_running = max(self.peak_running, len(running))
            if not running:
                continue
            try:
                outputs = self.engine.step()
            except Exception as exc:  # noqa: BLE001 - every request in the engine fails with it
                for done in running.values():
                    done(None, RuntimeError(str(exc)))
                self._abort(list(running))  # so that the next step does not meet them again
                running.clear()
                continue
            self.steps += 1
            for out in outputs:
                if getattr(out, "finished", False) and out.request_id in running:
                    running.pop(out.request_id)(out, None)
            if running and not self.engine.has_unfinished_requests():
                for done in running.values():  # the engine dropped them: never wait forever
                    done(None, RuntimeError("the engine finished without an output"))
                running.clear()

    def _abort(self, request_ids: list[str]) -> None:
        abort = getattr(self.engine, "abort_request", None)
        if callable(abort) and request_ids:
            try:
                abort(request_ids)
            except Exception:  # noqa: BLE001, S110 - a broken engine: its requests are failed already
                pass

    def close(self) -> None:
        self._inbox.put(None)
        if self._thread is not None:
            self._thread.join(timeout=60)

    def stats(self) -> dict[str, Any]:
        return {"engine_steps": self.steps, "engine_requests": self.requests,
                "engine_running_max": self.peak_running}
