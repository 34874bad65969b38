"""Checkpoints: Hugging Face model directories, and the training state to resume a killed run.

Both are written into a temporary directory next to their final place and renamed into it, so a
kill at any moment leaves either the previous complete state or the new complete state. The state
is replaced by renaming the old one aside first; a kill between the two renames leaves `state.old`,
which `find_state` then uses.

The resumable state holds no pickle, so a state folder planted in a reused output directory (a
self-hosted runner keeps it between jobs) cannot run code:

  state/state.json               format, the run's inputs, progress (step, samples, checkpoints),
                                 the LR scheduler and the optimizer's hyper-parameters (JSON)
  state/rank00000.json           that rank's RNG states and the rows of each tensor it holds (JSON)
  state/rank00000.safetensors    that rank's tensors: model weights and AdamW moments (safetensors)

Under FSDP every rank writes its own shard (the rows of dimension 0 that FSDP2 gave it) and reads
only the rows its new shard needs, from whichever files hold them (safetensors reads slices without
loading a file), so a state saved by N ranks resumes on M. torch.distributed.checkpoint would do the
sharding, but its `.metadata` file is a pickle, which this format exists to avoid. `state.json` is
read and checked against the run's inputs before any tensor is opened. The gathered (unsharded)
weights are only written as the Hugging Face export (`save_hf`).
"""

from __future__ import annotations

import base64
import errno
import json
import math
import os
import random
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from labtax.errors import InputOutputError, LabtaxError, UsageError
from labtax.train.lm_loss import TrainModule
from labtax.train.lora import (
    ADAPTER_DIR,
    merged_state,
    plain_config,
    save_adapter,
    without_quant_state,
    wrapper_of,
)
from labtax.train.parallel import Runtime

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

CHECKPOINT_META = "labtax_checkpoint.json"
STATE_FORMAT = "labtax-train-state/2"
STATE_JSON = "state.json"
LEGACY_STATE = "state.pt"  # labtax before format 2: a torch pickle, never read


def _rank_files(rank: int) -> tuple[str, str]:
    return f"rank{rank:05d}.json", f"rank{rank:05d}.safetensors"


def _cause(exc: BaseException) -> str:
    """The reason of a failed write in a few words (an OSError's strerror, else the message's first line)."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = str(exc).strip().splitlines()
    # safetensors and torch report a full disk inside their own error text.
    if text and ("No space left" in text[0] or "os error 28" in text[0] or "StorageFull" in text[0]):
        return os.strerror(errno.ENOSPC)
    return text[0][:200] if text else type(exc).__name__


@contextmanager
def writing(path: Path, what: str) -> Iterator[None]:
    """Turn a failed write (full disk, read-only folder; torch and safetensors raise RuntimeError or
    their own error for these) into one InputOutputError line naming the path and the cause."""
    try:
        yield
    except LabtaxError:
        raise  # already one line that says what went wrong (a bad input is not a failed write)
    except Exception as exc:
        raise InputOutputError(f"cannot write {what} {path}: {_cause(exc)}") from exc


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


def replace_dir(tmp: Path, target: Path) -> None:
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
    lora = wrapper_of(model.lm) is not None
    state = full_model_state(model, runtime)  # gathered on rank 0 under FSDP (a collective: every rank)
    if runtime.is_main:
        adapter = state
        # A LoRA run's checkpoint is the merged model (a plain HF folder), with the adapter beside it.
        state = merged_state(model.lm, adapter) if lora else state
        from transformers import AutoModelForCausalLM

        dtype = runtime.checkpoint_dtype
        state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}

        tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        # A fresh, unwrapped module around the gathered weights: FSDP-wrapped modules and DTensors
        # are not what save_pretrained expects.
        with torch.device("meta"):
            plain = AutoModelForCausalLM.from_config(plain_config(model.lm.config))  # QLoRA: not 4-bit
        plain.load_state_dict(state, assign=True, strict=False)
        plain.config.dtype = dtype  # config.json then says what the weights are
        if getattr(model.lm.config, "tie_word_embeddings", False):
            plain.tie_weights()
        try:
            with writing(target, "the checkpoint"):
                plain.save_pretrained(tmp)
                tokenizer.save_pretrained(tmp)
                if lora:
                    save_adapter(model.lm, tmp / ADAPTER_DIR, tokenizer, adapter)
                (tmp / CHECKPOINT_META).write_text(json.dumps(meta, indent=1))
                target.parent.mkdir(parents=True, exist_ok=True)
                replace_dir(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)  # a failed save leaves nothing half-written behind
    runtime.barrier()


# ---------------------------------------------------------------- RNG states as JSON


def _b64(t: torch.Tensor) -> str:
    return base64.b64encode(t.numpy().tobytes()).decode()


def _unb64(text: str) -> torch.Tensor:
    return torch.frombuffer(bytearray(base64.b64decode(text)), dtype=torch.uint8).clone()


def _rng_state(runtime: Runtime) -> dict[str, Any]:
    """This rank's generators: python, numpy, torch CPU and, on a GPU, its own device's (not every
    visible device's: a resume where fewer devices are visible must not index past them)."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": [version, list(internal), gauss],
        "numpy": [kind, [int(k) for k in keys], int(pos), int(has_gauss), float(cached)],
        "torch": _b64(torch.get_rng_state()),
    }
    if runtime.device.type == "cuda":
        state["cuda"] = _b64(torch.cuda.get_rng_state(runtime.device))
    return state


