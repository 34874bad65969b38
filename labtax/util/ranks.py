"""Whether this process is a torchrun worker that labtax started, and how such a worker reports its
one-line error: below train/ so that the command line can ask without importing torch."""

from __future__ import annotations

import json
import os
import time

# Set by labtax/train/launch.py on the workers it starts: they train instead of launching again.
TORCHRUN_MARKER = "LABTAX_TORCHRUN"


def under_torchrun() -> bool:
    return os.environ.get(TORCHRUN_MARKER) == "1"


def report_in_rank(message: str) -> bool:
    """In a torchrun worker: leave the one-line error for the launcher (torchrun's per-rank error
    file, which `train.launch.rank_failure` reads back) instead of printing it once per rank. False
    elsewhere."""
    path = os.environ.get("TORCHELASTIC_ERROR_FILE")
    if not under_torchrun() or not path:
        return False
    try:
        with open(path, "w", encoding="utf-8") as f:
            json.dump({"message": message, "timestamp": int(time.time()), "labtax": True}, f)
    except OSError:
        return False
    return True
