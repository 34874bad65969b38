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

A phase is keyed by its inputs (`phase_inputs`: the set's sha256, the held-out split's, the start
model, the settings, labtax's version): a finished phase (result.json) with the same inputs is
skipped when the command runs again, an unfinished one resumes from its state; with other inputs
the phase starts over, and says what changed. Checkpoint selection receives a scorer instead of
importing labtax.eval.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import shutil
import sys
from collections.abc import Callable
from contextlib import nullcontext
from functools import partial
from pathlib import Path
from typing import Any

import torch

from labtax import __version__
from labtax.data import MANIFEST, PHASE1_STEP1, PHASE1_STEP2, STEP_FILES, VALIDATION, read_manifest
from labtax.data import PHASE_FILES as DATA_FILES
from labtax.data import TEST as TEST_FILE
from labtax.errors import ConfigError, InputOutputError, LockedError, UsageError
from labtax.models import EMBEDDED, EMBEDDED_SMALL, TINY, load_tokenizer, model_id
from labtax.train.anchor import skill_rows
from labtax.train.checkpoint import find_state, read_state_header
from labtax.train.config import PHASES, PhaseConfig, TrainConfig
from labtax.train.data import TokenizedFile, file_sha256, tokenize_file, tokenizer_hash, wait_for_tokens
from labtax.train.interpolate import interpolated_selection
from labtax.train.loop import train_phase
from labtax.train.lora import LoraSettings, apply_lora, load_4bit, parameter_count, trainable_counts
from labtax.train.model_card import write_cards
from labtax.train.packing import PACKED_MODEL_TYPES, steps_per_epoch
from labtax.train.parallel import (
    DEFAULT_TIMEOUT_MIN,
    Runtime,
    checkpoint_activations,
    init_runtime,
    launch_place,
    load_start_model,
    prepare_model,
    shutdown,
)
from labtax.train.reporting import PhaseReporter, finish_phase
from labtax.train.schedule import describe as describe_schedule
from labtax.train.schedule import fit_epochs, fit_lr, fit_schedule, rows_per_fact
from labtax.train.versions import check_training_versions
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
    checkpoints = [c for c in checkpoints if not c.get("pruned")] or checkpoints
    if mode == "loss":
        scored = [c for c in checkpoints if c.get("test_loss") is not None and not math.isnan(c["test_loss"])]
        return min(scored, key=lambda c: c["test_loss"]) if scored else checkpoints[-1]
    if scorer is None:
        raise UsageError("--select eval needs a scoring function")
    for c in checkpoints:
        c["score"] = float(scorer(Path(c["path"])))
    return max(checkpoints, key=lambda c: c["score"])


def choosable(checkpoints: list[dict[str, Any]], mode: str) -> list[dict[str, Any]]:
    """The checkpoints `select_checkpoint` can still choose when more may follow: the last alone
    (`last`), the lowest held-out loss so far (`loss`; the last while none has one), every one
    (`eval` scores them all after the phase). The others need not stay on disk."""
    live = [c for c in checkpoints if not c.get("pruned")]
    if mode == "eval" or not live:
        return live
    return [select_checkpoint(live, mode, None)]


# Settings that change how a phase runs, not what it learns (memory, speed, what is kept on disk):
# a change of these alone neither retrains a finished phase nor refuses to resume one.
NEUTRAL_SETTINGS = frozenset({"activation_checkpointing", "max_tokens_per_batch", "save_state"})


def model_fingerprint(name: str) -> str:
    """What a start model is: its id for a built-in name; for a directory its path and the sha256
    of its config and weight files (a different model copied to the same path is another input)."""
    if name in (EMBEDDED, EMBEDDED_SMALL, TINY):
        return model_id(name)
    path = Path(name)
    h = hashlib.sha256()
    for f in sorted(path.iterdir()) if path.is_dir() else []:
        if f.name == "config.json" or f.suffix == ".safetensors":
            h.update(f.name.encode() + b"\0" + file_sha256(f).encode())
    return f"{model_id(name)}#{h.hexdigest()[:16]}"


def phase_inputs(set_path: Path, held_out: Path | None, start: str, start_from: dict[str, Any] | None,
                 pc: PhaseConfig, seed: int, select: str, save_dtype: str | None,
                 anchor_key: str | None = None) -> dict[str, Any]:
    """What a phase's result is a function of. A start checkpoint made by the previous phase of this
    run is named by that phase's inputs (hashing its weights again would cost seconds to minutes).
    `anchor_key`: the content key of the anchor rows the phase keeps (labtax/train/anchor.py)."""
    settings = {k: v for k, v in pc.to_dict().items() if k not in NEUTRAL_SETTINGS}
    model = (f"{start} (from {start_from['phase']} {inputs_digest(start_from.get('inputs') or {})})"
             if start_from else model_fingerprint(start))
    inputs = {"data_sha256": file_sha256(set_path), "held_out_sha256": file_sha256(held_out) if held_out else None,
              "model": model, "settings": {**settings, "seed": seed, "select": select, "save_dtype": save_dtype},
              "labtax_version": __version__}
    if anchor_key is not None:
        inputs["anchor_rows"] = anchor_key
    return json.loads(json.dumps(inputs))  # as stored: tuples are lists


def inputs_digest(inputs: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:16]


def _changes(old: dict[str, Any], new: dict[str, Any], ignore: frozenset[str] = frozenset()) -> list[str]:
    """What differs between two inputs records, one short phrase each (settings one by one)."""
    def short(v: Any) -> str:
        text = str(v)
        return text[:12] + "…" if len(text) > 40 or (isinstance(v, str) and len(v) == 64) else text

    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if key == "settings" and isinstance(a, dict) and isinstance(b, dict):
            out += [f"{k} {short(a.get(k))} -> {short(b.get(k))}" for k in sorted(set(a) | set(b))
                    if k not in ignore and a.get(k) != b.get(k)]
        elif a != b:
            out.append(f"{key} {short(a)} -> {short(b)}")
    return out


def read_result(path: Path) -> dict[str, Any]:
    """A phase's result.json; one line naming it when it is not JSON (a disk that filled up)."""
    try:
        result = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputOutputError(f"{path}: not readable as JSON ({exc}); delete it to train the phase again") from None
    if not isinstance(result, dict) or not isinstance(result.get("selected"), dict):
        raise InputOutputError(f"{path}: not a phase result; delete it to train the phase again")
    return result


# What a phase folder holds of one run (start over removes these; the token cache is elsewhere).
RUN_FILES = ("result.json", "metrics.jsonl", "loss.png", "loss.md", "state", "state.old", "checkpoints",
             "anchor.safetensors")


def reuse_or_reset(phase: str, phase_dir: Path, inputs: dict[str, Any], runtime: Runtime,
                   say: Callable[[str], None]) -> dict[str, Any] | None:
    """The finished result of this phase when it was made from `inputs`; else None, after removing
    a run of other inputs (its result, checkpoints, state, metrics) and saying what changed. A state
    is checked from its JSON header alone, before any tensor is read."""
    done = phase_dir / "result.json"
    changed: list[str] = []
    reuse: dict[str, Any] | None = None
    if done.is_file():
        result = read_result(done)
        changed = _changes(result.get("inputs") or {}, inputs)
        if not changed:
            reuse = dict(result)
        elif "inputs" not in result:
            changed = ["made by a labtax that did not record its inputs"]
    else:
        found = find_state(phase_dir / "state")
        if found is not None:
            # Resuming is exact only on the same data order and schedule; `save_every` may change.
            changed = _changes(read_state_header(found).get("inputs") or {}, inputs, frozenset({"save_every"}))
    # Every rank decides before rank 0 removes anything, and waits until it has.
    runtime.barrier()
    if changed:
        say(f"[{phase}] {phase_dir} holds a run of other inputs ({'; '.join(changed[:4])}"
            f"{'; ...' if len(changed) > 4 else ''}): starting the phase over")
        if runtime.is_main:
            for name in RUN_FILES:
                target = phase_dir / name
                try:
                    if target.is_dir():
                        shutil.rmtree(target)
                    else:
                        target.unlink(missing_ok=True)
                except OSError as exc:
                    raise InputOutputError(f"cannot remove {target}: {exc.strerror or exc}") from None
    runtime.barrier()
    return reuse


def _start_model(phase: str, model: str, results: dict[str, dict[str, Any]]) -> tuple[str, dict[str, Any] | None]:
    """The model a phase starts from, and the result of the phase that made it (None: the user's)."""
    before = {"skills": "knowledge", "knowledge-step2": "knowledge-step1"}.get(phase)
    if before in results:
        return results[before]["selected"]["path"], results[before]
    return model, None


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


def check_request(data_dir: Path, model: str, phases: list[str], config: TrainConfig, select: str,
                  select_on_test: bool = False) -> None:
    """Every usage error that can be found without loading anything: run once before torchrun starts
    the ranks (so it is one line and exit 2, not one traceback per rank) and again in each rank."""
    if model not in (EMBEDDED, EMBEDDED_SMALL, TINY) and not (Path(model) / "config.json").is_file():
        raise UsageError(f"model {model!r} is not 'embedded', 'embedded-small', 'tiny' or a local Hugging Face "
                         "model directory (no config.json there)")
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
    check_sets_present(data_dir)
    held_out = held_out_file(data_dir)
    if select == "loss" and held_out is None:
        raise UsageError(f"--select loss needs {data_dir / VALIDATION}: {why_no_validation(data_dir)}",
                         hint="use --select last")
    if select == "loss" and held_out is not None and held_out.name == TEST_FILE and not select_on_test:
        raise UsageError(f"--select loss would choose checkpoints on {held_out}, the eval gate's own test items, "
                         f"which then grade the checkpoint it chose: {why_no_validation(data_dir)}",
                         hint="rerun labtax diff-generate for a validation split, use --select last, or "
                              "--select-on-test to accept it")


def run_training(data_dir: Path, model: str, output: Path, phases: list[str], config: TrainConfig,
                 select: str = "loss", scorer: Scorer | None = None,
                 log: Callable[[str], None] | None = None, report_to: list[str] | None = None,
                 save_dtype: str | None = None, select_on_test: bool = False,
                 dist_timeout_min: float = DEFAULT_TIMEOUT_MIN, lora: LoraSettings | None = None) -> dict[str, Any]:
    """Run the requested phases in order and return the summary (also written to summary.json).

    `select_on_test`: let `--select loss` measure test.jsonl, the eval gate's own items, when the data
    has no validation split (refused otherwise: the gate would grade the checkpoint chosen on it).
    `dist_timeout_min`: under torchrun, the process group's collective timeout (--dist-timeout).
    `lora`: each phase trains a LoRA adapter (train/lora.py) instead of every weight."""
    check_training_versions()
    place = launch_place()  # rank and local rank from torchrun's environment: no process group yet
    emit = log or (lambda s: print(s, file=sys.stderr, flush=True))
    say: Callable[[str], None] = emit if place.rank == 0 else (lambda s: None)
    check_request(data_dir, model, phases, config, select, select_on_test)
    if dist_timeout_min <= 0:
        raise UsageError("--dist-timeout must be a positive number of minutes")
    # Only the main rank locks: the run directory is one run's, whatever its world size (exit 4).
    lock = directory_lock(output, busy=lambda pid: LockedError(
        f"another labtax train run is using {output} (pid {pid})")) if place.rank == 0 else nullcontext()
    runtime: Runtime | None = None
    try:
        with lock:
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()  # our own progress lines are the only ones on stderr
            tokenizer = load_tokenizer(model)
            # Every phase's tokens before the process group exists: a LAB-size set takes tens of
            # minutes to tokenize, longer than any collective should wait (issue 23).
            tokens = tokenize_units(data_dir, output, training_units(data_dir, phases), config, tokenizer,
                                    build=place.local_rank == 0)
            runtime = dataclasses.replace(init_runtime(dist_timeout_min), save_dtype=save_dtype)
            if lora is not None and lora.load_in_4bit and runtime.distributed:
                raise UsageError("QLoRA (--load-in-4bit) runs in one process; drop --nproc-per-node")
            return _run(data_dir, model, output, phases, config, select, scorer, runtime, say, report_to or [],
                        tokenizer, tokens, lora)
    except OSError as exc:
        # A full disk or a read-only folder anywhere in the run (lock, token cache, metrics, a
        # checkpoint): one line naming the path and the cause, exit 2; what was saved stays.
        where = exc.filename if exc.filename is not None else output
        raise InputOutputError(f"{where}: {exc.strerror or exc}") from exc
    finally:
        if runtime is not None:
            shutdown(runtime)


Tokens = dict[str, tuple[TokenizedFile, TokenizedFile | None]]  # run name -> (training set, held-out set)
ANCHOR = "anchor"  # Tokens' entry for phase 1's anchor rows (no held-out set)


def tokenize_units(data_dir: Path, output: Path, units: list[tuple[str, str, str, str]], config: TrainConfig,
                   tokenizer: Any, build: bool) -> Tokens:
    """The token caches of every unit, with no collective: one process per node builds them (`build`:
    the node's local rank 0, or the only process); the others wait for each cache to be renamed into
    place, as a later run would find it. A unit whose result is reused costs a lookup (its caches
    are there from the run that made it)."""
    cache = output / "cache" / "tokens"
    tok_hash = tokenizer_hash(tokenizer)
    held_out = held_out_file(data_dir)
    get = tokenize_file if build else wait_for_tokens
    tokens: Tokens = {}
    for phase, set_file, settings_phase, _folder in units:
        seq = config.phases[settings_phase].max_seq_len
        held = selection_rows(held_out, phase, output / "cache") if held_out else None
        tokens[phase] = (get(data_dir / set_file, tokenizer, seq, cache, tok_hash),
                         get(held, tokenizer, seq, cache, tok_hash) if held else None)
    knowledge = config.phases["knowledge"]
    if any(settings == "knowledge" for _, _, settings, _ in units) and knowledge.anchor > 0:
        rows = skill_rows(data_dir / DATA_FILES["skills"], output / "cache" / "anchor_rows.jsonl")
        if rows is not None:
            tokens[ANCHOR] = (get(rows, tokenizer, knowledge.max_seq_len, cache, tok_hash), None)
    return tokens


def selection_rows(held_out: Path, phase: str, folder: Path) -> Path:
    """The held-out rows whose loss scores a phase's checkpoints: for the skills phase, those of the
    skill leaves only (a copy in `folder`, named by the rows' hash), when the split holds both kinds.
    A knowledge leaf's validation rows are facts no phase trains (the pairs past its quota), whose loss
    rises while phase 2 replays the trained facts: on bench/heldout2 (session 7) it rose from 1.02 to
    1.21 over four epochs, so loss selection kept phase 2's first epoch for the student with the new
    leaf while the student without it (skill rows only) kept a later one, and two skill leaves regressed
    (+21 % and +10 %) against a student that had simply trained longer on the same skill data."""
    if phase != "skills":
        return held_out
    lines = [line for line in held_out.read_text(encoding="utf-8").splitlines(keepends=True) if line.strip()]
    skills = [line for line in lines if _row_kind(line) != "knowledge"]
    if not skills or len(skills) == len(lines):
        return held_out
    text = "".join(skills)
    path = folder / f"{held_out.stem}-skills-{hashlib.sha256(text.encode()).hexdigest()[:16]}.jsonl"
    if not path.is_file():  # every rank writes the same bytes: whichever rename lands last is equal
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, text)
    return path


