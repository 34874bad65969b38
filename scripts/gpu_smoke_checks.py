"""The checks of scripts/gpu_smoke_train.sh over its runs in WORK (args: WORK DEVICE, cuda or cpu).

Prints one line per run and phase, then per check; an assertion names what failed. On `cpu` (the
script's --cpu-dry-run) compute is fp32, so the bf16-noise tolerances are met with room."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def records(work: Path, run: str, phase: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (work / run / phase / "metrics.jsonl").read_text().splitlines()]


def check_phase(work: Path, run: str, phase: str, device: str) -> None:
    """Device, precision and the per-step figures of one phase of one run."""
    rec = records(work, run, phase)
    start = next(r for r in rec if r["event"] == "start")
    steps = [r for r in rec if r["event"] == "step"]
    compute = "bfloat16" if device == "cuda" else "float32"
    assert start["device"].startswith(device), (run, start["device"])
    assert start["compute_dtype"] == f"torch.{compute}" and start["fsdp"] == ("fsdp" in run), (run, start)
    losses = [s["loss"] for s in steps]
    assert losses and all(math.isfinite(x) for x in losses), (run, losses)
    (dtypes,) = [r for r in rec if r["event"] == "dtypes"]
    assert dtypes["params"] == dtypes["grads"] == dtypes["optimizer"] == ["float32"], (run, dtypes)
    assert dtypes["compute"] == compute, (run, dtypes)
    tps = sum(s["tokens"] for s in steps) / sum(s["seconds"] for s in steps)
    mfus = [s["mfu"] for s in steps if "mfu" in s]
    shown = f"mfu mean {sum(mfus) / len(mfus):.2%} max {max(mfus):.2%}" if mfus else "mfu n/a (peak unknown)"
    print(f"{run:9s} {phase:9s} ranks {start['world_size']} steps {len(steps)} lr {start['config']['lr']:.0e} "
          f"loss {losses[0]:.4f} -> {losses[-1]:.4f}  {tps:,.0f} tok/s  {shown}  attention {dtypes['attention']} "
          f"fused AdamW {dtypes['fused_adamw']}  trained params/grads/moments fp32, compute {compute}")


def check_run(work: Path, run: str, device: str) -> None:
    """Both phases; the final checkpoint loads and runs; phase 2 moved the weights (fp32 masters)."""
    from transformers import AutoModelForCausalLM

    for phase in ("knowledge", "skills"):
        check_phase(work, run, phase, device)
    summary = json.loads((work / run / "summary.json").read_text())
    model = AutoModelForCausalLM.from_pretrained(summary["final"]).to(device)
    with torch.no_grad():
        assert torch.isfinite(model(torch.tensor([[1, 2, 3]], device=device)).logits).all(), run
    knowledge = Path(summary["phases"]["knowledge"]["selected"]["path"])
    assert summary["phases"]["skills"]["start"] == str(knowledge), run
    before = load_file(str(knowledge / "model.safetensors"))
    after = load_file(str(Path(summary["final"]) / "model.safetensors"))
    moved_keys = {k for k in after if not torch.equal(after[k], before[k])}
    # The decoder layers' weights: most embedding rows belong to tokens the data never has, and AdamW
    # moves a row that never had a gradient by nothing, in any precision.
    layers = [k for k in after if ".layers." in k]
    moved = sum(int((after[k] != before[k]).sum()) for k in layers) / sum(after[k].numel() for k in layers)
    print(f"{run:9s} phase 2 at lr 6e-6 changed {moved:.1%} of the decoder layers' weights "
          f"({len(moved_keys)} tensors moved)")
    if "qlora" in run:  # phase 2 re-quantizes phase 1's folder: every 4-bit weight moves by rounding
        for phase in ("knowledge", "skills"):
            check_qlora(run, summary["phases"][phase]["start"], Path(summary["phases"][phase]["selected"]["path"]),
                        device)
    elif "lora" in run:
        check_lora(run, knowledge, Path(summary["final"]), moved_keys)
    else:
        assert moved > 0.5, (run, moved)


def check_lora(run: str, base: Path, final: Path, moved_keys: set[str]) -> None:
    """Only adapted layers moved; the merged folder equals PEFT's merge of base + adapter."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    assert moved_keys and all(k.split(".")[-2] in TARGETS for k in moved_keys), (run, sorted(moved_keys)[:4])
    merged = load_file(str(final / "model.safetensors"))
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    ref = PeftModel.from_pretrained(model, str(final / "adapter")).merge_and_unload().state_dict()
    diff = max((merged[k].float() - ref[k].float()).abs().max().item() for k in merged)
    print(f"{run:9s} only adapted layers moved; merged folder vs PEFT merge of base + adapter: max |diff| {diff:.1e}")
    assert diff < 1e-5, (run, diff)


