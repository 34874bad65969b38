"""Phase orchestration: knowledge tuning, then skills tuning from phase 1's chosen checkpoint.

Output layout (see docs/train.md):
  OUTPUT/cache/tokens/<file>-<key>/     tokenized data (memory-mapped)
  OUTPUT/<phase>/metrics.jsonl          one line per step, checkpoint and the phase's start
  OUTPUT/<phase>/checkpoints/samples_N/ Hugging Face checkpoints (+ labtax_checkpoint.json)
  OUTPUT/<phase>/state/                 full training state of the newest checkpoint (resume)
  OUTPUT/<phase>/result.json            the finished phase: checkpoints, scores, the selected one
  OUTPUT/knowledge/step1/, step2/       phase 1 in two steps, when the data has both step sets
                                        (`diff-generate --phase1 two-step`): each laid out as a phase,
                                        step 2 from step 1's selected checkpoint; knowledge/result.json
                                        is then step 2's result with `steps` listed
  OUTPUT/summary.json                   every phase's result

A finished phase (result.json present) is skipped when the command runs again; an unfinished one
resumes from its state. Checkpoint selection receives a scorer instead of importing labtax.eval.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch

from labtax.data import PHASE1_STEP1, PHASE1_STEP2, STEP_FILES, VALIDATION
from labtax.data import PHASE_FILES as DATA_FILES
from labtax.data import TEST as TEST_FILE
from labtax.errors import ConfigError, LockedError, UsageError
from labtax.models import load_model, load_tokenizer, model_id
from labtax.train.config import PHASES, TrainConfig
from labtax.train.data import tokenize_file, tokenizer_hash
from labtax.train.loop import train_phase
from labtax.train.model_card import write_cards
from labtax.train.packing import PACKED_MODEL_TYPES, steps_per_epoch
from labtax.train.parallel import (
    Runtime,
    checkpoint_activations,
    init_runtime,
    main_first,
    prepare_model,
    shutdown,
)
from labtax.train.reporting import PhaseReporter, finish_phase
from labtax.train.schedule import describe as describe_schedule
from labtax.train.schedule import fit_epochs, fit_lr, fit_schedule, rows_per_fact
from labtax.util.atomic import atomic_write_text
from labtax.util.lock import directory_lock

Scorer = Callable[[Path], float]
SELECT_MODES = ("last", "loss", "eval")


def select_checkpoint(checkpoints: list[dict[str, Any]], mode: str, scorer: Scorer | None) -> dict[str, Any]:
    """The chosen checkpoint: the last, the lowest held-out loss, or the highest scorer value."""
    if not checkpoints:
        raise UsageError("the phase produced no checkpoint")
    if mode == "last":
        return checkpoints[-1]
    if mode == "loss":
        scored = [c for c in checkpoints if c.get("test_loss") is not None and not math.isnan(c["test_loss"])]
        return min(scored, key=lambda c: c["test_loss"]) if scored else checkpoints[-1]
    if scorer is None:
        raise UsageError("--select eval needs a scoring function")
    for c in checkpoints:
        c["score"] = float(scorer(Path(c["path"])))
    return max(checkpoints, key=lambda c: c["score"])


def _start_model(phase: str, model: str, results: dict[str, dict[str, Any]]) -> str:
    if phase == "skills" and "knowledge" in results:
        return results["knowledge"]["selected"]["path"]
    if phase == "knowledge-step2" and "knowledge-step1" in results:
        return results["knowledge-step1"]["selected"]["path"]
    return model


# Phase 1 in two steps: (run name, set file, folder under OUTPUT); both use the knowledge settings.
STEPS = (("knowledge-step1", PHASE1_STEP1, "knowledge/step1"), ("knowledge-step2", PHASE1_STEP2, "knowledge/step2"))


def training_units(data_dir: Path, phases: list[str]) -> list[tuple[str, str, str, str]]:
    """(run name, set file, settings phase, folder) in order: the knowledge phase as its two steps
    when the data holds both step sets, else each phase as itself."""
    units = []
    for phase in phases:
        if phase == "knowledge" and all((data_dir / name).is_file() for name in STEP_FILES):
            units += [(name, file, phase, folder) for name, file, folder in STEPS]
        else:
            units.append((phase, DATA_FILES[phase], phase, phase))
    return units


def _join_steps(output: Path, results: dict[str, dict[str, Any]], runtime: Runtime) -> None:
    """knowledge/result.json for a two-step phase 1: the last trained step's result, `steps` named."""
    steps = [results[name] for name, _, _ in STEPS if name in results]
    if not steps:
        return
    results["knowledge"] = {**steps[-1], "phase": "knowledge", "steps": [s["phase"] for s in steps]}
    if runtime.is_main:
        atomic_write_text(output / "knowledge" / "result.json", json.dumps(results["knowledge"], indent=1))


