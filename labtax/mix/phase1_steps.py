"""Phase 1 in two steps (`--phase1 two-step`): the LAB paper's knowledge tuning, as an option.

  step 1  phase1_knowledge_step1.jsonl: every knowledge sample of phase 1 whose answer (the last
          assistant turn) has at most `short_answer_max_words` words;
  step 2  phase1_knowledge_step2.jsonl: the other knowledge samples (long answers), every
          foundational-skills sample, and `step1_replay` of step 1's rows replayed (marked
          `metadata.replay: true, replay_step: 1`), drawn with a stream of the run's seed.

The thresholds' defaults are data (`phase1_steps.yaml`); `MixSettings` carries them, so the manifest
records them and a changed one rebuilds the sets. `labtax train` runs the two steps in order when
both files are there (labtax/train/phases.py); phase1_knowledge.jsonl stays the whole phase 1.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from labtax.data import PHASE1_STEP1, PHASE1_STEP2

PHASE1_MODES = ("one-step", "two-step")


@lru_cache(maxsize=1)
def step_defaults() -> dict[str, Any]:
    """The packaged thresholds (`phase1_steps.yaml`)."""
    data = yaml.safe_load(Path(__file__).with_name("phase1_steps.yaml").read_text(encoding="utf-8"))
    return {"short_answer_max_words": int(data["short_answer_max_words"]),
            "step1_replay": float(data["step1_replay"])}


def answer_words(line: bytes) -> int:
    """Words of a set line's answer: its last assistant turn; for a document row (no assistant turn,
    the passage itself is what is learned) the words of its text, so passages count as long."""
    messages = json.loads(line)["messages"]
    answers = [m.get("content", "") for m in messages if m.get("role") == "assistant"]
    if not answers:
        answers = [" ".join(str(m.get("content", "")) for m in messages if m.get("role") != "system")]
    return len(str(answers[-1]).split())


def _lines(chunks: Sequence[bytes | memoryview]) -> list[bytes]:
    return [line + b"\n" for line in b"".join(bytes(c) for c in chunks).split(b"\n")[:-1]]


def split_steps(knowledge: Sequence[bytes | memoryview], foundational: Sequence[bytes | memoryview],
                settings: Any) -> tuple[dict[str, bytes], dict[str, int]]:
    """({step file: its lines}, counts) from phase 1's knowledge lines and the foundational skills
    lines as the sets hold them (runs of encoded lines, each with the system turn)."""
    limit = settings.short_answer_max_words
    short: list[bytes] = []
    long: list[bytes] = []
    found = _lines(foundational)
    for line in _lines(knowledge):
        (short if answer_words(line) <= limit else long).append(line)
    rng = random.Random(f"labtax-step1-replay-{settings.seed}")
    n = min(len(short), round(settings.step1_replay * len(short)))
    replay = []
    for i in sorted(rng.sample(range(len(short)), n)):
        row = json.loads(short[i])
        row["metadata"] = {**row.get("metadata", {}), "replay": True, "replay_step": 1}
        replay.append(json.dumps(row, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode("utf-8") + b"\n")
    counts = {"short": len(short), "long": len(long), "foundational": len(found), "step1_replay": n}
    return {PHASE1_STEP1: b"".join(short), PHASE1_STEP2: b"".join([*long, *found, *replay])}, counts
