"""A real, scriptable OpenAI-compatible HTTP server on 127.0.0.1 for tests and benchmarks.

It speaks enough of the OpenAI protocol for teacher and judge clients:

  POST /v1/chat/completions   {"model", "messages", ...} -> {"choices": [{"message": {...}, ...}], "usage"}
  POST /v1/completions        {"model", "prompt", ...}   -> {"choices": [{"text": ...}], "usage"}
  GET  /v1/models             -> {"data": [{"id": <model>}]}
  POST /tokenize              {"model", "prompt", "add_special_tokens"} -> {"tokens": [...], "count": n}
                              (vLLM's endpoint, at the root; only with `OpenAIServer(tokenize=True)`:
                              a server without it answers 404, as llama.cpp's and Ollama's do)

API
---
    with OpenAIServer(responder=my_responder, model="test-model", delay_ms=0) as server:
        server.base_url        # "http://127.0.0.1:PORT/v1"  (what --endpoint takes)
        server.url             # "http://127.0.0.1:PORT"
        server.requests        # list[RecordedRequest]: kind, path, body, headers, started, finished
        server.count()         # number of POSTs answered so far; count("chat") / count("completions")
        server.max_in_flight   # the most requests the server was handling at once
        server.status_counts   # {200: n, 429: n, ...}
        server.reset()         # forget recorded requests and counters

`responder(kind, body)` is called for every POST with kind "chat" or "completions" and the parsed
JSON body. It returns one of:
  - a `str`: the answer text (finish_reason "stop");
  - a `Reply(text, finish_reason="stop", prompt_tokens=None, completion_tokens=None, top_logprobs=None)`;
    `top_logprobs` is a list, one {token: logprob} map per answer position: returned in the OpenAI
    shape (chat: `logprobs.content[i].top_logprobs`; completions: `logprobs.top_logprobs[i]`) only
    when the request asked for `logprobs`, as real servers do;
  - a `Fault(status=500, headers={}, body=None, sleep=0.0, then=None)`: after sleeping `sleep`
    seconds (longer than the client's timeout for a timeout test), answer with `status` and `headers`
    (e.g. `Fault(429, {"Retry-After": "1"})`) and a JSON error body, or with the raw `body` text
    instead when given (`Fault(200, body="{not json")`: a malformed answer). When `then` is a
    str/Reply, that normal answer is sent after the sleep instead (a slow success).
`OpenAIServer(record=False)` keeps no request list (long benchmarks); counters still work.
`OpenAIServer(tokenize=True)` serves `/tokenize`: a token is a word or a punctuation mark, plus one
BOS unless `add_special_tokens` is false (`server_tokens(text)` counts the same);
`server.tokenized` is how many texts it was asked to tokenize.
`OpenAIServer(refuse_logprobs=True)` answers 400 to any request asking for logprobs (a server
without them). `verdict_logprobs(p_first, first, second)` builds the one-position map of a yes/no
verdict with P(first) = p_first.

The responder runs on the server's event loop thread; keep it quick (use `Fault(sleep=...)` or
`delay_ms` to be slow). Helpers:
  - `fail_first(responder, fault, times=1, match=None)`: the first `times` attempts of each distinct
    request body (optionally only bodies where `match(kind, body)` is true) get `fault`; retries of the
    same body then reach `responder`. Deterministic under concurrency because it keys on the body.
  - `lab_responder()`: answers every labtax LAB pipeline stage sensibly by recognising the stage's
    prompt (numbered questions, contexts, keep/drop verdicts, answers, 1-3 scores, knowledge Q&A
    pairs, yes/no filter verdicts, knowledge multiple-choice items, `labtax eval`'s pairwise verdicts),
    varied by a hash of the request so that dedup keeps the rows.

As a pytest fixture: `openai_server` (in tests/conftest.py) yields a started server with
`lab_responder()`; set `server.responder = ...` in a test to script it differently.

As a separate process (benchmarks, so the server does not share the client's event loop):
    python tests/openai_server.py [--port 0] [--delay-ms 100] [--model NAME] [--responder lab|ok]
prints "READY http://127.0.0.1:PORT/v1" on stdout once listening, and serves until killed.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import re
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Reply:
    """A successful answer with an explicit finish reason and optional token counts."""

    text: str
    finish_reason: str = "stop"
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    top_logprobs: list[dict[str, float]] | None = None


def verdict_logprobs(p_first: float, first: str = "yes", second: str = "no") -> list[dict[str, float]]:
    """One answer position where `first` has probability p_first and `second` the rest (minus a sliver
    for an unrelated token, as a real distribution has)."""
    import math

    p = min(max(p_first, 1e-6), 1 - 1e-6) * 0.98
    return [{first: math.log(p), second: math.log(0.98 - p + 1e-9), " The": math.log(0.02)}]


@dataclass
class Fault:
    """A failure to inject: an HTTP status with headers, a raw (malformed) body, or a slow answer."""

    status: int = 500
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None
    sleep: float = 0.0
    then: str | Reply | None = None


Answer = str | Reply | Fault
Responder = Callable[[str, dict[str, Any]], Answer]


@dataclass
class RecordedRequest:
    kind: str
    path: str
    body: dict[str, Any]
    headers: dict[str, str]
    started: float
    finished: float = 0.0
    status: int = 0


TOKEN = re.compile(r"\w+|[^\w\s]")


def server_tokens(text: str) -> int:
    """What the server's /tokenize counts for `text` without special tokens."""
    return len(TOKEN.findall(text))