def run_training(data_dir: Path, model: str, output: Path, phases: list[str], config: TrainConfig,
                 select: str = "loss", scorer: Scorer | None = None,
                 log: Callable[[str], None] | None = None, report_to: list[str] | None = None,
                 save_dtype: str | None = None) -> dict[str, Any]:
    """Run the requested phases in order and return the summary (also written to summary.json)."""
    from labtax.train.versions import check_training_versions

    check_training_versions()
    runtime = dataclasses.replace(init_runtime(), save_dtype=save_dtype)
    emit = log or (lambda s: print(s, file=sys.stderr, flush=True))
    say: Callable[[str], None] = emit if runtime.is_main else (lambda s: None)
    if select not in SELECT_MODES:
        raise UsageError(f"--select must be one of {', '.join(SELECT_MODES)}")
    for phase in phases:
        if phase not in PHASES:
            raise UsageError(f"unknown phase {phase!r}")
        if not (data_dir / DATA_FILES[phase]).is_file():
            raise UsageError(f"{data_dir / DATA_FILES[phase]} not found (run labtax diff-generate first)")
        pc = config.phases[phase]
        if pc.max_tokens_per_batch < pc.max_seq_len:
            raise ConfigError(f"{phase}: max_tokens_per_batch ({pc.max_tokens_per_batch}) must be at least "
                              f"max_seq_len ({pc.max_seq_len}) so that every kept sample fits a micro-batch")
    if select == "loss" and held_out_file(data_dir) is None:
        raise UsageError(f"--select loss needs {data_dir / VALIDATION} (or {TEST_FILE})", hint="use --select last")
    # Only the main rank locks: the run directory is one run's, whatever its world size (exit 4).
    lock = directory_lock(output, busy=lambda pid: LockedError(
        f"another labtax train run is using {output} (pid {pid})")) if runtime.is_main else nullcontext()
    try:
        with lock:
            return _run(data_dir, model, output, phases, config, select, scorer, runtime, say, report_to or [])
    finally:
        shutdown(runtime)


def held_out_file(data_dir: Path) -> Path | None:
    """The split whose loss selects checkpoints: validation.jsonl (generated rows held out of training,
    never the eval gate's items); test.jsonl only for data mixed before the validation split existed."""
    for name in (VALIDATION, TEST_FILE):
        if (data_dir / name).is_file():
            return data_dir / name
    return None


