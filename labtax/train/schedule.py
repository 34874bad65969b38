"""A schedule that fits the data: the LAB recipe's batch sizes and warm-up assume hundreds of
thousands of samples; a taxonomy with ten knowledge leaves has a few thousand, and at an effective
batch of 128 (3,840 in phase 2) with 25 warm-up steps the peak learning rate is never reached.

Epochs first (`fit_epochs`): with `exposures` set (the knowledge phase's default) and the set's rows
naming their facts (`metadata.fact`), epochs = ceil(exposures / rows per fact), the median fact's
rows, at most MAX_FITTED_EPOCHS; `--epochs` given wins.

With `fit_schedule` on (the default), before a phase starts:
- with `fitted_batch` set (off by default): effective batch = min(configured, max(fitted_batch,
  ceil(samples / FITTED_STEPS_PER_EPOCH))): a row gets the same share of the updates whatever else
  a set of up to a few thousand rows holds (adding a leaf does not dilute the others), and a large
  set still reaches the recipe's batch; the warm-up as below;
- else, when the configured warm-up is longer than the phase (too little data: the peak learning
  rate would never be reached):
  effective batch = min(configured, max(1, samples // MIN_STEPS_PER_EPOCH)): at least 10 optimizer
                    steps per epoch whenever there are at least 10 samples;
  warm-up steps   = min(configured, max(1, round(WARMUP_SHARE * total steps))): the peak is reached
                    within the first 10% of the phase.
A number the user gave (a flag, `.labtax.yaml train:`, or the --config YAML) is never changed: the
fitted values only replace packaged defaults, so `--effective-batch 64` trains with 64 whatever the
data's size, and only the warm-up (if not given too) is fitted to the resulting number of steps.
The learning rate itself is kept (the recipe's peak). A phase whose configured schedule reaches the
peak keeps the configured numbers. The chosen numbers are printed and recorded in the phase's result.json and summary.json
(`schedule`), and the metrics' start event carries the fitted config.
"""

from __future__ import annotations

import dataclasses
import json
import math
import statistics
from pathlib import Path
from typing import Any

from labtax.train.config import PhaseConfig
from labtax.train.packing import steps_per_epoch

MIN_STEPS_PER_EPOCH = 10
FITTED_STEPS_PER_EPOCH = 100  # with `fitted_batch`: the batch grows past it only beyond this many steps an epoch
WARMUP_SHARE = 0.1
MAX_FITTED_EPOCHS = 100  # a fact with one row would otherwise ask for `exposures` epochs of everything


def rows_per_fact(path: Path) -> list[int]:
    """How many rows of a set file word each fact (`metadata.fact`: a fact's open- and closed-book
    rows of every wording); [] when no row names a fact (skills data, or data mixed before facts)."""
    counts: dict[str, int] = {}
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if '"fact"' not in line:  # most lines of a large skills set: no JSON decoding
                continue
            fact = (json.loads(line).get("metadata") or {}).get("fact")
            if isinstance(fact, str) and fact:
                counts[fact] = counts.get(fact, 0) + 1
    return sorted(counts.values())


SMALL_MODEL_PARAMS = 1_000_000_000


def fit_lr(cfg: PhaseConfig, params: int, explicit: frozenset[str],
           record: dict[str, Any]) -> tuple[PhaseConfig, dict[str, Any]]:
    """The peak learning rate for the student's size: `small_model_lr` under SMALL_MODEL_PARAMS
    parameters when set and `lr` was not given, else `lr`."""
    small = bool(cfg.small_model_lr) and params < SMALL_MODEL_PARAMS and "lr" not in explicit
    if small:
        cfg = dataclasses.replace(cfg, lr=cfg.small_model_lr)
    return cfg, {**record, "peak_lr": cfg.lr, "params": params, "small_model_lr": small}


