"""`labtax train` after option parsing: settings, then the phases. The checkpoint scorer of
`--select eval` comes in as a callable (cli.py passes labtax.eval's), so train/ imports no eval/."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from labtax.errors import UsageError
from labtax.progress import note
from labtax.train.config import TrainConfig, TrainOverrides, load_config
from labtax.train.lora import LoraSettings, check_4bit
from labtax.train.parallel import DEFAULT_TIMEOUT_MIN
from labtax.train.phases import Scorer, check_request, run_training

# What the command line builds `labtax train`'s request from (LoraSettings and TrainOverrides live
# beside what they configure).
__all__ = ["LoraSettings", "TrainCommand", "TrainOverrides", "check_lora", "check_train_command", "run_train_command"]


@dataclass(frozen=True)
class TrainCommand:
    """What `labtax train` was asked, typed (the command line builds it). The training settings come
    in two layers because they rank differently: `flags` (given on the command line) beat the
    `--config` file, which beats `from_file` (`.labtax.yaml`'s `train:` section)."""

    data_dir: Path
    model: str
    output: Path
    phase: str  # knowledge | skills | all
    select: str  # last | loss | eval
    config_file: Path | None = None
    flags: TrainOverrides = field(default_factory=TrainOverrides)
    from_file: TrainOverrides = field(default_factory=TrainOverrides)
    save_dtype: str | None = None
    select_on_test: bool = False  # --select loss may measure test.jsonl when there is no validation split
    dist_timeout_min: float = DEFAULT_TIMEOUT_MIN  # --dist-timeout: the process group's collective timeout
    lora: LoraSettings | None = None  # --lora-rank: train a LoRA adapter (train/lora.py)

    def config(self) -> TrainConfig:
        return load_config(self.config_file, self.flags.given(), project=self.from_file.given())


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