def _run(data_dir: Path, model: str, output: Path, phases: list[str], config: TrainConfig, select: str,
         scorer: Scorer | None, runtime: Runtime, say: Callable[[str], None], report_to: list[str]) -> dict[str, Any]:
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # our own progress lines are the only ones on stderr
    tokenizer = load_tokenizer(model)
    tok_hash = tokenizer_hash(tokenizer)
    cache = output / "cache" / "tokens"
    results: dict[str, dict[str, Any]] = {}
    held_out = held_out_file(data_dir)
    if held_out is not None and held_out.name == TEST_FILE:
        say(f"note: no {VALIDATION} in {data_dir}: held-out loss is measured on {TEST_FILE}, the eval gate's "
            "test split (rerun labtax diff-generate to get a validation split)")
    if "skills" in phases and "knowledge" not in phases and (output / "knowledge" / "result.json").is_file():
        results["knowledge"] = json.loads((output / "knowledge" / "result.json").read_text())
    units = training_units(data_dir, phases)
    if len(units) > len(phases):
        say(f"[knowledge] two steps: {PHASE1_STEP1}, then {PHASE1_STEP2} from step 1's selected checkpoint")
    for phase, set_file, settings_phase, folder in units:
        if phase == "skills":
            _join_steps(output, results, runtime)
        pc = config.phases[settings_phase]
        phase_dir = output / folder
        done = phase_dir / "result.json"
        if done.is_file():
            results[phase] = json.loads(done.read_text())
            say(f"[{phase}] already done: selected {results[phase]['selected']['path']}")
            continue
        start = _start_model(phase, model, results)
        with main_first(runtime):
            data = tokenize_file(data_dir / set_file, tokenizer, pc.max_seq_len, cache, tok_hash)
            test = tokenize_file(held_out, tokenizer, pc.max_seq_len, cache, tok_hash) if held_out else None
        if len(data) == 0:
            if len(units) > 1:
                # A taxonomy without knowledge leaves (or a teacher that kept none) has an empty phase 1:
                # skip that phase, and the next one starts from whatever the previous one started from.
                say(f"[{phase}] {data_dir / set_file} has no usable sample "
                    f"(dropped: {data.meta['dropped'] or 'none'}): phase skipped")
                continue
            raise UsageError(f"{data_dir / set_file}: no usable sample (dropped: {data.meta['dropped'] or 'none'})")
        say(f"[{phase}] {len(data)} samples, {data.meta['tokens']:,} tokens "
            f"(dropped {data.meta['dropped'] or 'none'}; mix {data.meta['sources']}); starting from {start}")
        explicit = config.explicit.get(settings_phase, frozenset())
        pc, fitted = fit_epochs(pc, rows_per_fact(data_dir / set_file), explicit)  # flags win
        pc, schedule = fit_schedule(pc, len(data), explicit)
        schedule.update(fitted)
        torch.manual_seed(config.seed)
        # fp32 master weights whatever the checkpoint's dtype: without a dtype transformers loads a
        # bf16 config (phase 2 starts from phase 1's bf16 checkpoint on a GPU) as bf16, and AdamW then
        # keeps bf16 moments: at lr 6e-6 most updates round away. Compute is bf16 on GPUs anyway
        # (autocast on one device, FSDP2's MixedPrecisionPolicy under torchrun).
        net = load_model(start, dtype=torch.float32, seed=config.seed)
        pc, schedule = fit_lr(pc, sum(p.numel() for p in net.parameters()), explicit, schedule)
        say(describe_schedule(phase, schedule))
        net.config.use_cache = False
        packed = getattr(net.config, "model_type", "") in PACKED_MODEL_TYPES
        checkpoint_activations(net, pc.activation_checkpointing)
        module = prepare_model(net, runtime)
        total = min(steps_per_epoch(len(data), pc.effective_batch) * pc.epochs, pc.max_steps or 1 << 62)
        reporter = PhaseReporter(report_to, phase, output, pc.to_dict(), total) if runtime.is_main else None
        try:
            result = train_phase(module, tokenizer, data, test, pc, config.seed, phase_dir, runtime, packed,
                                 log=reporter.filtered(say) if reporter else say,
                                 on_record=reporter.record if reporter else None)
        finally:
            if reporter is not None:
                reporter.close()
        if runtime.is_main and finish_phase(phase_dir, phase):
            say(f"[{phase}] loss curve: {phase_dir / 'loss.png'}")
        del net, module
        summary: dict[str, Any] = {
            "phase": phase, "start": start, "model": model_id(model), "steps": result.steps,
            "samples": result.samples, "data": data.meta, "select": select, "checkpoints": result.checkpoints,
            "held_out": held_out.name if held_out else None,  # the split `test_loss` is measured on
            "schedule": schedule,
        }
        if runtime.is_main:
            summary["selected"] = select_checkpoint(result.checkpoints, select, scorer)
            dtype = "bf16" if runtime.checkpoint_dtype == torch.bfloat16 else "fp32"
            write_cards(summary, data_dir, dtype)
            atomic_write_text(done, json.dumps(summary, indent=1))
        runtime.barrier()
        summary = json.loads(done.read_text())
        results[phase] = summary
        say(f"[{phase}] done: {result.steps} steps, selected {summary['selected']['path']} ({select})")
    _join_steps(output, results, runtime)
    trained = [p for p in phases if p in results]
    if not trained:
        raise UsageError(f"no usable sample in any of {', '.join(DATA_FILES[p] for p in phases)}")
    final = {"phases": results, "final": results[trained[-1]]["selected"]["path"]}
    if runtime.is_main:
        (output / "summary.json").write_text(json.dumps(final, indent=1))
    return final
