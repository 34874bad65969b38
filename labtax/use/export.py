"""`labtax export --format gguf|ollama` after option parsing: load the model, write the files."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from labtax import models
from labtax.use.gguf_export import GgufFile, write_gguf
from labtax.use.ollama import ModelfileSettings, write_modelfile
from labtax.use.provenance import system_turn


@dataclass(frozen=True)
class ModelExport:
    gguf: GgufFile
    modelfile: Path | None
    system_source: str | None


def _name(model: str) -> str:
    """A readable model name for the GGUF metadata: the folder's name (a run's phase and checkpoint)."""
    path = Path(model)
    if not path.is_dir():
        return model
    parts = path.resolve().parts
    return "-".join(p for p in parts[-4:] if p not in ("checkpoints",))


def export_model(model: str, output: Path, fmt: str, tensor_type: str, *, system: str | None = None,
                 data_dir: Path | None = None) -> ModelExport:
    """Write `model` (a checkpoint or adapter folder, or a labtax model name) as GGUF into `output`,
    with an Ollama Modelfile beside it for `fmt == "ollama"`."""
    import torch

    tokenizer = models.load_tokenizer(model)
    net = models.load_model(model, dtype=torch.float32)
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", _name(model)).strip("-") or "model"
    target = output / f"{slug}.{tensor_type}.gguf"
    written = write_gguf(net, tokenizer, target, tensor_type=tensor_type, name=_name(model))
    if fmt != "ollama":
        return ModelExport(written, None, None)
    turn = system_turn(model, explicit=system, data_dir=data_dir)
    modelfile = write_modelfile(output, target.name, tokenizer, ModelfileSettings(system=turn.text))
    return ModelExport(written, modelfile, turn.source)
