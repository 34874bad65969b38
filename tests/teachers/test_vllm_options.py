"""The vllm teacher's engine options and its scheduling, without a GPU.

The engine here is a stand-in with vLLM's `LLM`/`SamplingParams` surface that records what it is
given: what is under test is what labtax hands the engine (the options, `LLM.chat` with one
conversation and one SamplingParams per request, batches drained across leaves). The real engine
runs in `make check-vllm` (tests/teachers/test_vllm_engine.py, marked `vllm`)."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import click
import pytest
from click.testing import CliRunner
from vllm_standin import SamplingParams

from labtax.cli import cli
from labtax.cli_options import teacher_spec
from labtax.errors import UsageError
from labtax.teachers import TeacherSpec, make_teacher
from labtax.teachers.base import TeacherRequest
from labtax.teachers.vllm import VLLMEngineOptions, VLLMTeacher


@dataclass
class StandInLLM:
    model: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    calls: list[int] = field(default_factory=list)
    delay: float = 0.0

    def __init__(self, model: str, **kwargs: Any) -> None:
        self.model, self.kwargs, self.calls, self.delay = model, kwargs, [], 0.0

    def get_tokenizer(self) -> Any:
        return lambda text, add_special_tokens=True: {"input_ids": text.split()}

    def chat(self, conversations: list[list[dict[str, str]]], params: list[SamplingParams], use_tqdm: bool,
             add_generation_prompt: bool) -> list[Any]:
        assert len(conversations) == len(params) and use_tqdm is False and add_generation_prompt
        assert all(isinstance(m, dict) and set(m) == {"role", "content"} for c in conversations for m in c)
        self.calls.append(len(conversations))
        time.sleep(self.delay)
        return [SimpleNamespace(prompt_token_ids=[1, 2, 3], outputs=[SimpleNamespace(
            text=f" {c[-1]['content']} / seed {p.seed} ", token_ids=[7, 8], finish_reason="stop")])
            for c, p in zip(conversations, params)]


ENGINE = SimpleNamespace(LLM=StandInLLM, SamplingParams=SamplingParams)


def requests(leaf: str, n: int) -> list[TeacherRequest]:
    return [TeacherRequest(messages=(("system", "be brief"), ("user", f"{leaf} q{i}")), max_tokens=8, seed=i)
            for i in range(n)]


def test_generate_help_lists_the_engine_options() -> None:
    for command in ("generate", "diff-generate"):
        text = CliRunner().invoke(cli, [command, "--help"]).output
        for option in ("--tensor-parallel-size", "--max-model-len", "--gpu-memory-utilization", "--dtype"):
            assert option in text, (command, option)


def test_engine_options_reach_the_engine() -> None:
    options = VLLMEngineOptions(tensor_parallel_size=4, max_model_len=8192, gpu_memory_utilization=0.8,
                                dtype="bfloat16")
    teacher = VLLMTeacher("/models/teacher", options, engine_module=ENGINE)
    assert teacher.llm.model == "/models/teacher" and teacher.model_id == "vllm:/models/teacher"
    assert teacher.llm.kwargs == {"tensor_parallel_size": 4, "max_model_len": 8192,
                                  "gpu_memory_utilization": 0.8, "dtype": "bfloat16"}
    default = VLLMTeacher("/m", engine_module=ENGINE)
    assert "max_model_len" not in default.llm.kwargs and default.llm.kwargs["tensor_parallel_size"] == 1


def test_bad_engine_options_and_engine_options_without_vllm_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="gpu-memory-utilization"):
        VLLMEngineOptions(gpu_memory_utilization=1.5)
    with pytest.raises(UsageError, match="need --teacher vllm"):
        TeacherSpec(teacher="openai", endpoints=("http://h/v1",), tensor_parallel_size=2)
    with pytest.raises(UsageError, match="--dtype"):
        TeacherSpec(teacher="openai", endpoints=("http://h/v1",), dtype="bfloat16")
    result = CliRunner().invoke(cli, ["generate", "--teacher", "openai", "--endpoint", "http://127.0.0.1:9/v1",
                                      "--dtype", "bfloat16", "nowhere"])
    assert result.exit_code == 2
    args = ["--teacher", "vllm", "--tensor-parallel-size", "2", "--max-model-len", "4096",
            "--gpu-memory-utilization", "0.5", "--dtype", "float16"]
    spec = teacher_spec(cli.commands["generate"].make_context("generate", args, parent=click.Context(cli)).params)
    assert spec.vllm_options().as_kwargs() == {"tensor_parallel_size": 2, "max_model_len": 4096,
                                               "gpu_memory_utilization": 0.5, "dtype": "float16"}


def test_chat_with_one_sampling_params_per_request() -> None:
    teacher = VLLMTeacher("/m", engine_module=ENGINE)
    out = asyncio.run(teacher.complete(requests("leafA", 3)))
    assert [r.text for r in out] == ["leafA q0 / seed 0", "leafA q1 / seed 1", "leafA q2 / seed 2"]
    assert all(r.ok and r.prompt_tokens == 3 and r.completion_tokens == 2 for r in out)


def test_requests_of_concurrent_leaves_share_engine_calls() -> None:
    teacher = VLLMTeacher("/m", engine_module=ENGINE)
    teacher.llm.delay = 0.2

    async def leaves() -> list[list[str]]:
        first = await asyncio.gather(*(teacher.complete(requests(f"leaf{i}", 4)) for i in range(3)))
        return [[r.text for r in batch] for batch in first]

    texts = asyncio.run(leaves())
    assert teacher.llm.calls == [12]  # three leaves, one engine call
    assert texts[2] == [f"leaf2 q{i} / seed {i}" for i in range(4)]

    async def waves() -> None:
        started = threading.Event()

        async def late() -> None:
            await asyncio.to_thread(started.wait)
            await asyncio.gather(*(teacher.complete(requests(f"late{i}", 2)) for i in range(3)))

        async def early() -> None:
            task = asyncio.ensure_future(teacher.complete(requests("early", 5)))
            await asyncio.sleep(0.05)  # the engine is busy with the first call now
            started.set()
            await task

        await asyncio.gather(early(), late())

    teacher.llm.calls.clear()
    asyncio.run(waves())
    assert teacher.llm.calls == [5, 6]  # what arrived during a call went together into the next
    assert teacher.stats().counts["requests_per_call_max"] == 12


def test_several_endpoints_serving_different_models_are_refused() -> None:
    from openai_server import OpenAIServer, lab_responder

    with OpenAIServer(lab_responder(), model="model-a") as a, OpenAIServer(lab_responder(), model="model-b") as b, \
            OpenAIServer(lab_responder(), model="model-a") as a2:
        with pytest.raises(UsageError, match="serve different models") as refused:
            make_teacher("openai", endpoints=[a.base_url, b.base_url])
        assert "model-a" in str(refused.value) and "model-b" in str(refused.value)
        with pytest.raises(UsageError, match="--model model-a is not served by every --endpoint"):
            make_teacher("openai", endpoints=[a.base_url, b.base_url], model="model-a")
        same = make_teacher("openai", endpoints=[a.base_url, a2.base_url])
        assert same.model_id == "openai:model-a"
