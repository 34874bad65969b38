"""LoRA through PEFT in `labtax train` (short answers, long_words=12: the LM head costs per token and
nothing here counts tokens): both phases train only adapter parameters, each checkpoint is the
merged model (= base + adapter, as PEFT merges it) with the adapter beside it, eval/chat read the adapter
folder, a killed run resumes identically, and --load-in-4bit without CUDA is one line and exit 2."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file
from train_fixtures import (
    fork_cli,
    fork_ranks,
    invoke_cli,
    kill_after_steps,
    make_data_dir,
    no_state_config,
    step_records,
)

from labtax.cli import cli

LORA = ["--lora-rank", "4", "--lora-alpha", "8", "--lora-dropout", "0"]
TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def _train(data: Path, out: Path, model: str, *extra: str) -> dict[str, Any]:
    result = invoke_cli(["train", "--data", str(data), "--model", model, "--output", str(out), "--select", "last",
                         "--report-to", "none", "--effective-batch", "2", "--lr", "1e-2", "--warmup-steps", "1",
                         *LORA, *extra])
    assert result.returncode == 0, result.stderr[-3000:]
    assert "parameters trained" in result.stderr
    return {p: json.loads((out / p / "result.json").read_text()) for p in ("knowledge", "skills")}


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def _check_phase(start: dict[str, torch.Tensor], checkpoint: Path, base_name: str) -> None:
    """Only the adapted linear layers moved; the merged folder is PEFT's merge of base + adapter."""
    from peft import PeftModel

    from labtax.models import adapter_base, load_model

    merged = _weights(checkpoint)
    moved = {k for k in merged if not torch.equal(merged[k], start[k])}
    assert moved and all(k.endswith(".weight") and k.split(".")[-2] in TARGETS for k in moved), sorted(moved)[:5]
    adapter = checkpoint / "adapter"
    assert (adapter / "adapter_config.json").is_file() and (adapter / "adapter_model.safetensors").is_file()
    assert adapter_base(adapter) == base_name
    peft_merged = PeftModel.from_pretrained(load_model(base_name), str(adapter)).merge_and_unload().state_dict()
    for key, value in merged.items():
        torch.testing.assert_close(value, peft_merged[key], atol=1e-5, rtol=1e-4)
    # eval --candidate and chat take the adapter folder: it loads as the merged model.
    loaded = load_model(str(adapter)).state_dict()
    for key, value in merged.items():
        torch.testing.assert_close(value, loaded[key], atol=1e-5, rtol=1e-4)


