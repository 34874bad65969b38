"""`labtax train` after option parsing: settings, then the phases. The checkpoint scorer of
`--select eval` comes in as a callable (cli.py passes labtax.eval's), so train/ imports no eval/."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labtax.errors import UsageError
from labtax.progress import note
from labtax.train.config import OVERRIDE_OPTIONS, TrainConfig, load_config
from labtax.train.lora import LoraSettings, check_4bit
from labtax.train.parallel import DEFAULT_TIMEOUT_MIN
from labtax.train.phases import Scorer, check_request, run_training


@dataclass(frozen=True)
class TrainCommand:
    """What `labtax train` was asked, typed. The training options come in two layers because they
    rank differently: `flags` (given on the command line) beat the `--config` file, which beats
    `from_file` (`.labtax.yaml`'s `train:` section)."""

    data_dir: Path
    model: str
    output: Path
    phase: str  # knowledge | skills | all
    select: str  # last | loss | eval
    config_file: Path | None = None
    flags: Mapping[str, Any] = field(default_factory=dict)
    from_file: Mapping[str, Any] = field(default_factory=dict)
    save_dtype: str | None = None
    select_on_test: bool = False  # --select loss may measure test.jsonl when there is no validation split
    dist_timeout_min: float = DEFAULT_TIMEOUT_MIN  # --dist-timeout: the process group's collective timeout
    lora: LoraSettings | None = None  # --lora-rank: train a LoRA adapter (train/lora.py)

    @classmethod
    def from_options(cls, params: Mapping[str, Any], from_file: frozenset[str] = frozenset()) -> TrainCommand:
        """From the parsed options; `from_file` names those whose value came from `.labtax.yaml`."""
        options = {k: params[k] for k in OVERRIDE_OPTIONS}
        return cls(data_dir=Path(params["data_dir"]), model=params["model"], output=Path(params["output"]),
                   phase=params["phase"], select=params["select"],
                   config_file=Path(params["config_file"]) if params["config_file"] else None,
                   flags={k: v for k, v in options.items() if k not in from_file},
                   from_file={k: v for k, v in options.items() if k in from_file},
                   save_dtype=params.get("save_dtype"), select_on_test=bool(params.get("select_on_test")),
                   dist_timeout_min=float(params.get("dist_timeout") or DEFAULT_TIMEOUT_MIN),
                   lora=LoraSettings.from_options(params))

    def config(self) -> TrainConfig:
        return load_config(self.config_file, self.flags, project=self.from_file)


def _phases(command: TrainCommand) -> list[str]:
    return ["knowledge", "skills"] if command.phase == "all" else [command.phase]


def check_lora(command: TrainCommand, nproc_per_node: int, nnodes: int) -> None:
    """LoRA's usage errors, before torchrun starts: QLoRA without a GPU, or QLoRA in several processes
    (LoRA on full-precision weights is sharded by FSDP2; bitsandbytes' 4-bit weights are not, here)."""
    if command.lora is None:
        return
    if command.lora.load_in_4bit:
        check_4bit()
        if nproc_per_node > 1 or nnodes > 1:
            raise UsageError("QLoRA (--load-in-4bit) runs in one process: drop --nproc-per-node/--nnodes")


def check_train_command(command: TrainCommand) -> None:
    """The usage errors training would meet first, raised before torchrun starts any rank."""
    check_request(command.data_dir, command.model, _phases(command), command.config(), command.select,
                  command.select_on_test)


def run_train_command(command: TrainCommand, report_to: list[str], scorer: Scorer | None = None) -> str | None:
    """Train as asked; returns the final checkpoint's path on rank 0 (else None).
    `scorer` rates a checkpoint for `--select eval` (higher is better)."""
    phases = _phases(command)
    summary = run_training(command.data_dir, command.model, command.output, phases, command.config(),
                           select=command.select, scorer=scorer, report_to=report_to, log=note,
                           save_dtype=command.save_dtype, select_on_test=command.select_on_test,
                           dist_timeout_min=command.dist_timeout_min, lora=command.lora)
    final = summary.get("final")
    return str(final) if final and os.environ.get("RANK", "0") == "0" else None
