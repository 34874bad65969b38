"""`labtax train` after option parsing: settings, then the phases. The checkpoint scorer of
`--select eval` comes in as a callable (cli.py passes labtax.eval's), so train/ imports no eval/."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from labtax.progress import note
from labtax.train.config import OVERRIDE_OPTIONS, load_config
from labtax.train.phases import Scorer, run_training


def run_train_command(params: dict[str, Any], report_to: list[str], scorer: Scorer | None = None) -> str | None:
    """Train as the parsed options say; returns the final checkpoint's path on rank 0 (else None).
    `scorer` rates a checkpoint for `--select eval` (higher is better)."""
    config = load_config(Path(params["config_file"]) if params["config_file"] else None,
                         {k: params[k] for k in OVERRIDE_OPTIONS})
    data_dir = Path(params["data_dir"])
    phases = ["knowledge", "skills"] if params["phase"] == "all" else [params["phase"]]
    summary = run_training(data_dir, params["model"], Path(params["output"]), phases, config,
                           select=params["select"], scorer=scorer, report_to=report_to, log=note,
                           save_dtype=params.get("save_dtype"))
    final = summary.get("final")
    return str(final) if final and os.environ.get("RANK", "0") == "0" else None
