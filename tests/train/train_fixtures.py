"""Small, deterministic training data in the messages format the generator writes."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

WORDS = ["the", "river", "flows", "north", "past", "old", "mills", "and", "the", "town", "keeps", "records", "of", "every", "flood", "since", "the", "founding", "of", "its", "first", "bridge", "across", "the", "valley", "where", "farmers", "grow", "barley", "and", "rye"]


def _text(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def make_sample(rng: random.Random, leaf: str, answer_words: int, unmask: bool = False,
                replay: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"leaf": leaf}
    if replay:
        meta["replay"] = True
    return {"messages": [{"role": "system", "content": "You are a careful assistant."},
                         {"role": "user", "content": _text(rng, rng.randint(4, 12)) + "?"},
                         {"role": "assistant", "content": _text(rng, answer_words)}],
            "metadata": meta, "unmask": unmask}


def write_jsonl(path: Path, samples: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(s) + "\n" for s in samples))
    return path


def make_data_dir(root: Path, n_knowledge: int = 24, n_skills: int = 16, n_replay: int = 6,
                  n_test: int = 6, seed: int = 0, long_words: int = 60, validation: bool = True) -> Path:
    """phase1_knowledge.jsonl, phase2_skills.jsonl (skills + knowledge replay), test.jsonl and, unless
    `validation` is False, validation.jsonl (the test rows again: `--select loss` measures it)."""
    rng = random.Random(seed)
    knowledge = [make_sample(rng, "knowledge/history/rivers", rng.randint(5, long_words), unmask=i % 4 == 0)
                 for i in range(n_knowledge)]
    skills = [make_sample(rng, "compositional_skills/writing/haiku", rng.randint(3, 20)) for _ in range(n_skills)]
    skills += [dict(s, metadata={**s["metadata"], "replay": True}) for s in knowledge[:n_replay]]
    rng.shuffle(skills)
    test = [make_sample(rng, "knowledge/history/rivers", rng.randint(5, 20)) for _ in range(n_test)]
    write_jsonl(root / "phase1_knowledge.jsonl", knowledge)
    write_jsonl(root / "phase2_skills.jsonl", skills)
    write_jsonl(root / "test.jsonl", test)
    if validation:
        write_jsonl(root / "validation.jsonl", test)
    return root


REPO = Path(__file__).resolve().parents[2]


def run_cli(args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """`python -m labtax ...` in a subprocess with one thread, so that runs are comparable."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "labtax", *args], capture_output=True, text=True,
                          env=env, cwd=REPO, check=False, **kwargs)


def invoke_cli(args: list[str]) -> subprocess.CompletedProcess[str]:
    """`labtax ARGS` in this process (click's runner), returned as run_cli returns it. Where the process
    boundary is not what a test checks: a `labtax train` subprocess pays ~6 CPU-s importing torch and
    transformers before its first step, more than a tiny model's whole run."""
    import torch
    from click.testing import CliRunner

    from labtax.cli import cli

    # One thread, as run_cli's subprocess has: a run compared bit for bit with a subprocess's (a resumed
    # one) sums its floats in the same order only with the same thread count.
    threads = torch.get_num_threads()
    try:
        result = CliRunner().invoke(cli, args, env={"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},
                                    catch_exceptions=False)
    finally:
        torch.set_num_threads(threads)
    return subprocess.CompletedProcess(["labtax", *args], result.exit_code, result.stdout, result.stderr)


def step_records(metrics: Path) -> list[dict[str, Any]]:
    return [r for r in map(json.loads, metrics.read_text().splitlines()) if r.get("event") == "step"]


def kill_after_steps(proc: subprocess.Popen[bytes], metrics: Path, steps: int, timeout: float = 300.0) -> None:
    """SIGKILL `proc` once its `metrics` file records `steps` optimizer steps (or it ended, or
    `timeout` passed), and reap it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if metrics.exists() and len(step_records(metrics)) >= steps:
                break
        except ValueError:  # a line being written
            pass
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
