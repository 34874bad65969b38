"""The request-replaying teacher wrapper over the run ledger (`labtax/sdg/ledger.py`): completed
requests are answered from the ledger, the rest are sent, and each reply is cleaned
(`labtax/teachers/replies.py`) and recorded the moment it arrives."""

from __future__ import annotations

import asyncio
import hashlib
from collections import Counter
from collections.abc import Sequence

from labtax.sdg.ledger import Ledger
from labtax.teachers.base import Teacher, TeacherRequest, TeacherResponse, WrapperBase
from labtax.teachers.replies import clean_reply


def ledger_request_key(model_id: str, request: TeacherRequest) -> str:
    """The ledger's key for a request: the request's own key, namespaced by the teacher's model, so a
    different teacher never receives another model's answers."""
    return hashlib.sha256(f"{model_id}\0{request.key()}".encode()).hexdigest()


class LedgerTeacher(WrapperBase):
    """A Teacher that answers from the ledger what already completed and sends only the rest.

    Each response is recorded the moment it arrives (the missing requests are sent in small
    sub-batches, `batch_size` each, concurrently; the inner teacher bounds the real concurrency), so a
    run killed mid-batch loses at most the responses in flight. Failed responses are not recorded:
    they are retried by the next run. One LedgerTeacher per leaf (`for_leaf`) so counters are per
    leaf; all share the inner teacher and the ledger.
    """

    def __init__(self, inner: Teacher, ledger: Ledger, *, run_id: int | None = None, leaf_key: str = "",
                 batch_size: int = 1) -> None:
        self.inner = inner
        self.ledger = ledger
        self.run_id = run_id
        self.leaf_key = leaf_key
        self.batch_size = max(1, batch_size)
        self.model_id: str = inner.model_id
        self.sent = 0
        self.replayed = 0
        self.failed = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.faults: Counter[str] = Counter()  # replies repaired or refused, by reason
        self.undelivered = 0

    @property
    def wrapped(self) -> Teacher:
        return self.inner

    def for_leaf(self, leaf_key: str) -> LedgerTeacher:
        return LedgerTeacher(self.inner, self.ledger, run_id=self.run_id, leaf_key=leaf_key,
                             batch_size=self.batch_size)

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    async def complete(self, requests: Sequence[TeacherRequest]) -> list[TeacherResponse]:
        keys = [ledger_request_key(self.model_id, r) for r in requests]
        stored = self.ledger.responses(keys)
        out: list[TeacherResponse | None] = [stored.get(k) for k in keys]
        # Identical requests within a batch are sent once.
        pending: dict[str, list[int]] = {}
        for i, (k, resp) in enumerate(zip(keys, out)):
            if resp is None:
                pending.setdefault(k, []).append(i)
        # Count each distinct request once, replayed or sent, so a resumed run reports the same
        # requests and tokens as an uninterrupted one.
        for k, resp in stored.items():
            self.replayed += 1
            self._count(resp)
        todo = list(pending.items())

        async def send(chunk: list[tuple[str, list[int]]]) -> None:
            batch = [requests[idxs[0]] for _, idxs in chunk]
            responses = await self.inner.complete(batch)
            for (key, idxs), req, resp in zip(chunk, batch, responses):
                if resp.extra.get("delivered") is False:
                    self.undelivered += 1  # never reached a server (connection refused): not "sent"
                else:
                    self.sent += 1
                # Cleaned before it is stored: a reply the ledger could not encode (a lone surrogate)
                # or would replay forever (10 MB of text) must cost only its own row.
                resp, faults = clean_reply(req, resp)
                for fault in faults:
                    self.faults[fault] += 1
                if resp.ok:
                    self.ledger.record_response(key, resp, leaf_key=self.leaf_key, run_id=self.run_id,
                                                tag=req.tag)
                    self._count(resp)
                else:
                    self.failed += 1
                for i in idxs:
                    out[i] = resp

        chunks = [todo[i : i + self.batch_size] for i in range(0, len(todo), self.batch_size)]
        await asyncio.gather(*(send(c) for c in chunks))
        return [r if r is not None else TeacherResponse(text="", ok=False, error="no response") for r in out]

    def _count(self, resp: TeacherResponse) -> None:
        self.prompt_tokens += resp.prompt_tokens
        self.completion_tokens += resp.completion_tokens

    async def aclose(self) -> None:
        await self.inner.aclose()