def fit_epochs(cfg: PhaseConfig, per_fact: list[int],
               explicit: frozenset[str] = frozenset()) -> tuple[PhaseConfig, dict[str, Any]]:
    """Epochs that show the median fact `exposures` times: ceil(exposures / its rows per epoch),
    between 1 and MAX_FITTED_EPOCHS. A fact is recalled from a new wording only after many
    exposures (bench/learning_bench.py, docs/train.md); a fixed small epoch count under-trains a
    leaf with few wordings and over-trains one with many. Kept as configured when `epochs` was given,
    `exposures` is 0 or no row names a fact."""
    record: dict[str, Any] = {"exposures": cfg.exposures, "facts": len(per_fact)}
    if not cfg.exposures or not per_fact or "epochs" in explicit:
        return cfg, {**record, "epochs_fitted": False}
    rows = statistics.median(per_fact)
    epochs = max(1, min(MAX_FITTED_EPOCHS, math.ceil(cfg.exposures / rows)))
    return dataclasses.replace(cfg, epochs=epochs), {**record, "epochs_fitted": True, "rows_per_fact": rows}


def fit_schedule(cfg: PhaseConfig, samples: int,
                 explicit: frozenset[str] = frozenset()) -> tuple[PhaseConfig, dict[str, Any]]:
    """The phase's config fitted to `samples` (keeping the `explicit` options), and the record of it."""
    batch, warmup = cfg.effective_batch, cfg.warmup_steps

    def total_steps(b: int) -> tuple[int, int]:
        per = steps_per_epoch(samples, b)
        return per, min(per * cfg.epochs, cfg.max_steps) if cfg.max_steps else per * cfg.epochs

    per_epoch, total = total_steps(batch)
    fixed = bool(cfg.fitted_batch) and "effective_batch" not in explicit
    if cfg.fit_schedule and (fixed or warmup > total):
        if fixed:
            # A fixed batch until an epoch would pass FITTED_STEPS_PER_EPOCH steps, then the recipe's
            # growing one: no cliff between a set of 300 rows and one of 3,000.
            batch = min(batch, max(cfg.fitted_batch, -(-samples // FITTED_STEPS_PER_EPOCH)))
        elif "effective_batch" not in explicit:
            batch = min(batch, max(1, samples // MIN_STEPS_PER_EPOCH))
        per_epoch, total = total_steps(batch)
        if "warmup_steps" not in explicit:
            warmup = min(warmup, max(1, round(WARMUP_SHARE * total)))
    fitted = dataclasses.replace(cfg, effective_batch=batch, warmup_steps=warmup)
    record = {
        "samples": samples, "effective_batch": batch, "warmup_steps": warmup, "steps_per_epoch": per_epoch,
        "total_steps": total, "epochs": cfg.epochs, "peak_lr": cfg.lr, "peak_reached": warmup <= total,
        "fitted": cfg.fit_schedule and (batch, warmup) != (cfg.effective_batch, cfg.warmup_steps),
        "configured": {"effective_batch": cfg.effective_batch, "warmup_steps": cfg.warmup_steps},
        "explicit": sorted(explicit & {"effective_batch", "warmup_steps"}),
    }
    return fitted, record


def describe(phase: str, record: dict[str, Any]) -> str:
    """One line for the log: the numbers the phase runs with."""
    how = (f"fitted from batch {record['configured']['effective_batch']}, warm-up "
           f"{record['configured']['warmup_steps']}" if record["fitted"] else "as configured")
    if record.get("explicit"):
        how += f"; {' and '.join(k.replace('_', ' ') for k in record['explicit'])} as given"
    epochs = ""
    if record.get("small_model_lr"):
        how += f"; the small-student rate: {record['params'] / 1e6:.0f}M parameters"
    if record.get("epochs_fitted"):
        epochs = (f", {record['epochs']} epochs fitted to {record['exposures']} exposures of each of "
                  f"{record['facts']} facts ({record['rows_per_fact']:g} rows each)")
    return (f"[{phase}] schedule: effective batch {record['effective_batch']}, warm-up {record['warmup_steps']} "
            f"of {record['total_steps']} steps ({record['steps_per_epoch']}/epoch){epochs}, peak lr "
            f"{record['peak_lr']:g} ({how})")