def default_responder(kind: str, body: dict[str, Any]) -> Answer:
    return "ok"


def _prompt_text(kind: str, body: dict[str, Any]) -> str:
    """All the text the client sent: the messages' contents, or the completions prompt."""
    if kind == "chat":
        return "\n".join(str(m.get("content", "")) for m in body.get("messages", []))
    return str(body.get("prompt", ""))


class OpenAIServer:
    """The server; runs its own asyncio loop in a daemon thread. See the module docstring."""

    def __init__(
        self,
        responder: Responder | None = None,
        *,
        model: str = "test-model",
        delay_ms: float = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
        record: bool = True,
        refuse_logprobs: bool = False,
        tokenize: bool = False,
    ) -> None:
        self.responder: Responder = responder or default_responder
        self.model = model
        self.delay_ms = delay_ms
        self.host = host
        self.port = port
        self.record = record
        self.refuse_logprobs = refuse_logprobs
        self.tokenize = tokenize
        self.tokenized = 0
        self.requests: list[RecordedRequest] = []
        self.status_counts: Counter[int] = Counter()
        self.in_flight = 0
        self.max_in_flight = 0
        self._answered = 0
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()

    # -- lifecycle
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def start(self) -> OpenAIServer:
        self._thread = threading.Thread(target=self._serve, name="openai-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the test OpenAI server did not start")
        return self

    def stop(self) -> None:
        if self._loop is None:
            return
        loop = self._loop
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        self._loop = None

    def __enter__(self) -> OpenAIServer:  # noqa: PYI034
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        loop.run_until_complete(self._start_site())
        self._ready.set()
        loop.run_forever()
        loop.close()

    async def _start_site(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/completions", self._completions)
        app.router.add_get("/v1/models", self._models)
        if self.tokenize:
            app.router.add_post("/tokenize", self._tokenize)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port, backlog=1024).start()
        # Port 0 lets the OS pick a free port without a race; read back what it chose.
        self.port = self._runner.addresses[0][1]

    # -- counters
    def count(self, kind: str | None = None) -> int:
        with self._lock:
            if kind is None:
                return self._answered
            return sum(1 for r in self.requests if r.kind == kind)

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.status_counts.clear()
            self.max_in_flight = self.in_flight
            self._answered = 0

    # -- handlers
    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": self.model, "object": "model"}]})

    async def _tokenize(self, request: web.Request) -> web.Response:
        body = await request.json()
        tokens = [_h(t) % 50_000 for t in TOKEN.findall(str(body.get("prompt", "")))]
        if body.get("add_special_tokens", True):
            tokens.insert(0, 1)  # BOS, as vLLM adds by default
        with self._lock:
            self.tokenized += 1
        return web.json_response({"tokens": tokens, "count": len(tokens), "max_model_len": 8192})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        return await self._handle("chat", request)

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        return await self._handle("completions", request)

    async def _handle(self, kind: str, request: web.Request) -> web.StreamResponse:
        started = time.monotonic()
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        record: RecordedRequest | None = None
        status = 200
        try:
            try:
                body = await request.json()
            except (ValueError, UnicodeDecodeError):
                status = 400
                return web.json_response({"error": {"message": "body is not JSON"}}, status=400)
            if self.record:
                record = RecordedRequest(kind, request.path, body, dict(request.headers), started)
                with self._lock:
                    self.requests.append(record)
            if self.refuse_logprobs and body.get("logprobs"):
                status = 400
                return web.json_response({"error": {"message": "logprobs are not supported"}}, status=400)
            if self.delay_ms:
                await asyncio.sleep(self.delay_ms / 1000)
            answer = self.responder(kind, body)
            if isinstance(answer, Fault):
                if answer.sleep:
                    await asyncio.sleep(answer.sleep)
                if answer.then is not None:
                    answer = answer.then
                else:
                    status = answer.status
                    if answer.body is not None:
                        return web.Response(
                            text=answer.body, status=answer.status, headers=answer.headers,
                            content_type="application/json",
                        )
                    return web.json_response(
                        {"error": {"message": f"injected fault {answer.status}"}},
                        status=answer.status, headers=answer.headers,
                    )
            reply = answer if isinstance(answer, Reply) else Reply(str(answer))
            return web.json_response(self._payload(kind, body, reply))
        finally:
            with self._lock:
                self.in_flight -= 1
                self._answered += 1
                self.status_counts[status] += 1
                if record is not None:
                    record.finished = time.monotonic()
                    record.status = status

    def _payload(self, kind: str, body: dict[str, Any], reply: Reply) -> dict[str, Any]:
        prompt_tokens = reply.prompt_tokens
        if prompt_tokens is None:
            prompt_tokens = len(_prompt_text(kind, body).split())
        completion_tokens = reply.completion_tokens
        if completion_tokens is None:
            completion_tokens = len(reply.text.split())
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        if kind == "chat":
            choice = {
                "index": 0,
                "message": {"role": "assistant", "content": reply.text},
                "finish_reason": reply.finish_reason,
            }
            obj = "chat.completion"
        else:
            choice = {"index": 0, "text": reply.text, "finish_reason": reply.finish_reason}
            obj = "text_completion"
        if body.get("logprobs") and reply.top_logprobs is not None:
            if kind == "chat":
                choice["logprobs"] = {"content": [
                    {"token": max(top, key=lambda t: top[t]), "logprob": max(top.values()),
                     "top_logprobs": [{"token": t, "logprob": lp} for t, lp in top.items()]}
                    for top in reply.top_logprobs
                ]}
            else:
                choice["logprobs"] = {"top_logprobs": [dict(top) for top in reply.top_logprobs]}
        return {
            "id": "cmpl-test", "object": obj, "created": 0, "model": body.get("model", self.model),
            "choices": [choice], "usage": usage,
        }


