"""The teacher interface every backend implements, and the request/response records they exchange.

Pipelines only build `TeacherRequest`s and read `TeacherResponse`s; they never know which backend
answers. A request is fully determined by its fields (including its sampling seed), so its `key()`
identifies it across runs: the run ledger uses the key to skip requests that already completed.

Verdicts from probabilities: a request with `choices` (e.g. ("yes", "no"), or ("1", "2", "3") for a
score) asks the backend for the probability of each choice as the first token of the answer. A
backend that can read its next-token distribution (in process, or an OpenAI-compatible server that
returns `logprobs`) puts them, normalised over the choices, in `extra["choice_probs"]` (read them with
`TeacherResponse.choice_probs`); one that cannot simply answers in text, and the caller parses it.
"""

from __future__ import annotations

import hashlib
import json
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class TeacherRequest:
    """One chat request. `seed` makes sampling reproducible where the backend supports it."""

    messages: tuple[tuple[str, str], ...]  # (role, content) pairs
    max_tokens: int = 512
    temperature: float = 0.7
    top_p: float = 1.0
    seed: int = 0
    stop: tuple[str, ...] = ()
    tag: str = ""  # the pipeline stage that made it ("questions", "judge", ...): for stats, not the key
    # Answer words whose first-token probabilities are wanted (see above). Not in the key: they ask
    # for more about the same answer, not for a different one.
    choices: tuple[str, ...] = ()

    def key(self) -> str:
        """A stable content hash of everything that influences the answer."""
        payload = {
            "messages": [list(m) for m in self.messages],
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "seed": self.seed,
            "stop": list(self.stop),
        }
        blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def as_messages(self) -> list[dict[str, str]]:
        return [{"role": role, "content": content} for role, content in self.messages]


@dataclass
class TeacherResponse:
    """The teacher's answer to one request. `ok` is False when it failed after retries."""

    text: str
    ok: bool = True
    error: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str | None = None  # "stop", "length" (truncated), ...
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def choice_probs(self) -> dict[str, float] | None:
        """P(choice) for a request with `choices`, normalised over them; None when the backend gave none."""
        probs = self.extra.get("choice_probs")
        if not isinstance(probs, dict) or not probs:
            return None
        return {str(k): float(v) for k, v in probs.items()}


@dataclass(frozen=True)
class TeacherStats:
    """A teacher's own counts for the run summary. `retries` and `faults` (failed attempts by
    reason: a server's transport) are what the run adds to its summary; `counts` are the backend's
    other numbers by name (requests sent by status, time per kind of batch, engine steps), shown for
    diagnosis and never computed with."""

    retries: int = 0
    faults: Mapping[str, int] = field(default_factory=dict)
    counts: Mapping[str, Any] = field(default_factory=dict)


def estimate_tokens(text: str) -> int:
    """The documented fallback when no tokenizer is at hand: words x 1.3, rounded up."""
    return math.ceil(len(text.split()) * 1.3)


class Teacher(Protocol):
    """A backend that answers batches of requests. Order of responses matches order of requests.

    `batch_size`: how many requests are worth handing over together (a forward pass for an in-process
    model; 1 for a server, which bounds its own concurrency), so a caller recording progress per
    batch keeps the batching. `concurrency`: requests in flight at most. `count_tokens`: a text's
    length in the teacher's own tokens (knowledge chunks are sized with it). `stats`: the backend's
    own counts for the run summary (`TeacherStats`: openai's retries and faults by reason; empty when
    it has none)."""

    model_id: str

    @property
    def batch_size(self) -> int: ...

    @property
    def concurrency(self) -> int: ...

    def count_tokens(self, text: str) -> int: ...

    def stats(self) -> TeacherStats: ...

    async def complete(self, requests: Sequence[TeacherRequest]) -> list[TeacherResponse]: ...

    async def aclose(self) -> None: ...


class TeacherBase:
    """The protocol's defaults for a backend: one request at a time, the words x 1.3 token estimate,
    nothing to close. Backends override what they know better."""

    model_id: str
    batch_size: int = 1
    concurrency: int = 1

    def count_tokens(self, text: str) -> int:
        return estimate_tokens(text)

    def token_counter(self) -> str:
        """What `count_tokens` counts with, for the run's stats (`chunks_sized_by`)."""
        own = type(self).count_tokens is not TeacherBase.count_tokens
        return "teacher tokenizer" if own else "estimate (words x 1.3)"

    def stats(self) -> TeacherStats:
        return TeacherStats()


class WrapperBase(ABC):
    """For a teacher that wraps another (`wrapped`): the protocol's sizing and counting members are
    the wrapped teacher's, answered explicitly rather than by attribute forwarding."""

    @property
    @abstractmethod
    def wrapped(self) -> Teacher:
        """The teacher this one wraps (a lazy wrapper builds it here on first use)."""

    @property
    def concurrency(self) -> int:
        return self.wrapped.concurrency

    def count_tokens(self, text: str) -> int:
        # Knowledge chunks are sized in the real teacher's tokens, whatever wraps it.
        return self.wrapped.count_tokens(text)

    def token_counter(self) -> str:
        inner = self.wrapped
        return inner.token_counter() if isinstance(inner, TeacherBase | WrapperBase) else "teacher tokenizer"

    def stats(self) -> TeacherStats:
        return self.wrapped.stats()

    async def aclose(self) -> None:
        return None
