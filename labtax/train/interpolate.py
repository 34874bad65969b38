"""A phase's result pulled back toward where it started: weight-space interpolation (`interpolate`).

    selected = start + interpolate x (trained - start)

Why: phase 1 trains a few dozen knowledge rows for many epochs (each fact ~24 exposures), and on a
135M student that moves every skill far from where it was: on bench/heldout2 (session 8) the haiku
leaf's held-out references went from -4.77 nats a token (the pretrained student) to -6.16 at the end
of phase 1, and phase 2's few skill steps brought it back only to -4.89 (the gate: regressed against
the student trained without the new leaf, -4.50). Interpolating between fine-tuned and starting
weights (WiSE-FT, Wortsman et al. 2022) is the standard way to keep much of what fine-tuning learned
while undoing part of what it disturbed. Measured, halfway back is not a default: on both held-out
taxonomies it kept or raised closed-book recall and brought every skill leaf closer to the student
trained without the new leaf, on the demo's taxonomy two skill leaves got worse (docs/train.md,
*Pulling phase 1 back*).

Only the selected checkpoint is interpolated, into a folder of its own beside the trained ones
(`checkpoints/interpolated_<samples>`), and the phase's result selects that one. A LoRA run keeps its
trained checkpoint: its folder carries an adapter, which a merged interpolation would contradict. Nor
does a run that starts from `tiny`, labtax's random test model: its weights hold nothing to keep.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from labtax.errors import UsageError
from labtax.models import load_model
from labtax.train.checkpoint import CHECKPOINT_META, replace_dir, writing
from labtax.util.atomic import atomic_write_text

PREFIX = "interpolated_"


def interpolate_checkpoint(start: str, trained: Path, weight: float, seed: int) -> Path:
    """`trained` moved back toward `start` (a model name or folder): start + weight x (trained - start),
    tensor by tensor in fp32, stored in the checkpoint's own dtype, as a sibling folder; returns it. The
    start's weights are read once, in fp32 on the CPU of the process that writes the result."""
    origin = {k: v.detach().to(torch.float32) for k, v in load_model(start, seed=seed).state_dict().items()}
    target = trained.with_name(PREFIX + trained.name.rsplit("_", 1)[-1])
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        with writing(target, "the interpolated checkpoint"):  # a full disk is one line, as for any save
            _write_mixed(origin, start, trained, weight, tmp)
            replace_dir(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _write_mixed(origin: dict[str, torch.Tensor], start: str, trained: Path, weight: float, tmp: Path) -> None:
    """The interpolated checkpoint's files in `tmp`: the trained folder's, its weights mixed with `origin`."""
    shutil.copytree(trained, tmp, ignore=shutil.ignore_patterns("*.safetensors"))
    for path in sorted(trained.glob("*.safetensors")):
        mixed: dict[str, torch.Tensor] = {}
        for name, value in load_file(str(path)).items():
            base = origin.get(name)
            if base is None or not value.is_floating_point() or base.shape != value.shape:
                raise UsageError(f"{path}: tensor {name} has no counterpart in {start}, the phase's start",
                                 hint="interpolate needs the checkpoint and its start to be the same model")
            mixed[name] = (base + weight * (value.to(torch.float32) - base)).to(value.dtype).contiguous()
        save_file(mixed, str(tmp / path.name), metadata={"format": "pt"})
    meta_path = tmp / CHECKPOINT_META
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    meta.update({"interpolated_from": str(trained), "interpolate": weight, "interpolate_start": start})
    atomic_write_text(meta_path, json.dumps(meta, indent=1))


def interpolated_selection(selected: dict[str, Any], start: str, weight: float, seed: int) -> dict[str, Any]:
    """The phase result's `selected` record for the interpolated checkpoint of `selected`."""
    path = interpolate_checkpoint(start, Path(selected["path"]), weight, seed)
    reason = f"interpolated ({weight:g} of the way from the start to {Path(selected['path']).name})"
    return {**selected, "path": str(path), "test_loss": None, "reason": reason,
            "interpolated_from": selected["path"], "interpolate": weight}
