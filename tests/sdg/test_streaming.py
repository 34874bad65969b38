"""Per-leaf stage streaming (issue 15): a leaf's requests go out as soon as the reply they depend on
arrives, so one leaf fills the teacher's concurrency; whatever order replies come back in, the leaf
sends the same requests, records the same ledger and keeps the same samples as at concurrency 1."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from openai_server import Fault, OpenAIServer, Reply, lab_responder, verdict_logprobs
from sdgleaves import PLANETS_MD, freeform_leaf, grounded_leaf, knowledge_data, make_leaf, run

from labtax.sdg.ledger import Ledger
from labtax.sdg.pipelines import generate_leaf
from labtax.sdg.pipelines.runner import LeafResult
from labtax.sdg.replay import LedgerTeacher
from labtax.sdg.settings import GenerationSettings
from labtax.taxonomy.model import Leaf
from labtax.teachers import make_teacher
from labtax.teachers.base import Teacher, TeacherRequest, TeacherResponse


def _h(text: str) -> int:
    return int(hashlib.sha256(text.encode("utf-8")).hexdigest()[:8], 16)


def judging(*, jitter: float = 0.0) -> Any:
    """lab_responder whose verdicts come with logprobs (so the judges calibrate, as with vLLM); with
    `jitter`, each reply is held back a request-dependent time, so replies arrive out of order."""
    base = lab_responder()

    def respond(kind: str, body: dict[str, Any]) -> Any:
        answer = base(kind, body)
        low = str(answer).lower()
        if "verdict: keep" in low or "verdict: drop" in low:
            answer = Reply(str(answer), top_logprobs=verdict_logprobs(0.9 if "keep" in low else 0.1, "keep", "drop"))
        elif "verdict: yes" in low or "verdict: no" in low:
            answer = Reply(str(answer), top_logprobs=verdict_logprobs(0.9 if "yes" in low else 0.1))
        elif "score: " in low:
            answer = Reply(str(answer), top_logprobs=[{"3": -0.1, "2": -2.5, "1": -4.0}])
        if jitter:
            return Fault(sleep=jitter * (_h(json.dumps(body, sort_keys=True)) % 100) / 100, then=answer)
        return answer

    return respond


def knowledge_leaf(root: Path) -> Leaf:
    docs = root / ".documents" / "planets"
    docs.mkdir(parents=True, exist_ok=True)
    (docs / "planets.md").write_text(PLANETS_MD, encoding="utf-8")
    return make_leaf("knowledge/astronomy/planets/qna.yaml", knowledge_data(".documents/planets", "", ["*.md"]))


def generate(server: OpenAIServer, leaf: Leaf, settings: GenerationSettings, root: Path, ledger_path: Path,
             concurrency: int, wrap: Any = None) -> LeafResult:
    """One leaf through the run ledger's replaying wrapper, as diff-generate runs it."""
    teacher = make_teacher("openai", endpoints=[server.base_url], model="test-model", concurrency=concurrency)

    async def go() -> LeafResult:
        with Ledger(ledger_path) as ledger:
            inner = wrap(teacher) if wrap else teacher
            t = LedgerTeacher(inner, ledger, leaf_key="leaf", batch_size=inner.batch_size)
            try:
                return await generate_leaf(leaf, t, settings, taxonomy_root=root)
            finally:
                await teacher.aclose()

    return run(go())


def ledger_rows(path: Path) -> list[tuple[str, str]]:
    with Ledger(path) as ledger:
        return sorted(ledger.conn.execute("SELECT key, response FROM requests").fetchall())


def comparable(result: LeafResult) -> str:
    stats = {k: v for k, v in result.stats.items() if k != "seconds"}
    return json.dumps([result.samples, result.held_out, stats])


SKILL = GenerationSettings(samples_per_leaf=6, seed=5, questions_per_request=1)
KNOWLEDGE = GenerationSettings(samples_per_leaf=1, seed=5, chunk_tokens=400, mc_per_leaf=3, max_requests_per_leaf=2,
                               qa_per_request=3)


