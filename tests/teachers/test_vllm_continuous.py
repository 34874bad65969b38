"""The in-process vllm teacher feeds vLLM's engine continuously (issue 23 item 5): requests join the
running batch between two engine steps and each comes back the step it finishes, instead of one
static `LLM.chat` call at a time. The engine is a stand-in with vLLM's `LLMEngine` step API
(tests/vllm_standin.py); the real engine runs in `make check-vllm`."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from vllm_standin import SamplingParams, StepLLM

from labtax.models import load_tokenizer
from labtax.teachers.base import TeacherRequest
from labtax.teachers.vllm import VLLMTeacher
from labtax.teachers.vllm_choices import TOP_LOGPROBS

ENGINE = SimpleNamespace(LLM=StepLLM, SamplingParams=SamplingParams)


@pytest.fixture
def teacher() -> Any:
    StepLLM.tokenizer, StepLLM.step_seconds = load_tokenizer("tiny"), 0.002
    t = VLLMTeacher("/m", engine_module=ENGINE)
    yield t
    asyncio.run(t.aclose())


def ask(text: str, max_tokens: int, seed: int, **kw: Any) -> TeacherRequest:
    return TeacherRequest(messages=(("system", "be brief"), ("user", text)), max_tokens=max_tokens, seed=seed, **kw)


def test_short_requests_join_a_long_one_and_come_back_before_it(teacher: Any) -> None:
    engine = teacher.llm.llm_engine

    async def go() -> tuple[list[Any], list[Any], bool]:
        long = asyncio.ensure_future(teacher.complete([ask("write a long story", 300, 1)]))
        while len(engine.batch_sizes) < 5:  # the long request is decoding
            await asyncio.sleep(0.005)
        short = await teacher.complete([ask(f"question {i}", 4, 10 + i) for i in range(3)])
        still_running = not long.done()
        return await long, short, still_running

    (long,), short, still_running = asyncio.run(go())
    assert still_running  # the short ones did not wait for the long one's end
    ids = {rid: i for i, (rid, _, _) in enumerate(engine.added)}
    long_id, short_ids = engine.added[0][0], [rid for rid, _, _ in engine.added[1:]]
    assert all(engine.finished_at[s] < engine.finished_at[long_id] for s in short_ids)
    assert max(engine.batch_sizes) == 4 and sorted(ids) == sorted(engine.finished_at)
    assert [r.text for r in short] == [f"seed{10 + i} w0 w1 w2" for i in range(3)]
    assert long.ok and long.completion_tokens == 300 and all(r.completion_tokens == 4 for r in short)
    # The prompt is the chat template's text, tokenized without adding special tokens again.
    tok = StepLLM.tokenizer
    text = tok.apply_chat_template(ask("question 0", 4, 10).as_messages(), tokenize=False, add_generation_prompt=True)
    assert engine.added[1][1] == tok(text, add_special_tokens=False)["input_ids"]
    assert [(p.max_tokens, p.seed) for _, _, p in engine.added] == [(300, 1), (4, 10), (4, 11), (4, 12)]
    assert teacher.stats().counts["engine_running_max"] == 4


def test_verdicts_are_one_step_with_logprobs_through_the_fed_engine(teacher: Any) -> None:
    verdict = ("yes", "no")
    out = asyncio.run(teacher.complete([ask("lean yes", 64, 1, choices=verdict), ask("a poem", 8, 2),
                                        ask("lean no", 64, 3, choices=verdict), ask("no idea", 16, 4, choices=verdict)]))
    assert out[0].text == "yes" and out[0].choice_probs is not None and out[0].choice_probs["yes"] > 0.9
    assert out[2].text == "no" and out[2].choice_probs is not None and out[2].choice_probs["no"] > 0.9
    assert out[1].choice_probs is None and out[1].completion_tokens == 8
    # No choice among the top tokens: generated as text afterwards, with the request's own budget.
    assert out[3].choice_probs is None and out[3].completion_tokens == 16
    params = [p for _, _, p in teacher.llm.llm_engine.added]
    assert sorted((p.max_tokens, p.logprobs) for p in params) == sorted(
        [(1, TOP_LOGPROBS)] * 3 + [(8, None), (16, None)])


def test_an_engine_error_fails_the_requests_in_it_and_the_engine_goes_on(teacher: Any) -> None:
    failed = asyncio.run(teacher.complete([ask("FAIL now", 4, 1)]))
    assert not failed[0].ok and "generation failed: CUDA error" in failed[0].error
    again = asyncio.run(teacher.complete([ask("fine", 4, 2)]))
    assert again[0].ok and again[0].text == "seed2 w0 w1 w2"
