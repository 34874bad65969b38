"""The in-process vllm teacher honours `choices` (issue 15): a verdict is one decoding step with
`logprobs`, read into `choice_probs` like the transformers teacher and the openai teacher's logprobs
path; a text verdict only where no choice is among the top tokens. Runs without vllm: the mapping is
plain code, and the engine is a stand-in with vLLM's surface (the real one: `make check-vllm`),
using the real SmolLM2 tokenizer's ids."""

from __future__ import annotations

import asyncio
import math
from types import SimpleNamespace
from typing import Any

import pytest
from vllm_standin import SamplingParams as Params

from labtax.models import load_tokenizer
from labtax.teachers.base import TeacherRequest
from labtax.teachers.choices import token_ids
from labtax.teachers.vllm import VLLMTeacher
from labtax.teachers.vllm_choices import TOP_LOGPROBS, choice_probs


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    return load_tokenizer("tiny")


def lp(value: float) -> Any:
    return SimpleNamespace(logprob=value, rank=1, decoded_token="?")  # vllm.sequence.Logprob's fields


def test_choice_probabilities_from_one_position(tokenizer: Any) -> None:
    ids = token_ids(tokenizer, ("yes", "no"))
    yes, no = ids["yes"][0], ids["no"][-1]
    unrelated = tokenizer.encode(" The", add_special_tokens=False)[0]
    probs, mass = choice_probs({yes: lp(-0.2), no: lp(-2.0), unrelated: lp(-3.0)}, ids, ("yes", "no")) or ({}, 0)
    assert probs["yes"] == pytest.approx(math.exp(-0.2) / (math.exp(-0.2) + math.exp(-2.0)), abs=1e-5)
    assert probs["yes"] + probs["no"] == pytest.approx(1.0) and mass == pytest.approx(math.exp(-0.2) + math.exp(-2.0))
    # Several spellings of one choice add up; plain floats work as well as Logprob objects.
    spelled = [i for i in ids["yes"] if i != yes][:1]
    both = choice_probs({yes: -1.0, **{i: -1.0 for i in spelled}, no: -1.0}, ids, ("yes", "no"))
    assert both is not None and both[0]["yes"] == pytest.approx((1 + len(spelled)) / (2 + len(spelled)), abs=1e-5)
    # No choice among the top tokens (or nothing usable): None, and the caller reads the text.
    assert choice_probs({unrelated: lp(-0.1)}, ids, ("yes", "no")) is None
    assert choice_probs({yes: lp(float("nan"))}, ids, ("yes", "no")) is None
    assert choice_probs(None, ids, ("yes", "no")) is None


class Engine:
    """vLLM's LLM surface: with `logprobs`, one step whose first position holds the choice tokens the
    prompt asks for ("lean yes" / "lean no"), or only an unrelated token ("no idea")."""

    tok: Any = None

    def __init__(self, model: str, **kwargs: Any) -> None:
        self.calls: list[list[Params]] = []

    def get_tokenizer(self) -> Any:
        return Engine.tok

    def chat(self, conversations: list[list[dict[str, str]]], params: list[Params], use_tqdm: bool,
             add_generation_prompt: bool) -> list[Any]:
        self.calls.append(list(params))
        ids = token_ids(self.tok, ("yes", "no"))
        out = []
        for conv, p in zip(conversations, params):
            text = conv[-1]["content"]
            if p.logprobs:
                position = ({ids["yes"][0]: lp(-0.1), ids["no"][0]: lp(-2.5)} if "lean yes" in text else
                            {ids["yes"][0]: lp(-2.5), ids["no"][0]: lp(-0.1)} if "lean no" in text else
                            {self.tok.encode(" The", add_special_tokens=False)[0]: lp(-0.1)})
                best = SimpleNamespace(text="x", token_ids=[1], finish_reason="length", logprobs=[position])
            else:
                best = SimpleNamespace(text=f" Verdict: yes ({p.max_tokens} tokens) ", token_ids=[1, 2, 3],
                                       finish_reason="stop", logprobs=None)
            out.append(SimpleNamespace(prompt_token_ids=[1, 2], outputs=[best]))
        return out


def test_the_vllm_teacher_reads_verdicts_from_logprobs(tokenizer: Any) -> None:
    Engine.tok = tokenizer
    teacher = VLLMTeacher("/m", engine_module=SimpleNamespace(LLM=Engine, SamplingParams=Params))
    verdict = ("yes", "no")
    requests = [
        TeacherRequest(messages=(("user", "lean yes"),), max_tokens=64, seed=1, choices=verdict),
        TeacherRequest(messages=(("user", "write a poem"),), max_tokens=32, seed=2),
        TeacherRequest(messages=(("user", "lean no"),), max_tokens=64, seed=3, choices=verdict),
        TeacherRequest(messages=(("user", "no idea"),), max_tokens=64, seed=4, choices=verdict),
    ]
    out = asyncio.run(teacher.complete(requests))
    assert out[0].text == "yes" and out[0].choice_probs is not None and out[0].choice_probs["yes"] > 0.9
    assert out[2].text == "no" and out[2].choice_probs is not None and out[2].choice_probs["no"] > 0.9
    assert out[0].extra["choice_mass"] == pytest.approx(math.exp(-0.1) + math.exp(-2.5), abs=1e-5)
    # The plain request, and the verdict whose top tokens held no choice, are generated as text.
    assert out[1].text == "Verdict: yes (32 tokens)" and out[1].choice_probs is None
    assert out[3].text == "Verdict: yes (64 tokens)" and out[3].choice_probs is None
    scoring, generating = teacher.llm.calls
    assert [(p.max_tokens, p.logprobs) for p in scoring] == [(1, TOP_LOGPROBS)] * 3
    assert [(p.max_tokens, p.logprobs, p.seed) for p in generating] == [(32, None, 2), (64, None, 4)]
