"""Small, deterministic training data in the messages format the generator writes."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
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


def no_state_config(folder: Path) -> list[str]:
    """`--config FILE` turning the resumable state off, for the uninterrupted reference runs that the
    resume tests compare with: their weights and losses do not depend on it, and writing a state (the
    weights and two AdamW moments, 38 MB for tiny) costs ~0.2 CPU-s a save."""
    path = folder / "no-state.yaml"
    path.write_text("common:\n  save_state: false\n")
    return ["--config", str(path)]


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


def kill_after_steps(proc: subprocess.Popen[bytes] | Forked, metrics: Path, steps: int, timeout: float = 300.0) -> None:
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


class Forked:
    """A `labtax` process forked from this one (see fork_cli): its pid, its log, and Popen's calls."""

    def __init__(self, pid: int, log: Path) -> None:
        self.pid, self.log = pid, log
        self.returncode: int | None = None

    def _reaped(self, status: int) -> int:
        self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self._reaped(status)
        return self.returncode

    def wait(self, timeout: float = 300.0) -> int:
        deadline = time.monotonic() + timeout
        while self.poll() is None:
            if time.monotonic() > deadline:
                self.send_signal(signal.SIGKILL)
                self.wait()
                raise TimeoutError(f"labtax (pid {self.pid}) still running after {timeout} s: {self.log}")
            time.sleep(0.02)
        return self.returncode  # type: ignore[return-value]

    def send_signal(self, sig: int) -> None:
        if self.returncode is None:
            os.kill(self.pid, sig)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def _import_training() -> None:
    """What a `labtax train` imports before its first step, imported here once (the pytest process
    keeps it) so that no forked child pays for it again."""
    import importlib

    for name in ("torch.distributed.checkpoint.state_dict", "torch.distributed.fsdp",  # FSDP2, under torchrun
                 "transformers.models.llama.modeling_llama", "labtax.cli", "labtax.train.phases",
                 "matplotlib.figure"):  # the loss curve (train/reporting.py)
        importlib.import_module(name)


def fork_call(call: Callable[[], int], log: Path, env: dict[str, str] | None = None) -> Forked:
    """`call()` in a process of its own, forked from this one instead of started afresh: it can be
    killed and waited for as a subprocess can, exits with call's return value (70 on an exception,
    whose traceback goes to `log` with the child's stdout and stderr), and inherits the imports this
    process already paid for: a fresh `python -m labtax train` pays ~7 CPU-s importing torch and
    transformers before its first step, more than a tiny model's whole run. `env` is added to the
    child's environment (a rank's RANK, WORLD_SIZE, ...). Where a fresh interpreter is the point
    (torchrun's own launch, the import path, the process's exit code), tests use run_cli."""
    import torch

    _import_training()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        return Forked(pid, log)
    code = 70
    try:  # the child: never returns into pytest
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
        os.environ.update({"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", **(env or {})})
        torch.set_num_threads(1)  # as run_cli's subprocess: bit-equal sums need the same thread count
        code = call()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # noqa: BLE001  a crash is the child's exit code and its log, as in a subprocess
        import traceback

        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def fork_cli(args: list[str], log: Path, env: dict[str, str] | None = None) -> Forked:
    """`labtax ARGS` through its real entry point (labtax.cli.main: its exit codes, its one-line errors)
    in a forked process (fork_call)."""

    def labtax() -> int:
        from labtax.cli import main

        sys.argv = ["labtax", *args]
        main()
        return 0

    return fork_call(labtax, log, env)


def rank_env(rank: int, world: int, port: int) -> dict[str, str]:
    """The variables torchrun gives rank RANK of a one-node WORLD (labtax's marker included)."""
    return {"LABTAX_TORCHRUN": "1", "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world),
            "LOCAL_WORLD_SIZE": str(world), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fork_ranks(args: list[str], logs: Path, world: int = 2) -> list[Forked]:
    """`labtax ARGS` as the WORLD ranks of a one-node torchrun, each a forked process (fork_call)
    logging to LOGS/rankN.log: what `--nproc-per-node WORLD` starts, without the launcher and
    without a fresh interpreter a rank."""
    logs.mkdir(parents=True, exist_ok=True)
    port = free_port()
    return [fork_cli(args, logs / f"rank{r}.log", rank_env(r, world, port)) for r in range(world)]