@pytest.mark.parametrize("kind", ["skill", "knowledge"])
def test_one_leaf_fills_the_concurrency(tmp_path: Path, kind: str) -> None:
    """Every stage of these leaves is smaller than the concurrency, so sending a stage at a time never
    had more than its largest stage in flight; streamed, the judges' calibration goes out beside the
    rows still being judged and the server sees the whole window."""
    leaf, settings = (freeform_leaf(), SKILL) if kind == "skill" else (knowledge_leaf(tmp_path), KNOWLEDGE)
    with OpenAIServer(judging(), delay_ms=300) as server:
        result = generate(server, leaf, settings, tmp_path, tmp_path / "ledger.sqlite", concurrency=16)
        peak = server.max_in_flight
    largest = max(st["requests"] for st in result.stats["stages"].values())
    assert largest < 16 and peak == 16, (peak, result.stats["stages"])
    assert result.samples and result.stats["failed_requests"] == 0


@pytest.mark.parametrize("kind", ["grounded", "knowledge"])
def test_replies_out_of_order_give_what_concurrency_1_gives(tmp_path: Path, kind: str) -> None:
    leaf, settings = ((grounded_leaf(), SKILL.with_(questions_per_request=3)) if kind == "grounded"
                      else (knowledge_leaf(tmp_path), KNOWLEDGE.with_(samples_per_leaf=4, chunk_tokens=60)))
    with OpenAIServer(judging(jitter=0.05)) as server:
        streamed = generate(server, leaf, settings, tmp_path, tmp_path / "a.sqlite", concurrency=16)
        peak = server.max_in_flight
        server.reset()
        one = generate(server, leaf, settings, tmp_path, tmp_path / "b.sqlite", concurrency=1)
        assert server.max_in_flight == 1
    assert peak > 1 and streamed.samples and streamed.held_out
    assert comparable(streamed) == comparable(one)
    assert ledger_rows(tmp_path / "a.sqlite") == ledger_rows(tmp_path / "b.sqlite")
    assert streamed.stats["calibration"] and all(c["status"] != "text" for c in streamed.stats["calibration"].values())


class Batching:
    """An in-process-style teacher around the real client: it takes `batch_size` requests per call
    and records each call's size and the requests in its hands at once."""

    def __init__(self, inner: Teacher, batch_size: int) -> None:
        self.inner = inner
        self.model_id = inner.model_id
        self.batch_size = batch_size
        self.concurrency = 1
        self.sizes: list[int] = []
        self.holding = 0
        self.most = 0

    async def complete(self, requests: Sequence[TeacherRequest]) -> list[TeacherResponse]:
        self.sizes.append(len(requests))
        self.holding += len(requests)
        self.most = max(self.most, self.holding)
        try:
            return await self.inner.complete(requests)
        finally:
            self.holding -= len(requests)

    async def aclose(self) -> None:
        await self.inner.aclose()


def test_an_in_process_teacher_gets_ready_requests_in_batches(tmp_path: Path) -> None:
    wrapped: list[Batching] = []

    def wrap(teacher: Teacher) -> Batching:
        wrapped.append(Batching(teacher, 4))
        return wrapped[-1]

    with OpenAIServer(judging(jitter=0.02)) as server:
        batched = generate(server, freeform_leaf(), SKILL, tmp_path, tmp_path / "a.sqlite", concurrency=16, wrap=wrap)
        plain = generate(server, freeform_leaf(), SKILL, tmp_path, tmp_path / "b.sqlite", concurrency=1)
    sizes = wrapped[0].sizes
    assert max(sizes) == 4 and wrapped[0].most <= 4  # a batch at a time, never more than one batch held
    assert sum(sizes) == batched.stats["requests"] + sum(  # every request, retries included, once
        st.get("retried_unreadable", 0) for st in batched.stats["stages"].values())
    assert comparable(batched) == comparable(plain)
