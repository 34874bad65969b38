"""The process's place in a (possibly distributed) run: device, rank, precision, model wrapping.

Under torchrun (marked by LABTAX_TORCHRUN=1) every rank joins a process group
(nccl on GPUs, gloo on CPU) and the model is sharded with FSDP2 (`fully_shard`, one unit per decoder
layer plus the root). FSDP2 runs on CPU with gloo too in torch 2.13, so tests exercise the same path
that GPUs use. On GPUs parameters stay fp32 (the optimizer's master copy) and compute runs in bf16.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist

from labtax.models import TINY, build_tiny_model, choose_threads, is_adapter_dir, load_model, weights_dir
from labtax.train.lm_loss import TrainModule
from labtax.util.ranks import TORCHRUN_MARKER

if TYPE_CHECKING:
    from transformers import PreTrainedModel


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    distributed: bool = False  # launched by torchrun: a process group and FSDP2, even with one rank
    save_dtype: str | None = None  # --save-dtype: "bf16" or "fp32" (None: bf16 on a GPU, else fp32)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def amp_dtype(self) -> torch.dtype | None:
        """bf16 compute on GPUs (fp32 master weights); exact fp32 on CPU."""
        return torch.bfloat16 if self.device.type == "cuda" else None

    @property
    def checkpoint_dtype(self) -> torch.dtype:
        """The dtype Hugging Face checkpoints are saved in (training state keeps full precision)."""
        name = self.save_dtype or ("bf16" if self.device.type == "cuda" else "fp32")
        return torch.bfloat16 if name == "bf16" else torch.float32

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.amp_dtype is None or self.distributed:  # FSDP's MixedPrecisionPolicy casts instead
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def all_sum(self, value: float) -> float:
        if not self.distributed:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return float(t.item())


DEFAULT_TIMEOUT_MIN = 60.0  # --dist-timeout: how long a collective may wait (nccl's own default is 10)


@dataclass(frozen=True)
class Place:
    """Where this process sits in a torchrun launch, known from the environment before any process
    group exists (so work that must not happen inside a collective can be split up first)."""

    rank: int = 0
    local_rank: int = 0
    distributed: bool = False


def launch_place() -> Place:
    if os.environ.get(TORCHRUN_MARKER) != "1" or "WORLD_SIZE" not in os.environ:
        return Place()
    return Place(int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0")), True)


def init_runtime(timeout_min: float = DEFAULT_TIMEOUT_MIN) -> Runtime:
    """Join the process group when launched by `labtax train --nproc-per-node` (torchrun).

    `timeout_min` bounds every collective wait (and the rendezvous): a rank waiting longer, because
    another one hangs or died without torchrun noticing, fails instead of waiting forever. Nothing
    labtax does between two collectives is meant to take long: the token caches are built before the
    group exists; rank 0 saving a checkpoint or scoring one (`--select eval`) is the longest wait."""
    from datetime import timedelta

    if not launch_place().distributed:
        return Runtime(torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
        backend = "nccl"
    else:
        device = torch.device("cpu")
        backend = "gloo"
    if not dist.is_initialized():
        # Naming the device lets nccl bind each rank to its own GPU instead of guessing from the rank.
        dist.init_process_group(backend, device_id=device if device.type == "cuda" else None,
                                timeout=timedelta(minutes=timeout_min))
    return Runtime(device, dist.get_rank(), dist.get_world_size(), local_rank, distributed=True)


def shutdown(runtime: Runtime) -> None:
    if runtime.distributed and dist.is_initialized():
        dist.destroy_process_group()


def decoder_layers(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The repeated blocks of a transformers causal LM (model.model.layers for Llama-likes)."""
    base = getattr(model, "model", None)
    layers = getattr(base, "layers", None)
    return list(layers) if layers is not None else []