def set_rng_state(state: dict[str, Any], runtime: Runtime) -> None:
    """Restore `_rng_state`'s generators; a device state goes to this rank's device only, and is
    skipped where this rank has none (a GPU run resumed on a CPU)."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(_unb64(state["torch"]))
    if "cuda" in state and runtime.device.type == "cuda":
        torch.cuda.set_rng_state(_unb64(state["cuda"]), runtime.device)


# ---------------------------------------------------------------- the sharded state


def _rows(total: int, rank: int, world: int) -> tuple[int, int]:
    """The dimension-0 rows FSDP2 gives `rank` of `world` (torch.chunk: ceil-sized pieces, in order)."""
    size = math.ceil(total / world) if total else 0
    return min(rank * size, total), min((rank + 1) * size, total)


def _local(value: Any, runtime: Runtime) -> tuple[torch.Tensor, list[int], int] | None:
    """(this rank's part, the global shape, its first row) of a state value; None when another rank
    holds it (a replicated tensor is written by rank 0 alone)."""
    from torch.distributed.tensor import DTensor, Shard

    if isinstance(value, DTensor):
        placements = value.placements
        if len(placements) != 1 or not isinstance(placements[0], Shard) or placements[0].dim != 0:
            raise UsageError(f"training state: unsupported tensor layout {placements}")
        local = value.to_local()
        shape = list(value.shape)
        lo, hi = _rows(shape[0], runtime.rank, runtime.world_size)
        if local.shape[0] != hi - lo:
            raise UsageError(f"training state: a shard of {local.shape[0]} rows where {hi - lo} were expected")
        return local, shape, lo
    if isinstance(value, torch.Tensor):
        return (value, list(value.shape), 0) if runtime.is_main else None
    return None


def _flatten(model: TrainModule, optimizer: torch.optim.Optimizer) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The model and optimizer state as one flat {name: tensor} (by parameter name, which does not
    depend on the world size), and the optimizer's parameter groups (hyper-parameters, names)."""
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        get_model_state_dict,
        get_optimizer_state_dict,
    )

    sharded = StateDictOptions(full_state_dict=False)
    model_state = without_quant_state(model, get_model_state_dict(model, options=sharded))  # QLoRA: see there
    flat: dict[str, Any] = {f"model/{k}": v for k, v in model_state.items()}
    optim: dict[str, Any] = dict(get_optimizer_state_dict(model, optimizer, options=sharded))
    for name, entries in optim["state"].items():
        for key, value in entries.items():
            flat[f"optim/{name}/{key}"] = value
    groups: list[dict[str, Any]] = optim["param_groups"]
    return flat, groups


def _plain(value: Any) -> Any:
    """A JSON-able copy of an optimizer hyper-parameter (tuples become lists, scalar tensors numbers)."""
    if isinstance(value, torch.Tensor):
        return value.item()
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


def save_state(model: TrainModule, optimizer: torch.optim.Optimizer, scheduler: Any, progress: dict[str, Any],
               target: Path, runtime: Runtime, inputs: dict[str, Any] | None = None) -> None:
    """Write model, optimizer, scheduler, RNG states and the data position, atomically: each rank its
    own shard, rank 0 the JSON header. A failed write removes the temporary folder and raises an
    InputOutputError; the previous state stays in place."""
    flat, groups = _flatten(model, optimizer)
    tmp, error = _shared_tmp(target, runtime)
    if tmp is not None:
        error = _write_shard(flat, tmp, target, runtime)
    # Every rank learns whether any failed, so that all raise together instead of waiting on a
    # barrier the failed one never reaches.
    if runtime.all_sum(1.0 if error else 0.0) == 0 and runtime.is_main:
        assert tmp is not None  # no rank failed, so rank 0 made it
        header = {"format": STATE_FORMAT, "world_size": runtime.world_size, "inputs": inputs or {},
                  "progress": progress, "scheduler": scheduler.state_dict(),
                  "param_groups": [{k: _plain(v) for k, v in g.items()} for g in groups]}
        error = _finish_state(header, tmp, target)
    failed = runtime.all_sum(1.0 if error else 0.0)
    if failed:
        if runtime.is_main and tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)  # no half-written state left behind (GBs for a real model)
        raise error or InputOutputError(f"cannot write the training state {target}: another rank failed")