def _row_kind(line: str) -> str | None:
    try:
        meta = json.loads(line).get("metadata") or {}
    except (ValueError, AttributeError):
        return None
    return meta.get("kind") if isinstance(meta, dict) else None


def check_sets_present(data_dir: Path) -> None:
    """Every set the data's manifest lists must be there: without validation.jsonl selection falls
    back to the gate's test items, without the step sets phase 1 silently trains in one step (a CI
    artifact that carried only some files did both)."""
    manifest = read_manifest(data_dir)
    if manifest is None:
        return
    missing = sorted(name for name in manifest.sets if not (data_dir / name).is_file())
    if missing:
        raise UsageError(f"{data_dir / MANIFEST} lists {', '.join(missing)}, missing from {data_dir}",
                         hint="copy every set the manifest lists (the generate workflow's artifact carries them)")


def why_no_validation(data_dir: Path) -> str:
    """Why a data folder has no validation split, as far as its manifest tells."""
    manifest = read_manifest(data_dir)
    if manifest is None:
        return (f"no {VALIDATION} and no {MANIFEST} in {data_dir} (sets not written by labtax diff-generate, "
                "or copied without their manifest)")
    if VALIDATION in manifest.sets:
        return f"{VALIDATION} is listed in {data_dir / MANIFEST} but missing"
    if not manifest.sets:
        return f"{data_dir / MANIFEST} was written by a labtax without the validation split: rerun diff-generate"
    return ("the generation held no rows out: every leaf's rows fit its training quota (generate more samples "
            "per leaf for a validation split)")