# ---------------------------------------------------------------- scripted responders


def fail_first(
    responder: Responder,
    fault: Fault,
    *,
    times: int = 1,
    match: Callable[[str, dict[str, Any]], bool] | None = None,
) -> Responder:
    """Wrap `responder`: the first `times` attempts of each distinct body (that `match`es) get `fault`."""
    seen: Counter[str] = Counter()
    lock = threading.Lock()

    def wrapped(kind: str, body: dict[str, Any]) -> Answer:
        if match is None or match(kind, body):
            key = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
            with lock:
                seen[key] += 1
                attempt = seen[key]
            if attempt <= times:
                return fault
        return responder(kind, body)

    return wrapped


_WORDS = [
    "river", "mountain", "harvest", "lantern", "copper", "violin", "orbit", "meadow", "glacier",
    "harbor", "falcon", "ember", "prism", "canyon", "thistle", "beacon", "quartz", "willow",
    "tide", "saffron", "compass", "marble", "cedar", "nebula", "orchard", "pebble", "summit",
    "velvet", "anchor", "bramble", "cobalt", "dune", "fern", "granite", "hollow", "ivory",
    "jasper", "kelp", "lagoon", "mosaic",
]


def _h(text: str) -> int:
    return int(hashlib.sha256(text.encode("utf-8")).hexdigest()[:12], 16)


