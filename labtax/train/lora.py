"""LoRA and QLoRA through PEFT (`labtax train --lora-rank N`): train small adapter matrices, not the model.

PEFT's own classes do the work: `LoraConfig` + `get_peft_model` inject its LoRA layers into the
model's linear layers (by default every linear layer of the decoder blocks, PEFT's "all-linear":
attention and MLP projections, not the output head) and freeze everything else. The training loop
then trains the injected model unchanged (it only ever optimises parameters that require grad).

Saving (checkpoint.save_hf): every checkpoint folder stays a plain, merged Hugging Face model
(base + B·A·alpha/r folded into the weights), so eval, chat, export and the next phase read it as
any checkpoint; beside it `adapter/` holds the adapter as PEFT saves it (`adapter_config.json`,
`adapter_model.safetensors`), whose base is the model the phase started from. The resumable state is
the injected model's state dict, adapter weights included, so a killed run resumes as any other.
Under torchrun the injected model is sharded by FSDP2 like any model (parallel.prepare_model; the
adapter matrices sit in their decoder layer's unit beside the frozen base shards): saving gathers
the full state to rank 0 first, and `merged_state` / `save_adapter` work from that gathered dict.

QLoRA (`--load-in-4bit`): the base is loaded in 4-bit NF4 by bitsandbytes, which needs a CUDA GPU;
elsewhere that is a usage error before anything loads (`check_4bit`, called by the CLI). The merged
folder of a QLoRA run is the base *dequantized* (bitsandbytes' own dequantize_4bit, through PEFT's
dequantize_module_weight) plus B·A·scaling, in the checkpoint dtype: a plain full-precision folder,
not a 4-bit one (no quantization_config in its config.json), so eval, chat, export and the next
phase load it as any checkpoint. The packed uint8 weight and its quant-state entries never reach it.
"""

from __future__ import annotations

import copy
import tempfile
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from labtax.errors import UsageError
from labtax.models import (
    EMBEDDED,
    EMBEDDED_SMALL,
    TINY,
    TINY_SEED,
    _check_local_dir,
    _embedded_dir,
    _ensure_embedded_hf_dir,
    build_tiny_model,
)

if TYPE_CHECKING:
    from peft import PeftModel
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

ADAPTER_DIR = "adapter"
# The PeftModel around each injected model: the training loop holds the injected model itself (its
# forward is the model's), saving needs PEFT's wrapper. Weak, so a finished phase frees both.
_WRAPPERS: weakref.WeakKeyDictionary[torch.nn.Module, PeftModel] = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class LoraSettings:
    """A LoRA adapter's shape (`labtax train --lora-rank` and its companion flags; the command line
    builds it)."""

    rank: int
    alpha: int
    dropout: float = 0.05
    target_modules: tuple[str, ...] = ()  # empty: every linear layer of the blocks ("all-linear")
    load_in_4bit: bool = False

    def __post_init__(self) -> None:
        if self.rank < 1:
            raise UsageError("a LoRA adapter's rank must be at least 1 (--lora-rank)")

    def as_dict(self) -> dict[str, Any]:
        return {"rank": self.rank, "alpha": self.alpha, "dropout": self.dropout,
                "target_modules": list(self.target_modules) or "all-linear", "load_in_4bit": self.load_in_4bit}


def check_4bit() -> None:
    """QLoRA's requirements, checked before any model loads: one line and exit 2 where they are missing."""
    if not torch.cuda.is_available():
        raise UsageError("--load-in-4bit (QLoRA) needs a CUDA GPU: bitsandbytes' 4-bit layers do not run here",
                         hint="drop --load-in-4bit to train LoRA on the full-precision model")
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise UsageError("--load-in-4bit (QLoRA) needs bitsandbytes", hint="pip install bitsandbytes") from None


def parameter_count(net: torch.nn.Module) -> int:
    """The model's parameters as it has them, not as they are stored: a bitsandbytes 4-bit weight
    (QLoRA) packs two values into each byte of its storage, so numel() would count a 1.5B student as
    ~0.8B and hand it the small-model learning rate."""
    total = 0
    for p in net.parameters():
        n = p.numel()
        if hasattr(p, "quant_state"):  # bitsandbytes Params4bit
            n *= 2 * p.element_size()
        total += n
    return total

def load_4bit(name: str, seed: int = TINY_SEED) -> PreTrainedModel:
    """The base model in 4-bit NF4 (bf16 compute), prepared for k-bit training by PEFT: on the GPU, or
    on the CPU where there is none (bitsandbytes >= 0.48 quantizes and runs 4-bit layers there; users
    never get this far without CUDA, check_4bit stops them, but the tests train QLoRA on the CPU)."""
    from peft import prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                               bnb_4bit_compute_dtype=torch.bfloat16)
    device: int | str = 0 if torch.cuda.is_available() else "cpu"
    with tempfile.TemporaryDirectory(prefix="labtax-tiny-") as scratch:
        if name == TINY:
            # `tiny` has no folder; bitsandbytes quantizes while transformers loads one, so write it first.
            build_tiny_model(seed).save_pretrained(scratch)
            path = Path(scratch)
        else:
            path = _embedded_dir() if name == EMBEDDED else _ensure_embedded_hf_dir() if name == EMBEDDED_SMALL \
                else _check_local_dir(name)
        model = AutoModelForCausalLM.from_pretrained(str(path), quantization_config=quant, device_map={"": device},
                                                     dtype=torch.bfloat16)
    return prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)  # type: ignore[no-any-return]