def test_lora_of_both_phases_on_tiny_trains_only_the_adapter(tmp_path: Path) -> None:
    from labtax.models import load_model
    from labtax.use.chat import ChatOptions, open_session

    data = make_data_dir(tmp_path / "data", n_knowledge=6, n_skills=4, n_replay=2, n_test=2, long_words=12)
    results = _train(data, tmp_path / "run", "tiny", "--max-steps", "2")
    assert results["knowledge"]["lora"] == {"rank": 4, "alpha": 8.0, "dropout": 0.0, "target_modules": "all-linear",
                                            "load_in_4bit": False}
    knowledge = Path(results["knowledge"]["selected"]["path"])
    _check_phase({k: v for k, v in load_model("tiny").state_dict().items()}, knowledge, "tiny")
    skills = Path(results["skills"]["selected"]["path"])
    _check_phase(_weights(knowledge), skills, str(knowledge))
    session = open_session(ChatOptions(model=str(skills / "adapter"), max_new_tokens=3, threads=1))
    session.reply("hello")
    assert len(session.history) == 2
    result = CliRunner().invoke(cli, ["eval", "--base", "tiny", "--candidate", str(knowledge / "adapter"), "--data",
                                      str(data), "--leaves", "all", "--format", "json", "-q"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output[result.output.index("{"):])["candidate"]["model"] == str(knowledge / "adapter")
    (knowledge / "adapter" / "adapter_model.safetensors").rename(knowledge / "adapter" / "adapter_model.bin")
    result = CliRunner().invoke(cli, ["eval", "--base", "tiny", "--candidate", str(knowledge / "adapter"), "--data",
                                      str(data), "--leaves", "all"])
    assert result.exit_code == 2 and "no adapter_model.safetensors" in result.output


def test_lora_on_embedded_small_both_phases(tmp_path: Path) -> None:
    from labtax.models import load_model

    data = make_data_dir(tmp_path / "data", n_knowledge=2, n_skills=2, n_replay=1, n_test=1, long_words=12)
    # No resumable state (the killed-run test resumes one): 135M weights and their AdamW moments written
    # for each phase cost more than its training step.
    config = tmp_path / "no-state.yaml"
    config.write_text("common:\n  save_state: false\n")
    results = _train(data, tmp_path / "run", "embedded-small", "--max-steps", "1",
                     "--lora-target-modules", "q_proj,v_proj", "--config", str(config))
    knowledge = Path(results["knowledge"]["selected"]["path"])
    merged = _weights(knowledge)
    base = load_model("embedded-small").state_dict()
    moved = {k for k in merged if not torch.equal(merged[k], base[k])}
    assert moved and {k.split(".")[-2] for k in moved} <= {"q_proj", "v_proj"}
    assert (Path(results["skills"]["selected"]["path"]) / "adapter" / "adapter_model.safetensors").is_file()


@pytest.mark.slow  # two runs in this process and a killed one
def test_a_killed_lora_run_resumes_identically(tmp_path: Path) -> None:
    # 4 steps, a state each; killed after step 2.
    data = make_data_dir(tmp_path / "data", n_knowledge=8, n_skills=4, n_replay=2, n_test=2, long_words=12)
    args = ["train", "--data", str(data), "--model", "tiny", "--phase", "knowledge", "--select", "last",
            "--report-to", "none", "--effective-batch", "2", "--epochs", "1", "--save-every", "2", *LORA]
    whole = invoke_cli([*args, *no_state_config(tmp_path), "--output", str(tmp_path / "whole")])
    assert whole.returncode == 0, whole.stderr[-2000:]
    killed = tmp_path / "killed"
    proc = fork_cli([*args, "--output", str(killed)], tmp_path / "killed.log")  # a real process, no new imports
    metrics = killed / "knowledge" / "metrics.jsonl"
    kill_after_steps(proc, metrics, 2)
    assert proc.returncode == -signal.SIGKILL and not (killed / "knowledge" / "result.json").exists()
    resumed = invoke_cli([*args, "--output", str(killed)])
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming at step" in resumed.stderr
    last = {run: Path(json.loads((run / "knowledge" / "result.json").read_text())["selected"]["path"])
            for run in (tmp_path / "whole", killed)}
    for sub in ("model.safetensors", "adapter/adapter_model.safetensors"):
        a, b = load_file(str(last[tmp_path / "whole"] / sub)), load_file(str(last[killed] / sub))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), sub


