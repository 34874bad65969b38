"""Sizing text with an OpenAI-protocol server's own tokenizer, when the server has one.

vLLM serves `POST /tokenize` at its root (next to `/v1`): {"model", "prompt", "add_special_tokens"}
-> {"tokens": [...], "count": n}. The openai teacher sizes knowledge chunks with it, so a chunk of
`--chunk-tokens` is that many of the teacher's tokens, as with an in-process teacher. Every text is
asked once per run (cached). A server without the endpoint (404/405/501, or a 400 or an answer of
another shape on the first ask: llama.cpp's and Ollama's servers) gets the words x 1.3 estimate for
the whole run, and `counter` says which one sized the chunks (the run's stats: `chunks_sized_by`).

Once the endpoint has answered, a failure to reach it is not papered over with the estimate (the
same leaf would then be chunked differently from one run to the next): it is retried, then raised
as a TeacherError, which fails the leaf like any unreachable teacher; a text it refuses (a 400 for
one paragraph) alone gets the estimate, the same way every time.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from typing import Any

from labtax.errors import TeacherError
from labtax.teachers.base import estimate_tokens
from labtax.util.redact import redact

ESTIMATE = "estimate (words x 1.3)"
SERVER = "server tokenizer (/tokenize)"
ABSENT = frozenset({400, 404, 405, 501})  # the first ask: no such endpoint, or not vLLM's request shape


def tokenize_url(endpoint: str) -> str:
    """The server root's /tokenize for a base URL as the teacher takes it (`http://h:8000/v1`)."""
    root = endpoint.rstrip("/")
    return root.removesuffix("/v1") + "/tokenize"


def _count(data: Any) -> int | None:
    if not isinstance(data, dict):
        return None
    count = data.get("count")
    if isinstance(count, int) and not isinstance(count, bool) and count >= 0:
        return count
    tokens = data.get("tokens")
    return len(tokens) if isinstance(tokens, list) else None


class ServerTokenizer:
    """A server's token counts, one ask per distinct text (see the module docstring)."""

    @classmethod
    def for_teacher(cls, teacher: Any) -> ServerTokenizer:
        """For an OpenAITeacher: its first endpoint (all serve one model), headers, timeout, back-off."""
        return cls(teacher.endpoints[0], teacher.model, teacher._headers(), timeout=min(teacher.timeout, 30.0),
                   attempts=min(3, teacher.max_retries + 1), backoff=teacher.backoff_base)

    def __init__(self, endpoint: str, model: str, headers: dict[str, str], *, timeout: float = 30.0,
                 attempts: int = 3, backoff: float = 0.5) -> None:
        self.url = tokenize_url(endpoint)
        self.model = model
        self.headers = headers
        self.timeout = timeout
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self.available: bool | None = None  # None until the first ask
        self.asked = 0  # requests sent to /tokenize (stats)
        self._cache: dict[str, int] = {}
        self._lock = threading.Lock()

    @property
    def counter(self) -> str:
        return SERVER if self.available else ESTIMATE

    def count(self, text: str) -> int:
        if self.available is False:
            return estimate_tokens(text)
        with self._lock:
            hit = self._cache.get(text)
        if hit is not None:
            return hit
        n = self._ask(text)
        if n is None:
            if self.available is None:
                self.available = False  # no /tokenize here: the estimate for the whole run
            n = estimate_tokens(text)
        else:
            self.available = True
        with self._lock:
            self._cache[text] = n
        return n

    def _ask(self, text: str) -> int | None:
        """The server's count; None when it has no such endpoint (or refuses this text)."""
        body = json.dumps({"model": self.model, "prompt": text, "add_special_tokens": False}).encode("utf-8")
        last = "no attempt"
        for attempt in range(self.attempts):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            request = urllib.request.Request(self.url, data=body, headers=self.headers, method="POST")
            self.asked += 1
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as reply:
                    raw = reply.read()
            except urllib.error.HTTPError as exc:
                if exc.code in ABSENT and (self.available is None or exc.code == 400):
                    return None
                last = f"status {exc.code}"
                continue
            except (urllib.error.URLError, OSError) as exc:
                last = f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
                continue
            try:
                n = _count(json.loads(raw))
            except (ValueError, RecursionError):
                n = None
            if n is not None or self.available is None:
                return n  # an answer of another shape on the first ask: not vLLM's endpoint
            last = "malformed body"
        raise TeacherError(redact(f"could not size a document chunk with {self.url} ({last})"),
                           hint="the teacher's /tokenize answered before; check the server")