def _phrase(seed: int, n: int = 4) -> str:
    """A few words picked from a hash: distinct requests give word-distinct rows (survive dedup)."""
    return " ".join(_WORDS[_h(f"{seed}-{k}") % len(_WORDS)] for k in range(n))


def _requested_count(text: str, default: int = 3) -> int:
    m = re.search(r"Write (\d+) new", text)
    return int(m.group(1)) if m else default


def _last_block(text: str, label: str) -> str:
    """The text after the last `label` line up to the next labelled line (e.g. 'Question:')."""
    idx = text.rfind(label)
    if idx < 0:
        return ""
    rest = text[idx + len(label):]
    return rest.strip().split("\n\n")[0].strip()


def lab_responder(*, drop_every: int = 0, low_score_every: int = 0) -> Responder:
    """Answer each labtax pipeline stage in its expected format, recognised by the stage's prompt.

    `drop_every=k` makes the question judge drop every k-th question (by hash), `low_score_every=k`
    makes the pair scorer give 1 to every k-th pair, so tests can see the filters work.
    """

    def respond(kind: str, body: dict[str, Any]) -> Answer:
        text = _prompt_text(kind, body)
        seed = _h(json.dumps(body, sort_keys=True))
        if "STAGE: contexts" in text:
            return f"Context: A short report about the {_phrase(seed, 6)} survey, written in plain prose."
        if "STAGE: questions" in text:
            n = _requested_count(text)
            return "\n".join(
                f"{i + 1}. How would you describe the {_phrase(seed + 131 * i)} in one paragraph?"
                for i in range(n)
            )
        if "STAGE: judge_question" in text:
            verdict = "drop" if drop_every and seed % drop_every == 0 else "keep"
            return f"The question is on topic and answerable.\nVerdict: {verdict}"
        if "STAGE: answer" in text:
            q = _last_block(text, "Question:")
            return f"Here is a careful answer about {q[:60].rstrip('?')}: it is {_phrase(seed, 5)}."
        if "STAGE: score" in text:
            score = 1 if low_score_every and seed % low_score_every == 0 else 3
            return f"The answer is accurate and helpful.\nScore: {score}"
        if "STAGE: knowledge_qa" in text:
            return _knowledge_pairs(text, seed)
        if "STAGE: knowledge_mc" in text:
            return _mc_items(text, seed)
        if "STAGE: reword" in text:
            q = _last_block(text, "Question:").split("\n")[0]
            return f"Question: in other words, {q[:1].lower()}{q[1:]}" if q else "I cannot."
        if "STAGE: mc_open_book" in text:
            return _open_book_pick(text)
        if "STAGE: mc_faithful" in text:
            return "The right answer is in the document; the others contradict it.\nVerdict: yes"
        if "STAGE: faithful" in text or "STAGE: relevant" in text or "STAGE: standalone" in text:
            return "Reasoning: checked against the document.\nVerdict: yes"
        if "STAGE: eval_pairwise" in text:
            return _pairwise_verdict(text)
        return "I am a test server."

    return respond