def _shared_tmp(target: Path, runtime: Runtime) -> tuple[Path | None, InputOutputError | None]:
    """The temporary folder every rank writes its shard into: made by rank 0, its name shared as a
    sum of pids (the others add 0; -1 says rank 0 could not make it: None here, and rank 0's error)."""
    error: InputOutputError | None = None
    mine = 0.0
    if runtime.is_main:
        mine = float(os.getpid())
        try:
            with writing(target, "the training state"):
                shutil.rmtree(target.with_name(f".{target.name}.tmp-{os.getpid()}"), ignore_errors=True)
                target.with_name(f".{target.name}.tmp-{os.getpid()}").mkdir(parents=True)
        except InputOutputError as exc:
            error, mine = exc, -1.0
    pid = int(runtime.all_sum(mine))
    return (target.with_name(f".{target.name}.tmp-{pid}") if pid > 0 else None), error


def _write_shard(flat: dict[str, Any], tmp: Path, target: Path, runtime: Runtime) -> InputOutputError | None:
    """This rank's part of the state: its tensors (a tied weight once) and their index, with its RNG."""
    from safetensors.torch import save_file

    try:
        with writing(target, "the training state"):
            tensors: dict[str, torch.Tensor] = {}
            index: dict[str, dict[str, Any]] = {}
            seen: dict[int, str] = {}
            for name, value in flat.items():
                part = _local(value, runtime)
                if part is None:
                    continue
                local, shape, first = part
                local = local.detach().cpu()
                if local.numel() and local.data_ptr() in seen:  # a tied weight: stored once
                    index[name] = {"same_as": seen[local.data_ptr()]}
                    continue
                seen[local.data_ptr()] = name
                tensors[name] = local.contiguous()
                rows = local.shape[0] if local.dim() else 1
                index[name] = {"shape": shape, "rows": [first, first + rows],
                               "dtype": str(local.dtype).removeprefix("torch.")}
            meta_name, tensor_name = _rank_files(runtime.rank)
            save_file(tensors, str(tmp / tensor_name))
            (tmp / meta_name).write_text(json.dumps({"rank": runtime.rank, "rng": _rng_state(runtime),
                                                     "tensors": index}))
    except InputOutputError as exc:
        return exc
    return None


def _finish_state(header: dict[str, Any], tmp: Path, target: Path) -> InputOutputError | None:
    """Rank 0: state.json, written last (a folder without it is never taken for a state), then the
    folder moved into place."""
    try:
        with writing(target, "the training state"):
            (tmp / STATE_JSON).write_text(json.dumps(header, indent=1))
            replace_dir(tmp, target)
    except InputOutputError as exc:
        return exc
    return None


def find_state(target: Path) -> Path | None:
    """The newest complete state directory, if any (`state`, else a `state.old` left by a kill).
    A state from labtax before this format (a pickled `state.pt`) is refused, never opened."""
    for candidate in (target, target.with_name(target.name + ".old")):
        if (candidate / LEGACY_STATE).exists():
            raise InputOutputError(
                f"{candidate / LEGACY_STATE}: a training state in the old pickle format, which labtax no longer "
                f"loads (a pickle can run code); delete {candidate} to start the phase over")
        if (candidate / STATE_JSON).is_file():
            return candidate
    return None


def read_state_header(source: Path) -> dict[str, Any]:
    """state.json of a state folder: its format, inputs and progress. Read before any tensor."""
    path = source / STATE_JSON
    try:
        header = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputOutputError(f"cannot read {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise InputOutputError(f"{path}: not a training state (not JSON: {exc}); delete {source} to start "
                               "the phase over") from None
    if not isinstance(header, dict) or header.get("format") != STATE_FORMAT:
        found = header.get("format") if isinstance(header, dict) else None
        raise InputOutputError(f"{path}: training state format {found!r}, expected {STATE_FORMAT!r}; delete "
                               f"{source} to start the phase over")
    return header