def held_out_file(data_dir: Path) -> Path | None:
    """The split whose loss selects checkpoints: validation.jsonl (generated rows held out of training,
    never the eval gate's items); test.jsonl only for data mixed before the validation split existed."""
    for name in (VALIDATION, TEST_FILE):
        if (data_dir / name).is_file():
            return data_dir / name
    return None


def phase_select(phase: str, select: str) -> str:
    """The selection one phase uses. `--select loss` chooses the skills phase's checkpoint by its
    validation loss; the knowledge phase keeps its last one. Its validation rows are facts the phase
    never trains (the pairs past a leaf's quota), whose loss rises while the phase stores its own
    facts: on bench/heldout (session 6) loss selection kept the first of 12 epochs, so phase 2 started
    from a student that had seen each fact twice instead of 24 times, and closed-book recall stayed
    near zero. The knowledge recipe sets its length by exposures (docs/train.md) instead."""
    return "last" if phase != "skills" and select == "loss" else select


def _interpolate(summary: dict[str, Any], phase: str, start: str, weight: float, seed: int,
                 lora: LoraSettings | None, say: Callable[[str], None]) -> None:
    """Select the phase's result pulled back toward its start (train/interpolate.py), listed with the
    phase's checkpoints (its model card, `labtax eval`'s record); not for a LoRA adapter or `tiny`."""
    why = ("a LoRA checkpoint carries its adapter" if lora is not None else
           "tiny's random weights hold nothing to keep" if start == TINY else "")
    if why:
        say(f"[{phase}] interpolate {weight:g} not applied: {why}")
        return
    chosen = interpolated_selection(summary["selected"], start, weight, seed)
    summary["checkpoints"] = [*summary["checkpoints"], chosen]
    summary["selected"] = chosen
    say(f"[{phase}] {chosen['reason']}: {chosen['path']}")


