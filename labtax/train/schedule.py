"""A schedule that fits the data: the LAB recipe's batch sizes and warm-up assume hundreds of
thousands of samples; a taxonomy with ten knowledge leaves has a few thousand, and at an effective
batch of 128 (3,840 in phase 2) with 25 warm-up steps the peak learning rate is never reached.

With `fit_schedule` on (the default), before a phase starts, when the configured warm-up is longer
than the phase (too little data: the peak learning rate would never be reached):
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
from typing import Any

from labtax.train.config import PhaseConfig
from labtax.train.packing import steps_per_epoch

MIN_STEPS_PER_EPOCH = 10
WARMUP_SHARE = 0.1


def fit_schedule(cfg: PhaseConfig, samples: int,
                 explicit: frozenset[str] = frozenset()) -> tuple[PhaseConfig, dict[str, Any]]:
    """The phase's config fitted to `samples` (keeping the `explicit` options), and the record of it."""
    batch, warmup = cfg.effective_batch, cfg.warmup_steps

    def total_steps(b: int) -> tuple[int, int]:
        per = steps_per_epoch(samples, b)
        return per, min(per * cfg.epochs, cfg.max_steps) if cfg.max_steps else per * cfg.epochs

    per_epoch, total = total_steps(batch)
    if cfg.fit_schedule and warmup > total:
        if "effective_batch" not in explicit:
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
    return (f"[{phase}] schedule: effective batch {record['effective_batch']}, warm-up {record['warmup_steps']} "
            f"of {record['total_steps']} steps ({record['steps_per_epoch']}/epoch), peak lr {record['peak_lr']:g} "
            f"({how})")