def checkpoint_activations(lm: torch.nn.Module, mode: str) -> None:
    """Recompute activations in the backward instead of keeping them: `mlp` wraps each decoder layer's
    MLP (its four 1536-wide intermediates were 60% of SmolLM2's saved activations; the recompute is
    two of the layer's seven matmuls), `layers` each whole layer, as transformers'
    gradient_checkpointing does (what TRL's SFTTrainer turns on by default)."""
    if mode == "none":
        return
    from torch.utils.checkpoint import checkpoint

    for layer in decoder_layers(lm):
        target: Any = layer.mlp if mode == "mlp" else layer
        inner = target.forward

        def forward(*args: Any, _inner: Any = inner, **kwargs: Any) -> Any:
            if not torch.is_grad_enabled():
                return _inner(*args, **kwargs)
            return checkpoint(_inner, *args, use_reentrant=False, **kwargs)

        target.forward = forward


def load_start_model(name: str, runtime: Runtime, seed: int) -> PreTrainedModel:
    """The start model in fp32 (the optimizer's master weights, whatever the checkpoint's dtype).

    Under torchrun only rank 0 reads the weights; every other rank builds the same architecture on
    the meta device (no memory), and `prepare_model` fills its shards from rank 0 after sharding:
    a whole fp32 copy per rank was ~28 GB of host memory per rank for a 7B model (issue 23). An
    adapter folder (its base merged in on load) is loaded whole on every rank."""
    if not runtime.distributed or runtime.is_main or is_adapter_dir(name):
        return load_model(name, dtype=torch.float32, seed=seed)
    return meta_model(name, seed)


def meta_model(name: str, seed: int) -> PreTrainedModel:
    """`name`'s architecture with every parameter and buffer on the meta device (nothing read)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    ranks = max(1, int(os.environ.get("LOCAL_WORLD_SIZE") or 1))
    torch.set_num_threads(max(1, choose_threads() // ranks))  # as load_model sets it on rank 0
    with torch.device("meta"):
        if name == TINY:
            model = build_tiny_model(seed)
        else:  # the tokenizer, loaded before, made sure an embedded model's folder exists
            config = AutoConfig.from_pretrained(str(weights_dir(name)), trust_remote_code=False)
            model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    return model.eval()


def prepare_model(lm: torch.nn.Module, runtime: Runtime) -> TrainModule:
    """Wrap the model for training, move it to its device and, under torchrun, shard it with FSDP2.

    Under torchrun rank 0 holds the loaded weights and the other ranks a meta-device model
    (`load_start_model`): after sharding, rank 0's full state is broadcast into every rank's shards."""
    if not runtime.distributed:
        lm.to(runtime.device)
        return TrainModule(lm)
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    model = TrainModule(lm)
    # Rank 0's weights as loaded (references: sharding copies each rank's rows out of them).
    full: dict[str, Any] = dict(lm.state_dict()) if runtime.is_main else {}
    kwargs: dict[str, Any] = {}
    if runtime.amp_dtype is not None:
        kwargs["mp_policy"] = MixedPrecisionPolicy(param_dtype=runtime.amp_dtype, reduce_dtype=torch.float32)
    # fully_shard moves each unit's states to the device itself: rank 0 never holds the whole model there.
    for layer in decoder_layers(lm):
        fully_shard(layer, **kwargs)
    fully_shard(model, **kwargs)  # the root: embedding, final norm and the (tied) head
    fill_from_rank0(lm, full, runtime)
    return model


def fill_from_rank0(lm: torch.nn.Module, full: dict[str, Any], runtime: Runtime) -> None:
    """Give every rank's shards rank 0's values. Ties survive (a tied weight is one sharded parameter);
    buffers are not sharded and non-persistent ones (rotary inv_freq) are in no state dict, so each
    is broadcast whole."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

    if any(t.is_meta for t in [*lm.parameters(), *lm.buffers()]):
        lm.to_empty(device=runtime.device)
    set_model_state_dict(lm, full, options=StateDictOptions(full_state_dict=True, broadcast_from_rank0=True))
    for buffer in lm.buffers():
        if buffer.device == runtime.device:
            dist.broadcast(buffer, src=0)
        else:  # a buffer FSDP left on the CPU: nccl sends device tensors only
            sent = buffer.to(runtime.device)
            dist.broadcast(sent, src=0)
            buffer.copy_(sent)