def plain_config(config: Any) -> Any:
    """A copy of a model's config without bitsandbytes' quantization_config: the merged folder of a
    QLoRA run holds full-precision weights, and a config.json naming 4-bit would make transformers
    try to load them as packed 4-bit."""
    config = copy.deepcopy(config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    return config


def _is_4bit(module: torch.nn.Module) -> bool:
    """A bitsandbytes 4-bit linear layer (its weight a packed Params4bit with a quant_state)."""
    return type(getattr(module, "weight", None)).__name__ == "Params4bit"


def without_quant_state(model: torch.nn.Module, state: Mapping[str, Any]) -> dict[str, Any]:
    """`state` (model's state dict) without bitsandbytes' quant-state entries (`<4-bit weight>.absmax`,
    `.quant_map`, ...): the resumable state keeps the packed 4-bit weights, which load back into the
    4-bit layers, but load_state_dict takes those entries for unexpected keys. The quant state itself
    is rebuilt identically at resume (the start model quantized again: NF4 quantization is
    deterministic). A model without 4-bit layers gets `state` unchanged."""
    prefixes = tuple(f"{name}.weight." for name, m in model.named_modules() if _is_4bit(m))
    return {k: v for k, v in state.items() if not (prefixes and k.startswith(prefixes))}


def _dequantized(module: torch.nn.Module) -> torch.Tensor:
    """A bitsandbytes 4-bit layer's weight dequantized, in fp32, by PEFT's helper (bitsandbytes'
    dequantize_4bit with the layer's quant_state); QLoRA runs in one process, so the live layer is
    the whole weight."""
    from peft.utils.integrations import dequantize_module_weight

    return dequantize_module_weight(module).detach().float().cpu()


def apply_lora(net: PreTrainedModel, settings: LoraSettings, base: str) -> PreTrainedModel:
    """Inject LoRA layers into `net` (PEFT) and freeze the rest; returns the injected model itself."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=settings.rank, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
                        target_modules=list(settings.target_modules) or "all-linear", task_type="CAUSAL_LM",
                        base_model_name_or_path=base)
    try:
        wrapped = get_peft_model(net, config)
    except ValueError as exc:  # a --lora-target-modules name the model does not have
        raise UsageError(f"--lora-target-modules: {str(exc).splitlines()[0]}") from None
    wrapped.peft_config["default"].base_model_name_or_path = base  # what models.load_adapter_model loads it on
    inner = wrapped.get_base_model()
    _WRAPPERS[inner] = wrapped
    return inner  # type: ignore[return-value]


def wrapper_of(lm: torch.nn.Module) -> PeftModel | None:
    """The PeftModel of an injected model, None for a model trained in full."""
    return _WRAPPERS.get(lm)


def merged_state(lm: torch.nn.Module, state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The injected model's weights with every adapter folded in, under the plain model's parameter
    names, from `state`: the injected model's whole state dict (under FSDP gathered on rank 0, so the
    layers' own tensors are shards). The delta is PEFT's LoraLayer.get_delta_weight, computed on
    the gathered A and B: (B @ A, transposed for fan_in_fan_out layers) * scaling.

    QLoRA: a 4-bit base weight in `state` is bitsandbytes' packed uint8 (plus quant-state entries
    under `<weight>.`); adding a delta to it is meaningless, so every 4-bit layer (adapted or not) is
    dequantized first and its quant-state entries are dropped."""
    from peft.tuners.lora import LoraLayer

    merged: dict[str, torch.Tensor] = {}
    packed: list[str] = []  # weight names of 4-bit layers: their `<name>.` entries are quant state
    with torch.no_grad():
        for name, layer in lm.named_modules():
            if isinstance(layer, LoraLayer):
                module: Any = layer  # PEFT's Linear: a LoraLayer and an nn.Module
                base = module.get_base_layer()
                if _is_4bit(base):
                    packed.append(f"{name}.base_layer.weight")
                    weight = _dequantized(base)
                else:
                    weight = state[f"{name}.base_layer.weight"].float()
                for adapter in module.active_adapters:
                    a, b = state[f"{name}.lora_A.{adapter}.weight"], state[f"{name}.lora_B.{adapter}.weight"]
                    delta = b.float() @ a.float()
                    weight = weight + (delta.T if module.fan_in_fan_out else delta) * module.scaling[adapter]
                merged[f"{name}.weight"] = weight
            elif _is_4bit(layer) and not name.endswith(".base_layer"):  # a 4-bit layer LoRA left alone
                packed.append(f"{name}.weight")
                merged[f"{name}.weight"] = _dequantized(layer)
        quant_state = tuple(f"{w}." for w in packed)
        for key, value in state.items():
            if "lora_" not in key and not key.startswith(quant_state):
                merged.setdefault(key.replace(".base_layer.", "."), value)
    return merged


def save_adapter(lm: torch.nn.Module, target: Path, tokenizer: PreTrainedTokenizerBase,
                 state: Mapping[str, torch.Tensor]) -> None:
    """PEFT's adapter folder (config + safetensors) and the tokenizer, so `labtax chat` reads it alone.
    `state` is the injected model's whole state dict (gathered under FSDP): PEFT keeps its adapter
    entries, named as its wrapper names them."""
    wrapped = wrapper_of(lm)
    if wrapped is None:
        return
    wrapped.save_pretrained(str(target), safe_serialization=True,
                            state_dict={f"base_model.model.{k}": v for k, v in state.items()})
    tokenizer.save_pretrained(str(target))


def trainable_counts(lm: torch.nn.Module) -> tuple[int, int]:
    """(trainable parameters, all parameters)."""
    total = sum(p.numel() for p in lm.parameters())
    return sum(p.numel() for p in lm.parameters() if p.requires_grad), total
