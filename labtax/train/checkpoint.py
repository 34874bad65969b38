"""Checkpoints: Hugging Face model directories, and the full training state to resume a killed run.

Both are written into a temporary directory next to their final place and renamed into it, so a
kill at any moment leaves either the previous complete state or the new complete state. The state
is replaced by renaming the old one aside first; a kill between the two renames leaves `state.old`,
which `load_state` then uses.

Under FSDP the full (unsharded) state dicts are gathered to rank 0, which alone writes; on loading,
rank 0 reads and broadcasts. That keeps one checkpoint format for 1 or N processes.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from labtax.train.lm_loss import TrainModule
from labtax.train.parallel import Runtime

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

CHECKPOINT_META = "labtax_checkpoint.json"


def _options(runtime: Runtime, **extra: Any) -> Any:
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, cpu_offload=True, **extra)


def full_model_state(model: TrainModule, runtime: Runtime) -> dict[str, torch.Tensor]:
    """The unsharded HF model weights on CPU (on rank 0; other ranks get an empty dict when sharded)."""
    if not runtime.distributed:
        return {k: v.detach().cpu() for k, v in model.lm.state_dict().items()}
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    state = get_model_state_dict(model, options=_options(runtime))
    return {k.removeprefix("lm."): v for k, v in state.items()}  # type: ignore[misc]


def _replace_dir(tmp: Path, target: Path) -> None:
    """Rename a finished temporary directory onto `target`, keeping the old one until the new is in."""
    old = target.with_name(target.name + ".old")
    if target.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
    os.replace(tmp, target)
    shutil.rmtree(old, ignore_errors=True)


def save_hf(model: TrainModule, tokenizer: PreTrainedTokenizerBase, target: Path, runtime: Runtime,
            meta: dict[str, Any]) -> None:
    """Write a plain Hugging Face checkpoint (safetensors + config + tokenizer) that from_pretrained loads."""
    state = full_model_state(model, runtime)
    if runtime.is_main:
        from transformers import AutoModelForCausalLM

        dtype = runtime.checkpoint_dtype
        state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}

        tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        # A fresh, unwrapped module around the gathered weights: FSDP-wrapped modules and DTensors
        # are not what save_pretrained expects.
        with torch.device("meta"):
            plain = AutoModelForCausalLM.from_config(model.lm.config)
        plain.load_state_dict(state, assign=True, strict=False)
        plain.config.dtype = dtype  # config.json then says what the weights are
        if getattr(model.lm.config, "tie_word_embeddings", False):
            plain.tie_weights()
        plain.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / CHECKPOINT_META).write_text(json.dumps(meta, indent=1))
        target.parent.mkdir(parents=True, exist_ok=True)
        _replace_dir(tmp, target)
    runtime.barrier()


def _rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_state(model: TrainModule, optimizer: torch.optim.Optimizer, scheduler: Any, progress: dict[str, Any],
               target: Path, runtime: Runtime) -> None:
    """Write model, optimizer, scheduler, RNG states and the data position, atomically."""
    if runtime.distributed:
        from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

        model_state = full_model_state(model, runtime)
        optim_state = get_optimizer_state_dict(model, optimizer, options=_options(runtime))
    else:
        model_state = model.lm.state_dict()
        optim_state = optimizer.state_dict()
    if runtime.is_main:
        tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        torch.save({"model": model_state, "optimizer": optim_state, "scheduler": scheduler.state_dict(),
                    "rng": _rng_state()}, tmp / "state.pt")
        (tmp / "progress.json").write_text(json.dumps(progress, indent=1))
        _replace_dir(tmp, target)
    runtime.barrier()


def find_state(target: Path) -> Path | None:
    """The newest complete state directory, if any (`state`, else a `state.old` left by a kill)."""
    for candidate in (target, target.with_name(target.name + ".old")):
        if (candidate / "progress.json").is_file() and (candidate / "state.pt").is_file():
            return candidate
    return None


def load_state(model: TrainModule, optimizer: torch.optim.Optimizer, scheduler: Any, source: Path,
               runtime: Runtime) -> dict[str, Any]:
    """Restore everything `save_state` wrote; returns the saved progress (data position)."""
    blob = torch.load(source / "state.pt", map_location="cpu", weights_only=False)
    if runtime.distributed:
        from torch.distributed.checkpoint.state_dict import set_model_state_dict, set_optimizer_state_dict

        set_model_state_dict(model, {f"lm.{k}": v for k, v in blob["model"].items()}, options=_options(runtime))
        set_optimizer_state_dict(model, optimizer, blob["optimizer"], options=_options(runtime))
    else:
        model.lm.load_state_dict(blob["model"])
        optimizer.load_state_dict(blob["optimizer"])
    scheduler.load_state_dict(blob["scheduler"])
    _set_rng_state(blob["rng"])
    return json.loads((source / "progress.json").read_text())