def check_qlora(run: str, start: str, checkpoint: Path, device: str) -> None:
    """QLoRA: the merged folder is full precision (no quantization_config) and equals the start model as
    labtax loads it in 4-bit, dequantized by bitsandbytes, + B.A.scaling; its logits are the adapted
    4-bit model's (bf16 compute) within bf16 noise."""
    from peft import PeftModel
    from peft.utils.integrations import dequantize_module_weight
    from transformers import AutoModelForCausalLM

    from labtax.train.lora import load_4bit

    assert "quantization_config" not in json.loads((checkpoint / "config.json").read_text()), run
    merged = load_file(str(checkpoint / "model.safetensors"))
    adapter = load_file(str(checkpoint / "adapter" / "adapter_model.safetensors"))
    scaling = json.loads((checkpoint / "adapter" / "adapter_config.json").read_text())
    scaling = scaling["lora_alpha"] / scaling["r"]
    base4 = load_4bit(start)
    base = {k: v.float().cpu() for k, v in base4.state_dict().items() if ".weight." not in k}
    for name, module in base4.named_modules():
        if type(getattr(module, "weight", None)).__name__ == "Params4bit":
            base[f"{name}.weight"] = dequantize_module_weight(module).float().cpu()
    diff = 0.0
    for key, value in merged.items():
        expected = base[key]
        prefix = "base_model.model." + key.removesuffix(".weight")
        if f"{prefix}.lora_A.weight" in adapter:
            expected = expected + adapter[f"{prefix}.lora_B.weight"].float() @ adapter[f"{prefix}.lora_A.weight"].float() \
                * scaling
        diff = max(diff, (value.float() - expected).abs().max().item())
    adapted = PeftModel.from_pretrained(base4, str(checkpoint / "adapter")).eval()
    plain = AutoModelForCausalLM.from_pretrained(str(checkpoint), dtype=torch.float32).to(device).eval()
    ids = torch.randint(0, 1000, (2, 12), generator=torch.Generator().manual_seed(0)).to(device)
    with torch.no_grad():
        gap = (plain(input_ids=ids).logits.float() - adapted(input_ids=ids).logits.float()).abs().max().item()
    print(f"{run:9s} {checkpoint.parent.parent.name:9s} merged = dequantized NF4 base + adapter: max |diff| "
          f"{diff:.1e}; logits vs the adapted 4-bit model: max |diff| {gap:.1e}")
    assert diff < 1e-5 and gap < 5e-2, (run, checkpoint, diff, gap)


def check_agreement(work: Path, one: str, fsdp: str, device: str) -> None:
    tolerance = 5e-2 if device == "cuda" else 1e-4  # bf16 compute vs exact fp32
    for phase in ("knowledge", "skills"):
        a = [r["loss"] for r in records(work, one, phase) if r["event"] == "step"]
        b = [r["loss"] for r in records(work, fsdp, phase) if r["event"] == "step"]
        diff = max(abs(x - y) for x, y in zip(a, b))
        print(f"max |loss({one}) - loss({fsdp})| over {phase}: {diff:.2e} (tolerance {tolerance:g})")
        assert len(a) == len(b) and diff < tolerance, (one, fsdp, phase, diff)


def check_probe(work: Path, name: str) -> None:
    """The start-model load under torchrun equals a plain load: weights, buffers, the tied head."""
    from labtax.models import load_model

    folder = work / name
    ranks = sorted(json.loads(p.read_text())["rank"] for p in folder.glob("rank*.json"))
    reports = [json.loads((folder / f"rank{r}.json").read_text()) for r in ranks]
    reference = load_model(str(work / "start"), dtype=torch.float32)
    got = load_file(str(folder / "weights.safetensors"))
    expected = {k: v for k, v in reference.state_dict().items() if k != "lm_head.weight"}
    assert got.keys() == expected.keys(), name
    assert all(torch.equal(got[k], v) for k, v in expected.items()), name
    for rank in ranks:
        buffers = load_file(str(folder / f"buffers{rank}.safetensors"))
        assert all(torch.equal(buffers[f"buffer/{k}"], v) for k, v in reference.named_buffers()), (name, rank)
    assert all(r["tied"] for r in reports) and [r["meta_before_shard"] for r in reports] == [r > 0 for r in ranks]
    rss = ", ".join(f"rank {r['rank']} {r['max_rss_kib'] / 2**20:.2f} GiB" for r in reports)
    print(f"load {name}: {len(ranks)} rank(s), ranks > 0 built on meta, weights + buffers equal a plain load, "
          f"head tied; peak RSS {rss}")


def main(work: Path, device: str) -> None:
    for run in ("one", "fsdp", "lora-one", "lora-fsdp", "qlora-one"):
        if (work / run).is_dir():  # qlora-one: absent where bitsandbytes is not installed
            check_run(work, run, device)
    check_agreement(work, "one", "fsdp", device)
    check_agreement(work, "lora-one", "lora-fsdp", device)
    for name in (f"probe-{device}", "probe-gloo"):
        if (work / name).is_dir():
            check_probe(work, name)
    print("GPU SMOKE OK" if device == "cuda" else "CPU DRY RUN OK (the GPU checks' code paths, on gloo)")


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2])