class _Shards:
    """The saved shards of a state: which rank's file holds which rows of each tensor, read lazily."""

    def __init__(self, source: Path, world_size: int) -> None:
        from safetensors import safe_open

        self.source = source
        self.index: dict[str, list[tuple[int, dict[str, Any]]]] = {}
        self.files: dict[int, Any] = {}
        self.rng: dict[int, dict[str, Any]] = {}
        for rank in range(world_size):
            meta_name, tensor_name = _rank_files(rank)
            try:
                meta = json.loads((source / meta_name).read_text(encoding="utf-8"))
                self.files[rank] = safe_open(str(source / tensor_name), framework="pt")
            except (OSError, ValueError, RuntimeError) as exc:
                raise InputOutputError(f"{source / meta_name}: an incomplete or damaged training state "
                                       f"({_cause(exc)}); delete {source} to start the phase over") from None
            except Exception as exc:  # noqa: BLE001 - safetensors' own error for a truncated file
                raise InputOutputError(f"{source / tensor_name}: a damaged training state ({_cause(exc)}); "
                                       f"delete {source} to start the phase over") from None
            self.rng[rank] = meta["rng"]
            for name, entry in meta["tensors"].items():
                self.index.setdefault(name, []).append((rank, entry))

    def rows(self, name: str, lo: int | None = None, hi: int | None = None) -> torch.Tensor:
        """Rows [lo, hi) of a saved tensor (all of it when lo is None), from the files that hold them."""
        entries = self.index.get(name)
        if not entries:
            raise InputOutputError(f"{self.source}: the training state has no {name!r}; delete {self.source} "
                                   "to start the phase over")
        if "same_as" in entries[0][1]:
            return self.rows(entries[0][1]["same_as"], lo, hi)
        shape = entries[0][1]["shape"]
        if not shape:  # a scalar (AdamW's step)
            return self.files[entries[0][0]].get_tensor(name)
        lo, hi = (0, shape[0]) if lo is None else (lo, hi)
        pieces = []
        for rank, entry in sorted(entries, key=lambda e: e[1]["rows"][0]):
            a, b = entry["rows"]
            start, stop = max(a, lo), min(b, hi or 0)
            if start < stop:
                pieces.append(self.files[rank].get_slice(name)[start - a:stop - a])
        got = sum(p.shape[0] for p in pieces)
        if got != (hi or 0) - lo:
            raise InputOutputError(f"{self.source}: the training state misses rows of {name!r}")
        if not pieces:
            return torch.empty([0, *shape[1:]])
        return torch.cat(pieces) if len(pieces) > 1 else pieces[0]


def _like(current: Any, shards: _Shards, name: str, runtime: Runtime) -> Any:
    """The saved value of `name` in the layout of `current` (a DTensor shard of this world size, or a
    whole tensor)."""
    from torch.distributed.tensor import DTensor

    if isinstance(current, DTensor):
        lo, hi = _rows(current.shape[0], runtime.rank, runtime.world_size)
        local = shards.rows(name, lo, hi).to(current.dtype)
        return DTensor.from_local(local.to(current.to_local().device), current.device_mesh, current.placements,
                                  shape=current.shape, stride=current.stride())
    if isinstance(current, torch.Tensor):
        return shards.rows(name).to(dtype=current.dtype, device=current.device)
    return current


def load_state(model: TrainModule, optimizer: torch.optim.Optimizer, scheduler: Any, source: Path,
               header: dict[str, Any], runtime: Runtime) -> dict[str, Any]:
    """Restore what `save_state` wrote (this rank's rows only, from any saved world size); returns
    the saved progress. `header` is `read_state_header(source)`, already checked by the caller."""
    from torch.distributed.checkpoint.state_dict import set_model_state_dict, set_optimizer_state_dict

    shards = _Shards(source, int(header["world_size"]))
    flat, groups = _flatten(model, optimizer)
    model_state = {k.removeprefix("model/"): _like(v, shards, k, runtime)
                   for k, v in flat.items() if k.startswith("model/")}
    optim_state: dict[str, dict[str, Any]] = {}
    for key, value in flat.items():
        if key.startswith("optim/"):
            name, _, entry = key.removeprefix("optim/").rpartition("/")
            optim_state.setdefault(name, {})[entry] = _like(value, shards, key, runtime)
    saved_groups = header["param_groups"]
    if len(saved_groups) != len(groups):
        raise InputOutputError(f"{source}: the training state has {len(saved_groups)} parameter groups, "
                               f"this run {len(groups)}")
    merged = []
    for now, saved in zip(groups, saved_groups):
        # The saved hyper-parameters (lr of the current step...) in the current group's types
        # (AdamW wants `betas` as a tuple; JSON gave a list).
        group = dict(now)
        for k, v in saved.items():
            if k != "params" and k in group:
                group[k] = tuple(v) if isinstance(group[k], tuple) else v
        merged.append(group)
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    sharded = StateDictOptions(full_state_dict=False)
    set_model_state_dict(model, model_state, options=sharded)
    full: Any = {"state": optim_state, "param_groups": merged}
    set_optimizer_state_dict(model, optimizer, full, options=sharded)
    scheduler.load_state_dict(header["scheduler"])
    rng = shards.rng.get(runtime.rank, shards.rng[0])  # a rank that did not exist keeps rank 0's
    set_rng_state(rng, runtime)
    progress: dict[str, Any] = header["progress"]
    return progress
