"""QLoRA (--load-in-4bit) on the CPU: bitsandbytes (>= 0.48) quantizes NF4 and runs its 4-bit layers
there, so both phases train through labtax's own 4-bit load (`run_training`, the CLI's call after its
CUDA check, which keeps users without a GPU out). Checked: only the adapter trained, each merged folder
is the dequantized 4-bit base + B·A·scaling in full precision (no quantization_config), and it loads
as a plain checkpoint giving the adapted 4-bit model's logits."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file
from train_fixtures import make_data_dir

RANK, ALPHA = 4, 8
SEED = 42


def _bnb_quantizes_here() -> bool:
    try:
        import bitsandbytes.functional as bnb_f

        packed, state = bnb_f.quantize_4bit(torch.randn(64, 64, dtype=torch.bfloat16), quant_type="nf4")
        return bnb_f.dequantize_4bit(packed, state).shape == (64, 64)
    except (ImportError, RuntimeError):  # absent, or no 4-bit kernels for this device: nothing to run on
        return False


pytestmark = pytest.mark.skipif(not _bnb_quantizes_here(), reason="bitsandbytes cannot quantize NF4 here")


def _dequantized_base(start: str) -> dict[str, torch.Tensor]:
    """The start model as labtax's QLoRA loads it (4-bit NF4, bf16 elsewhere), every weight in fp32:
    4-bit layers through bitsandbytes' dequantize_4bit (via PEFT's helper)."""
    from peft.utils.integrations import dequantize_module_weight

    from labtax.train.lora import load_4bit

    model = load_4bit(start, SEED)
    out = {k: v.float() for k, v in model.state_dict().items() if ".weight." not in k}
    for name, module in model.named_modules():
        if type(getattr(module, "weight", None)).__name__ == "Params4bit":
            out[f"{name}.weight"] = dequantize_module_weight(module).float()
    return out


def _adapted_logits(start: str, adapter: Path, ids: torch.Tensor) -> torch.Tensor:
    from peft import PeftModel

    from labtax.train.lora import load_4bit

    model = PeftModel.from_pretrained(load_4bit(start, SEED), str(adapter)).eval()
    with torch.no_grad():
        return model(input_ids=ids).logits.float()


def _check_phase(start: str, checkpoint: Path) -> None:
    from transformers import AutoModelForCausalLM

    merged = load_file(str(checkpoint / "model.safetensors"))
    config = json.loads((checkpoint / "config.json").read_text())
    assert "quantization_config" not in config
    assert all(v.dtype == torch.float32 for v in merged.values())
    base = _dequantized_base(start)
    adapter = load_file(str(checkpoint / "adapter" / "adapter_model.safetensors"))
    assert adapter and all("lora_" in k for k in adapter)
    adapted = set()
    for key, value in merged.items():
        expected = base[key]
        prefix = "base_model.model." + key.removesuffix(".weight")
        if f"{prefix}.lora_A.weight" in adapter:  # PEFT saves without the adapter name
            delta = adapter[f"{prefix}.lora_B.weight"].float() @ adapter[f"{prefix}.lora_A.weight"].float()
            assert delta.abs().max() > 0, key  # the adapter trained
            expected = expected + delta * (ALPHA / RANK)
            adapted.add(key)
        # Only the adapter trained: everything else is the base exactly as loaded, adapted layers its
        # dequantized weight plus the delta.
        torch.testing.assert_close(value, expected, atol=1e-6, rtol=1e-5, msg=key)
    assert len(adapted) == 7 * 2  # every linear layer of the 2 blocks (all-linear), not the head
    ids = torch.randint(0, 1000, (2, 12), generator=torch.Generator().manual_seed(0))
    plain = AutoModelForCausalLM.from_pretrained(str(checkpoint), dtype=torch.float32).eval()
    with torch.no_grad():
        logits = plain(input_ids=ids).logits
    # The adapted model computes in bf16 (its compute dtype); the merged one in fp32.
    torch.testing.assert_close(logits, _adapted_logits(start, checkpoint / "adapter", ids), atol=3e-2, rtol=3e-2)


def test_qlora_of_both_phases_on_cpu_merges_the_dequantized_base(tmp_path: Path) -> None:
    from labtax.models import load_model
    from labtax.train.config import load_config
    from labtax.train.lora import LoraSettings
    from labtax.train.phases import run_training

    data = make_data_dir(tmp_path / "data", n_knowledge=4, n_skills=4, n_replay=1, n_test=1, long_words=12)
    config = load_config(overrides={"max_steps": 2, "effective_batch": 2, "lr": 1e-2, "warmup_steps": 1,
                                    "seed": SEED})
    lora = LoraSettings(rank=RANK, alpha=ALPHA, dropout=0.0, load_in_4bit=True)
    summary: dict[str, Any] = run_training(data, "tiny", tmp_path / "run", ["knowledge", "skills"], config,
                                           select="last", save_dtype="fp32", lora=lora, log=lambda _: None)
    results = {p: json.loads((tmp_path / "run" / p / "result.json").read_text()) for p in ("knowledge", "skills")}
    assert results["knowledge"]["lora"]["load_in_4bit"] is True
    knowledge = Path(results["knowledge"]["selected"]["path"])
    skills = Path(results["skills"]["selected"]["path"])
    assert Path(summary["final"]) == skills
    _check_phase("tiny", knowledge)
    _check_phase(str(knowledge), skills)  # phase 2 quantized phase 1's merged folder
    load_model(str(skills))  # what eval, chat and export call


_DRIVER_CONFIG = {"epochs": 1, "effective_batch": 2, "lr": 1e-2, "warmup_steps": 1, "save_every": 2}


@pytest.mark.slow  # a training process killed, and two runs in this process
def test_a_killed_qlora_run_resumes_identically(tmp_path: Path) -> None:
    """The resumable state of a 4-bit model (packed weights, adapter, AdamW) loads back: the
    quant-state entries bitsandbytes adds to the state dict are not taken for unexpected keys. The
    uninterrupted and the resumed runs are `run_training` in this process, and so is the killed one,
    in a process forked from this one (the SIGKILL needs a process of its own; a fresh interpreter
    pays ~7 CPU-s of imports)."""
    import signal

    from train_fixtures import fork_call, kill_after_steps

    from labtax.train.config import load_config
    from labtax.train.lora import LoraSettings
    from labtax.train.phases import run_training

    data = make_data_dir(tmp_path / "data", n_knowledge=8, n_skills=2, n_replay=1, n_test=2, long_words=12)  # 4 steps

    def run(out: Path, **settings: Any) -> list[str]:  # each of the three runs, at one thread
        lines: list[str] = []
        threads = torch.get_num_threads()
        try:
            torch.set_num_threads(1)
            run_training(data, "tiny", out, ["knowledge"], load_config(overrides={**_DRIVER_CONFIG, **settings}),
                         select="last", save_dtype="fp32",
                         lora=LoraSettings(rank=4, alpha=8, dropout=0.0, load_in_4bit=True),
                         log=lines.append)
        finally:
            torch.set_num_threads(threads)
        return lines

    run(tmp_path / "whole", save_state=False)  # the reference: no resumable state to write
    killed = tmp_path / "killed"

    def killed_run() -> int:
        run(killed)
        return 0

    proc = fork_call(killed_run, tmp_path / "killed.log")
    metrics = killed / "knowledge" / "metrics.jsonl"
    kill_after_steps(proc, metrics, 2)
    assert proc.returncode == -signal.SIGKILL and not (killed / "knowledge" / "result.json").exists()
    assert any("resuming at step" in line for line in run(killed))  # from the state, not from the start
    last = {run_dir: Path(json.loads((run_dir / "knowledge" / "result.json").read_text())["selected"]["path"])
            for run_dir in (tmp_path / "whole", killed)}
    for sub in ("model.safetensors", "adapter/adapter_model.safetensors"):
        a, b = load_file(str(last[tmp_path / "whole"] / sub)), load_file(str(last[killed] / sub))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), sub