def _knowledge_pairs(text: str, seed: int) -> str:
    """Q&A pairs about the chunk as the knowledge prompt asks: `facts` facts, each a "Fact:" line and
    `wordings` pairs naming words of the chunk (so they pass the extractive check). The answer's word
    is never in its question: a pair whose question states every key fact of its answer is dropped
    (`answer_in_question`), so with a one-word chunk (a heading) the question names none."""
    n = _requested_count(text)
    facts_m = re.search(r"pick (\d+) different facts", text)
    wordings_m = re.search(r"write (\d+) pairs", text)
    facts = int(facts_m.group(1)) if facts_m else n
    wordings = int(wordings_m.group(1)) if wordings_m else 1
    chunk = _last_block(text, "Document:")
    words = [w for w in re.findall(r"[A-Za-z]+", chunk) if len(w) > 3] or ["topic"]
    blocks = []
    for f in range(facts):
        w = words[(seed + f) % len(words)]
        other = next((x for x in words[(seed + f + 1) % len(words):] + words if x != w), w)
        about = f"{w} and " if other != w else ""
        pairs = [f"Fact: The document discusses {other}."]
        for k in range(wordings):
            i = f * wordings + k
            pairs.append(
                f"Question: What does the document say about {about}{_phrase(seed + i, 3)}?\n"
                f"Answer: The document mentions {other} in its discussion ({_phrase(seed + 17 * i, 3)})."
            )
        blocks.append("\n".join(pairs))
    return "\n\n".join(blocks)


def _open_book_pick(text: str) -> str:
    """The letter of the first option that is a word of the document (the right one, as _mc_items writes them)."""
    chunk = set(re.findall(r"[a-z]+", _last_block(text, "Document:").lower()))
    for m in re.finditer(r"^([A-D])\. (.+)$", text, re.MULTILINE):
        if m.group(2).strip().lower() in chunk:
            return f"Answer: {m.group(1)}"
    return "Answer: A"


def _mc_items(text: str, seed: int) -> str:
    """Multiple-choice items about the chunk: the right option is a word of the chunk, the wrong ones
    capitalised words of the server's own list (names the chunk does not hold, so the extractive check
    sees them contradicted)."""
    n = _requested_count(text)
    chunk = _last_block(text, "Document:")
    words = [w for w in re.findall(r"[A-Za-z]+", chunk) if len(w) > 3] or ["topic"]
    items = []
    for i in range(n):
        right = words[(seed + 7 * i) % len(words)]
        wrong = [w.capitalize() for w in dict.fromkeys(_WORDS[(_h(f"{seed}-{i}-{k}")) % len(_WORDS)] for k in range(12))
                 if w.casefold() != right.casefold() and w.casefold() not in chunk.casefold()][:3]
        items.append(f"Question: Which term goes with {_phrase(seed + 29 * i, 3)} in this account?\n"
                     f"Right: {right}\n" + "".join(f"Wrong: {w}\n" for w in wrong))
    return "\n".join(items)


def _pairwise_verdict(text: str) -> str:
    """A judge of `labtax eval`'s pairwise prompt: the answer sharing more words with the reference
    wins, equal overlap is a tie ([[C]])."""

    def words(label: str, until: str | None) -> set[str]:
        start = text.find(label)
        if start < 0:
            return set()
        rest = text[start + len(label):]
        if until is not None and until in rest:
            rest = rest[: rest.find(until)]
        return set(re.findall(r"[a-z]+", rest.lower()))

    reference = words("Reference answer:", "Answer of assistant A:")
    a = len(words("Answer of assistant A:", "Answer of assistant B:") & reference)
    b = len(words("Answer of assistant B:", None) & reference)
    verdict = "A" if a > b else "B" if b > a else "C"
    return f"A shares {a} words with the reference, B shares {b}.\n[[{verdict}]]"


# ---------------------------------------------------------------- separate process


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve a test OpenAI-compatible API on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--delay-ms", type=float, default=0.0)
    parser.add_argument("--model", default="test-model")
    parser.add_argument("--responder", choices=["ok", "lab"], default="lab")
    args = parser.parse_args(argv)
    responder = lab_responder() if args.responder == "lab" else default_responder
    # No recording: a long benchmark would otherwise grow the server's memory without bound.
    server = OpenAIServer(responder, model=args.model, delay_ms=args.delay_ms, port=args.port, record=False)
    server.start()
    print(f"READY {server.base_url}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
