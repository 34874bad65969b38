"""The `openai` teacher: any OpenAI-compatible server (vLLM `vllm serve`, llama.cpp server, Ollama).

- Chat (`/v1/chat/completions`, default) or completions (`/v1/completions`, `completions=True`). For
  completions the messages are rendered with `render_plain_prompt` (below), a model-neutral layout
  that ends with "### Assistant:\n" and stops at the next "### User:".
- At most `concurrency` requests in flight (a semaphore, and a connection pool of the same size).
  A slot is held only while an attempt is on the wire: a request sleeping through its back-off
  leaves its slot to the others.
- Several endpoints: each request goes to the endpoint with the fewest outstanding requests (ties
  rotate), so one slow server does not hold back the others: this is how generation scales out over
  many vLLM servers. An endpoint that refuses connections (or cannot be resolved or routed to) leaves
  the rotation for a back-off period (ENDPOINT_BACKOFF_S, doubling per failure up to
  MAX_ENDPOINT_BACKOFF_S); then one probe request at a time tries it again, and the first success
  brings it back. The request that met the refusal goes straight to a live endpoint. When every
  endpoint is out, requests go on trying them with their own back-off, as with a single endpoint.
- A reply body is read up to `max_reply_bytes` (MAX_REPLY_BYTES): a larger one fails its row with
  that reason, and never holds more than the cap in memory.
- Retries with exponential back-off and full jitter on connection errors, timeouts, 408/429/5xx and
  malformed bodies; a `Retry-After` header (seconds or an HTTP date) is honoured. A per-request
  timeout covers the whole exchange. After the retries, the request fails alone: its response has
  `ok=False` and the pipeline counts it; the run goes on.
- The API key is read from the environment variable named by `api_key_env` and only ever placed in
  the Authorization header: never in an error message, a log line or the repr.
- A request with `choices` (a verdict) also asks for `logprobs` with the top TOP_LOGPROBS tokens per
  position (vLLM, llama.cpp server and OpenAI return them); the choices' probabilities are read from
  the first answer positions into `extra["choice_probs"]`. A server that refuses the parameter (a 400
  once logprobs were asked) is asked again without, and from then on only for text.
- `count_tokens`: the server's `POST /tokenize` (vLLM's), else the words x 1.3 estimate (tokenize.py).
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import os
import random
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Sequence
from typing import Any

import aiohttp

from labtax.errors import TeacherError, UsageError
from labtax.teachers.base import TeacherBase, TeacherRequest, TeacherResponse, TeacherStats
from labtax.teachers.choices import from_top_logprobs
from labtax.teachers.replies import clean_fields
from labtax.teachers.tokenize import ESTIMATE, ServerTokenizer
from labtax.util.redact import redact, register_secret

RETRY_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
MAX_BACKOFF_S = 30.0
MAX_RETRY_AFTER_S = 120.0
PLAIN_STOP = "### User:"
TOP_LOGPROBS = 20
# A reply holds one answer of at most max_tokens tokens (plus top-20 logprobs per token for a
# verdict): well under a MiB. 16 MiB leaves room for any real one; a server streaming 100 MB of
# garbage costs at most this per request in flight (100 MB replies at concurrency 4 took 738 MB).
MAX_REPLY_BYTES = 16 * 2**20
ENDPOINT_BACKOFF_S = 1.0
MAX_ENDPOINT_BACKOFF_S = 60.0


def normalize_endpoint(url: str) -> str:
    """An endpoint is a base URL as OpenAI clients take it; a bare host gets `/v1` appended."""
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise UsageError(f"endpoint {url!r} is not an http(s) URL")
    _host, _, path = url.partition("://")[2].partition("/")
    return url if path else f"{url}/v1"


def render_plain_prompt(messages: Sequence[tuple[str, str]]) -> str:
    """Messages as one completions prompt: '### System:', '### User:', '### Assistant:' sections."""
    parts = [f"### {role.capitalize()}:\n{content.strip()}\n" for role, content in messages]
    return "\n".join(parts) + "\n### Assistant:\n"


def _retry_after_seconds(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, min(float(value), MAX_RETRY_AFTER_S))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, min(when.timestamp() - time.time(), MAX_RETRY_AFTER_S))


class _Retryable(Exception):
    """One failed attempt worth retrying; `retry_after` is the server's hint, if any."""

    def __init__(self, reason: str, retry_after: float | None = None, unreachable: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.unreachable = unreachable  # why the endpoint could not be reached at all


class OpenAITeacher(TeacherBase):
    """An async client for one or more OpenAI-compatible endpoints. See the module docstring."""

    def __init__(
        self,
        endpoints: Sequence[str],
        *,
        model: str | None = None,
        api_key_env: str | None = None,
        concurrency: int = 16,
        timeout: float = 120.0,
        completions: bool = False,
        max_retries: int = 6,
        backoff_base: float = 0.5,
        max_reply_bytes: int = MAX_REPLY_BYTES,
    ) -> None:
        if not endpoints:
            raise UsageError("the openai teacher needs at least one --endpoint URL")
        if concurrency < 1:
            raise UsageError("--concurrency must be at least 1")
        self.endpoints = [normalize_endpoint(e) for e in endpoints]
        self.concurrency = concurrency
        self.timeout = timeout
        self.completions = completions
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.max_reply_bytes = max_reply_bytes
        self.endpoint_backoff = ENDPOINT_BACKOFF_S
        self._api_key: str | None = None
        if api_key_env:
            key = os.environ.get(api_key_env)
            if not key:
                raise UsageError(f"environment variable {api_key_env} (the API key) is not set or empty")
            self._api_key = key
            register_secret(key)  # every later error text, report and log line hides it
        self.model = self._resolve_model(model)
        self.model_id = f"openai:{self.model}"
        self.outstanding = [0] * len(self.endpoints)
        # Refused connections per endpoint in a row, and until when (time.monotonic) it is out.
        self._refused = [0] * len(self.endpoints)
        self._out_until = [0.0] * len(self.endpoints)
        self.sent = Counter[str]()  # attempts per endpoint
        self.faults = Counter[str]()  # failed attempts by reason ("status 429", "timeout", ...)
        self.retries = 0
        self._unreachable_said: set[str] = set()
        self._rotate = 0
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._semaphore: asyncio.Semaphore | None = None
        self._rng = random.Random()  # jitter only: never influences what is generated
        self.logprobs = True  # False once a server refused the parameter (see the module docstring)
        self._tokenizer: ServerTokenizer | None = None  # built on first use (teachers/tokenize.py)

    def __repr__(self) -> str:
        return f"OpenAITeacher(endpoints={self.endpoints!r}, model={self.model!r}, completions={self.completions})"

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        return headers

    def _served_models(self, endpoint: str) -> list[str]:
        """The model ids an endpoint's /models lists (vLLM serves one)."""
        url = f"{endpoint}/models"
        request = urllib.request.Request(url, headers=self._headers())
        try:
            with urllib.request.urlopen(request, timeout=min(self.timeout, 30.0)) as reply:
                data = json.loads(reply.read().decode("utf-8"))
            ids = [str(item["id"]) for item in data["data"]]
            if not ids:
                raise IndexError
            return ids
        except (urllib.error.URLError, OSError, ValueError, KeyError, IndexError, TypeError) as exc:
            reason = redact(str(getattr(exc, "reason", None) or type(exc).__name__))[:200]
            raise TeacherError(
                f"could not list the models at {url} ({reason})", hint="pass --model NAME"
            ) from None

    def _resolve_model(self, model: str | None) -> str:
        """The served model name. One endpoint: --model as given, else the first it lists. Several:
        requests are balanced across them, so they must all serve the same model; a set of servers
        serving different models is refused here rather than mixing their answers in one data set."""
        if len(self.endpoints) == 1:
            return model or self._served_models(self.endpoints[0])[0]
        # An endpoint that cannot be listed now is left to the per-request retries (a dead server among
        # several costs retries, not the run); the first one must answer when --model is not given.
        served: dict[str, list[str]] = {}
        for i, endpoint in enumerate(self.endpoints):
            try:
                served[endpoint] = self._served_models(endpoint)
            except TeacherError:
                if model is None and i == 0:
                    raise
        if not served:
            return model  # type: ignore[return-value]  # model is set: only then may every listing fail
        if len({frozenset(ids) for ids in served.values()}) == 1:
            return model or next(iter(served.values()))[0]  # the same server everywhere: as with one
        if model is not None and all(model in ids for ids in served.values()):
            return model
        listing = "; ".join(f"{e} serves {', '.join(ids)}" for e, ids in served.items())
        what = f"--model {model} is not served by every --endpoint" if model else \
            "the --endpoint servers serve different models"
        raise UsageError(f"{what} ({listing})",
                         hint="labtax balances requests across endpoints, so they must serve one model: run "
                              "one labtax per model, or pass --model NAME that all of them serve")

    # -- the Teacher protocol
    def count_tokens(self, text: str) -> int:
        self._tokenizer = self._tokenizer or ServerTokenizer.for_teacher(self)
        return self._tokenizer.count(text)

    def token_counter(self) -> str:
        return self._tokenizer.counter if self._tokenizer is not None else ESTIMATE

    async def complete(self, requests: Sequence[TeacherRequest]) -> list[TeacherResponse]:
        loop = asyncio.get_running_loop()
        if self._session is not None and self._loop is not loop:
            # A new event loop (a second asyncio.run): the old session belongs to a closed loop.
            self._session = None
        if self._session is None:
            self._loop = loop
            connector = aiohttp.TCPConnector(limit=self.concurrency, limit_per_host=0, ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(connector=connector, headers=self._headers())
            self._semaphore = asyncio.Semaphore(self.concurrency)
        return list(await asyncio.gather(*(self._guarded(r) for r in requests)))

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- one request, with retries
    def _live(self, i: int, now: float) -> bool:
        """In the rotation: never refused, or its back-off is over and no probe is on its way."""
        return self._refused[i] == 0 or (self._out_until[i] <= now and self.outstanding[i] == 0)

    def _pick_endpoint(self) -> int:
        n = len(self.endpoints)
        start = self._rotate
        self._rotate = (self._rotate + 1) % n
        order = [(start + k) % n for k in range(n)]
        now = time.monotonic()
        live = [i for i in order if self._live(i, now)]
        return min(live or order, key=lambda i: self.outstanding[i])

    def _refused_by(self, i: int) -> None:
        """Endpoint i refused a connection: out of the rotation for a back-off that doubles."""
        self._refused[i] += 1
        backoff = min(MAX_ENDPOINT_BACKOFF_S, self.endpoint_backoff * 2 ** (self._refused[i] - 1))
        self._out_until[i] = time.monotonic() + backoff

    def _another_live(self, i: int) -> bool:
        now = time.monotonic()
        return any(self._live(j, now) for j in range(len(self.endpoints)) if j != i)

    def _body(self, request: TeacherRequest) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "seed": request.seed,
        }
        stop = list(request.stop)
        if self.completions:
            body["prompt"] = render_plain_prompt(request.messages)
            stop.append(PLAIN_STOP)
        else:
            body["messages"] = request.as_messages()
        if stop:
            body["stop"] = stop
        if request.choices and self.logprobs:
            if self.completions:
                body["logprobs"] = TOP_LOGPROBS
            else:
                body["logprobs"] = True
                body["top_logprobs"] = TOP_LOGPROBS
        return body

    async def _guarded(self, request: TeacherRequest) -> TeacherResponse:
        """One request that can only fail alone: nothing it meets may cancel its batch-mates."""
        try:
            return await self._one(request)
        except (OSError, ValueError, RuntimeError, aiohttp.ClientError) as exc:
            self.faults[f"error: {type(exc).__name__}"] += 1
            return TeacherResponse("", ok=False, error=f"request failed: {type(exc).__name__}")

    async def _one(self, request: TeacherRequest) -> TeacherResponse:
        assert self._semaphore is not None
        body = self._body(request)
        path = "/completions" if self.completions else "/chat/completions"
        last = "no attempt"
        delivered = False  # did any attempt reach a server? (a refused connection sends nothing)
        attempt = 0
        while True:
            failure: _Retryable | None = None
            # A slot only while the attempt is on the wire: the back-off below sleeps without one.
            async with self._semaphore:
                index = self._pick_endpoint()
                self.outstanding[index] += 1
                self.sent[self.endpoints[index]] += 1
                try:
                    response = await self._attempt(self.endpoints[index] + path, body, request.choices)
                    self._refused[index] = 0  # (back) in the rotation
                    return response
                except _Retryable as exc:
                    failure = exc
                except _Fatal as exc:
                    if "logprobs" in body and exc.reason.startswith("status 400"):
                        # This server does not do logprobs: the verdict falls back to its text.
                        self.logprobs = False
                        body = {k: v for k, v in body.items() if k not in ("logprobs", "top_logprobs")}
                        continue
                    if exc.fault is not None:
                        self.faults[exc.fault] += 1
                    return TeacherResponse("", ok=False, error=exc.reason)
                finally:
                    self.outstanding[index] -= 1
            last = failure.reason
            self.faults[failure.reason] += 1
            if failure.unreachable is None:
                delivered = True
            else:
                self._say_unreachable(self.endpoints[index], failure.unreachable)
                self._refused_by(index)
            if attempt == self.max_retries:
                break
            self.retries += 1
            delay = failure.retry_after
            if delay is None and failure.unreachable is not None and self._another_live(index):
                delay = 0.0  # nothing reached a server: a live endpoint takes it now
            if delay is None:
                # Exponential back-off with full jitter: spreads retries of a burst apart.
                delay = self._rng.uniform(0, min(MAX_BACKOFF_S, self.backoff_base * 2**attempt))
            attempt += 1
            await asyncio.sleep(delay)
        return TeacherResponse("", ok=False, error=f"failed after {self.max_retries + 1} attempts: {last}",
                               extra={} if delivered else {"delivered": False})

    async def _read_capped(self, reply: aiohttp.ClientResponse) -> bytes:
        """The reply body, at most max_reply_bytes of it: a larger one fails the row (_Fatal) before
        more than the cap is held in memory."""
        cap = self.max_reply_bytes
        too_large = _Fatal(f"reply body larger than the {cap:,}-byte cap (labtax reads at most that much of "
                           "a teacher's reply)", fault="reply too large")
        if reply.content_length is not None and reply.content_length > cap:
            raise too_large
        chunks: list[bytes] = []
        size = 0
        async for chunk in reply.content.iter_chunked(1 << 16):
            size += len(chunk)
            if size > cap:
                raise too_large
            chunks.append(chunk)
        return b"".join(chunks)

    def _say_unreachable(self, endpoint: str, why: str) -> None:
        """Said on the first failure, once per endpoint: a dead endpoint must not cost silent retries."""
        if endpoint in self._unreachable_said:
            return
        self._unreachable_said.add(endpoint)
        sys.stderr.write(redact(f"labtax: teacher endpoint {endpoint} is unreachable ({why}); retrying with "
                                "back-off\n"))

    async def _attempt(self, url: str, body: dict[str, Any], choices: Sequence[str] = ()) -> TeacherResponse:
        assert self._session is not None
        try:
            async with self._session.post(
                url, json=body, timeout=aiohttp.ClientTimeout(total=self.timeout)
            ) as reply:
                raw = await self._read_capped(reply)
                if reply.status in RETRY_STATUSES:
                    raise _Retryable(f"status {reply.status}", _retry_after_seconds(reply.headers.get("Retry-After")))
                if reply.status >= 400:
                    # Redact the whole body before cutting it: a 401 body often quotes the key sent.
                    body_text = redact(raw.decode("utf-8", "replace"))
                    raise _Fatal(redact(f"status {reply.status}: {body_text[:200]}"))
        except asyncio.TimeoutError:
            raise _Retryable("timeout") from None
        except aiohttp.ClientConnectorError as exc:  # refused, no route, DNS: nothing was delivered
            raise _Retryable(f"connection: {type(exc).__name__}", unreachable=f"{type(exc).__name__}: {exc}") from None
        except aiohttp.ClientError as exc:
            raise _Retryable(f"connection: {type(exc).__name__}") from None
        response = self._parse(raw)
        if choices and "logprobs" in body:
            self._read_choice_probs(raw, choices, response)
        return response

    def _read_choice_probs(self, raw: bytes, choices: Sequence[str], response: TeacherResponse) -> None:
        """extra["choice_probs"] from the reply's logprobs; nothing when it has none we can read."""
        try:
            logprobs = json.loads(raw)["choices"][0].get("logprobs") or {}
            if self.completions:
                positions = [dict(p) for p in logprobs.get("top_logprobs") or [] if isinstance(p, dict)]
            else:
                positions = [
                    {str(t["token"]): float(t["logprob"]) for t in p.get("top_logprobs") or []}
                    for p in logprobs.get("content") or []
                ]
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            return
        found = from_top_logprobs(positions, choices)
        if found is not None:
            response.extra["choice_probs"], response.extra["choice_mass"] = found

    def _parse(self, raw: bytes) -> TeacherResponse:
        try:
            data = json.loads(raw)
            choice = data["choices"][0]
            if self.completions:
                text = choice["text"]
            else:
                text = choice["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError, RecursionError):
            # A proxy hiccup or a half-written body: worth another try.
            raise _Retryable("malformed body") from None
        if not isinstance(choice, dict):
            raise _Retryable("malformed body")
        # Everything else in the body is the server's word too: a `usage` that is a list, counts of
        # 1e999, a lone surrogate in the text cost only this reply (cleaned, counted), never the run.
        usage = data.get("usage") if isinstance(data, dict) else None
        if not isinstance(usage, dict):
            if usage is not None:
                self.faults["bad usage"] += 1
            usage = {}
        finish = choice.get("finish_reason")
        response = TeacherResponse(
            text=text if isinstance(text, str) else "",
            prompt_tokens=usage.get("prompt_tokens") or 0,  # type: ignore[arg-type]
            completion_tokens=usage.get("completion_tokens") or 0,  # type: ignore[arg-type]
            finish_reason=finish if isinstance(finish, str) else None,
        )
        text, counts, faults = clean_fields(response)
        for fault in sorted(set(faults)):
            self.faults[fault] += 1
        response.text, response.prompt_tokens, response.completion_tokens = (
            text, counts["prompt_tokens"], counts["completion_tokens"])
        return response

    def stats(self) -> TeacherStats:
        return TeacherStats(retries=self.retries, faults=dict(self.faults), counts={
            "sent": dict(self.sent),
            "tokenize_requests": self._tokenizer.asked if self._tokenizer is not None else 0,
        })


class _Fatal(Exception):
    """A failure that another attempt would not fix (a 400: the request itself is wrong; a reply over
    the size cap). `fault`, when given, is counted in the teacher's faults."""

    def __init__(self, reason: str, fault: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.fault = fault

