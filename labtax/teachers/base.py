"""The teacher interface every backend implements, and the request/response records they exchange.

Pipelines only build `TeacherRequest`s and read `TeacherResponse`s; they never know which backend
answers. A request is fully determined by its fields (including its sampling seed), so its `key()`
identifies it across runs: the run ledger uses the key to skip requests that already completed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol


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


class Teacher(Protocol):
    """A backend that answers batches of requests. Order of responses matches order of requests."""

    model_id: str

    async def complete(self, requests: Sequence[TeacherRequest]) -> list[TeacherResponse]: ...

    async def aclose(self) -> None: ...