def _run(data_dir: Path, model: str, output: Path, phases: list[str], config: TrainConfig, select: str,
         scorer: Scorer | None, runtime: Runtime, say: Callable[[str], None], report_to: list[str],
         tokenizer: Any, tokens: Tokens, lora: LoraSettings | None = None) -> dict[str, Any]:
    results: dict[str, dict[str, Any]] = {}
    held_out = held_out_file(data_dir)
    if held_out is not None and held_out.name == TEST_FILE:
        say(f"note: no {VALIDATION} in {data_dir} ({why_no_validation(data_dir)}): held-out loss is measured on "
            f"{TEST_FILE}, the eval gate's test split" + (" (--select-on-test)" if select == "loss" else ""))
    if "skills" in phases and "knowledge" not in phases and (output / "knowledge" / "result.json").is_file():
        results["knowledge"] = read_result(output / "knowledge" / "result.json")
    units = training_units(data_dir, phases)
    if len(units) > len(phases):
        say(f"[knowledge] two steps: {PHASE1_STEP1}, then {PHASE1_STEP2} from step 1's selected checkpoint")
    for phase, set_file, settings_phase, folder in units:
        if phase == "skills":
            _join_steps(output, results, runtime)
        unit_select = phase_select(phase, select)
        pc = config.phases[settings_phase]
        phase_dir = output / folder
        done = phase_dir / "result.json"
        start, start_from = _start_model(phase, model, results)
        anchor = tokens[ANCHOR][0] if settings_phase == "knowledge" and pc.anchor > 0 and ANCHOR in tokens else None
        inputs = phase_inputs(data_dir / set_file, held_out, start, start_from, pc, config.seed, unit_select,
                              runtime.save_dtype, anchor.meta["key"] if anchor is not None else None)
        reused = reuse_or_reset(phase, phase_dir, inputs, runtime, say)
        if reused is not None:
            results[phase] = reused
            say(f"[{phase}] already done: selected {reused['selected']['path']}")
            continue
        data, test = tokens[phase]
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
        if settings_phase == "knowledge" and pc.anchor > 0 and anchor is None:
            say(f"[{phase}] anchor {pc.anchor:g}: {DATA_FILES['skills']} holds no skill rows, nothing to keep")
        explicit = config.explicit.get(settings_phase, frozenset())
        pc, fitted = fit_epochs(pc, rows_per_fact(data_dir / set_file), explicit)  # flags win
        pc, schedule = fit_schedule(pc, len(data), explicit)
        schedule.update(fitted)
        torch.manual_seed(config.seed)
        # fp32 master weights whatever the checkpoint's dtype: without a dtype transformers loads a
        # bf16 config (phase 2 starts from phase 1's bf16 checkpoint on a GPU) as bf16, and AdamW then
        # keeps bf16 moments: at lr 6e-6 most updates round away. Compute is bf16 on GPUs anyway
        # (autocast on one device, FSDP2's MixedPrecisionPolicy under torchrun).
        # Under torchrun only rank 0 reads the weights (the others build on the meta device).
        net = load_4bit(start, config.seed) if lora and lora.load_in_4bit else load_start_model(start, runtime, config.seed)
        pc, schedule = fit_lr(pc, parameter_count(net), explicit, schedule)
        say(describe_schedule(phase, schedule))
        if lora is not None:
            net = apply_lora(net, lora, start)
            trainable, every = trainable_counts(net)
            say(f"[{phase}] LoRA rank {lora.rank}, alpha {lora.alpha:g} on "
                f"{', '.join(lora.target_modules) or 'every linear layer of the blocks'}: "
                f"{trainable:,} of {every:,} parameters trained")
        net.config.use_cache = False
        packed = getattr(net.config, "model_type", "") in PACKED_MODEL_TYPES
        checkpoint_activations(net, pc.activation_checkpointing)
        module = prepare_model(net, runtime)
        total = min(steps_per_epoch(len(data), pc.effective_batch) * pc.epochs, pc.max_steps or 1 << 62)
        reporter = PhaseReporter(report_to, phase, output, pc.to_dict(), total) if runtime.is_main else None
        try:
            result = train_phase(module, tokenizer, data, test, pc, config.seed, phase_dir, runtime, packed,
                                 log=reporter.filtered(say) if reporter else say,
                                 on_record=reporter.record if reporter else None, inputs=inputs,
                                 keep=partial(choosable, mode=unit_select), anchor_rows=anchor)
        finally:
            if reporter is not None:
                reporter.close()
        if runtime.is_main and finish_phase(phase_dir, phase):
            say(f"[{phase}] loss curve: {phase_dir / 'loss.png'}")
        del net, module
        summary: dict[str, Any] = {
            "phase": phase, "start": start, "model": model_id(model), "steps": result.steps,
            "samples": result.samples, "data": data.meta, "select": unit_select, "checkpoints": result.checkpoints,
            "held_out": held_out.name if held_out else None,  # the split `test_loss` is measured on
            "schedule": schedule, "inputs": inputs, "world_size": runtime.world_size,
            **({"lora": lora.as_dict()} if lora is not None else {}),
        }
        if runtime.is_main:
            summary["selected"] = select_checkpoint(result.checkpoints, unit_select, scorer)
            if pc.interpolate < 1.0:
                _interpolate(summary, phase, start, pc.interpolate, config.seed, lora, say)
            dtype = "bf16" if runtime.checkpoint_dtype == torch.bfloat16 else "fp32"
            write_cards(summary, data_dir, dtype)
            atomic_write_text(done, json.dumps(summary, indent=1))
        runtime.barrier()
        summary = json.loads(done.read_text())
        results[phase] = summary
        why = " (--select loss chooses phase 2's; phase 1 trains for its exposures)" if unit_select != select else ""
        say(f"[{phase}] done: {result.steps} steps, selected {summary['selected']['path']} ({unit_select}){why}")
    _join_steps(output, results, runtime)
    trained = [p for p in phases if p in results]
    if not trained:
        raise UsageError(f"no usable sample in any of {', '.join(DATA_FILES[p] for p in phases)}")
    final = {"phases": results, "final": results[trained[-1]]["selected"]["path"]}
    if runtime.is_main:
        (output / "summary.json").write_text(json.dumps(final, indent=1))
    return final