def test_load_in_4bit_without_cuda_is_one_line_and_exit_2(tmp_path: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is here")
    data = make_data_dir(tmp_path / "data")
    result = CliRunner().invoke(cli, ["train", "--data", str(data), "--model", "tiny", "--output", str(tmp_path / "o"),
                                      "--lora-rank", "4", "--load-in-4bit"])
    assert result.exit_code == 2
    assert result.output.startswith("labtax: error: --load-in-4bit (QLoRA) needs a CUDA GPU")
    assert len(result.output.strip().splitlines()) == 1
    result = CliRunner().invoke(cli, ["train", "--data", str(data), "--model", "tiny", "--output", str(tmp_path / "o"),
                                      "--lora-alpha", "8"])
    assert result.exit_code == 2 and "--lora-alpha need --lora-rank N" in result.output


@pytest.mark.slow  # two runs in this process and two of 2 gloo ranks
def test_fsdp2_lora_on_two_ranks_matches_one_process_and_resumes_on_one_and_two(tmp_path: Path) -> None:
    """PEFT's LoRA model sharded with FSDP2: only adapter parameters move, a 2-rank run killed after a
    state resumes on 2 ranks and on 1 equal to an uninterrupted 1-process run (losses and weights, 1e-4: AdamW at
    lr 1e-2 turns float-order differences of ~1e-7 into ~2e-5 in the adapter weights)."""
    import shutil

    from test_resume_distributed import _kill_after_state

    from labtax.models import load_model

    # 4 steps, killed after the state of step 2: each of the four runs trains and saves a state a step.
    data = make_data_dir(tmp_path / "data", n_knowledge=8, n_skills=4, n_replay=2, n_test=2, long_words=12)
    args = ["train", "--data", str(data), "--model", "tiny", "--phase", "knowledge", "--select", "last",
            "--report-to", "none", "--effective-batch", "2", "--epochs", "1", "--save-every", "2", "--lr", "1e-2",
            "--warmup-steps", "1", *LORA]
    whole = invoke_cli([*args, *no_state_config(tmp_path), "--output", str(tmp_path / "whole")])
    assert whole.returncode == 0, whole.stderr[-2000:]
    cut = tmp_path / "cut"
    _kill_after_state(fork_ranks([*args, "--output", str(cut)], tmp_path / "logs"), cut, 2)
    assert json.loads((cut / "knowledge" / "state" / "state.json").read_text())["world_size"] == 2
    # The optimizer holds the adapter alone: every AdamW moment saved is a LoRA matrix's.
    saved = json.loads((cut / "knowledge" / "state" / "rank00001.json").read_text())["tensors"]
    moments = [k for k in saved if k.startswith("optim/") and not k.endswith("/step")]
    assert moments and all("lora_" in k for k in moments)
    shutil.copytree(cut, tmp_path / "cut1")
    # Both 2-rank launches are ranks forked from this process (train_fixtures.fork_ranks): the torchrun
    # launch itself is test_resume_distributed's; a fresh rank pays ~7 CPU-s of imports.
    on_two = fork_ranks([*args, "--output", str(cut)], tmp_path / "logs2")
    assert [rank.wait() for rank in on_two] == [0, 0], on_two[0].output()[-3000:]
    assert "resuming at step" in on_two[0].output(), on_two[0].output()[-3000:]
    on_one = invoke_cli([*args, "--output", str(tmp_path / "cut1")])
    assert on_one.returncode == 0 and "resuming at step" in on_one.stderr, on_one.stderr[-3000:]
    reference = Path(json.loads((tmp_path / "whole" / "knowledge" / "result.json").read_text())["selected"]["path"])
    _check_phase(load_model("tiny").state_dict(), reference, "tiny")
    losses = [s["loss"] for s in step_records(tmp_path / "whole" / "knowledge" / "metrics.jsonl")]
    for run in (cut, tmp_path / "cut1"):
        last = Path(json.loads((run / "knowledge" / "result.json").read_text())["selected"]["path"])
        _check_phase(load_model("tiny").state_dict(), last, "tiny")  # only adapted layers moved
        for sub in ("model.safetensors", "adapter/adapter_model.safetensors"):
            a, b = load_file(str(reference / sub)), load_file(str(last / sub))
            assert a.keys() == b.keys(), sub
            for key in a:
                torch.testing.assert_close(b[key], a[key], atol=1e-4, rtol=0)  # as the full-weight 1-vs-2 test
        assert [s["loss"] for s in step_records(run / "knowledge" / "metrics.jsonl")] == pytest.approx(losses, abs=1e-4)


def test_a_packed_4bit_weight_counts_two_values_a_byte() -> None:
    # bitsandbytes' Params4bit keeps two 4-bit values in each uint8 of its storage (and carries a
    # quant_state): the learning-rate choice reads the model's size, so it must count values.
    import torch

    from labtax.train.lora import parameter_count

    net = torch.nn.Module()
    net.register_parameter("dense", torch.nn.Parameter(torch.zeros(8, 4), requires_grad=False))
    packed = torch.nn.Parameter(torch.zeros(16, 1, dtype=torch.uint8), requires_grad=False)
    packed.quant_state = object()  # type: ignore[attr-defined]
    net.register_parameter("packed", packed)
    assert parameter_count(net) == 32 + 32
