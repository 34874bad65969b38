"""A model card (`README.md`) in every checkpoint, as people share checkpoints on model hubs.

It says what the checkpoint was made from, so that a folder found later explains itself: the
taxonomy commit and teacher (from the data's manifest.json), every leaf with its content key and
sample counts, the training data counts, the training settings and dtype, and the phase's
evaluation table (held-out loss per checkpoint, the eval score when `--select eval` ran, which one
was selected). `labtax eval`'s markdown table is appended by the train workflow when it runs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from labtax.data import read_manifest
from labtax.util.atomic import atomic_write_text

CARD = "README.md"


def _num(value: Any) -> str:
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.4f}"
    return "n/a" if value is None else str(value)


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _taxonomy_section(manifest: Mapping[str, Any] | None) -> list[str]:
    if manifest is None:
        return ["## Taxonomy", "", ("No `manifest.json` beside the training sets: the data was not made by "
                "`labtax diff-generate`, so its taxonomy commit and leaves are unknown."), ""]
    head = manifest.get("head") or "the working tree (uncommitted changes)"
    lines = ["## Taxonomy", "", f"- commit: `{head}`" + (f" ({manifest['head_ref']})" if manifest.get("head_ref") else ""),
             f"- compared with: `{manifest.get('base') or 'n/a'}`",
             f"- teacher model: `{manifest.get('teacher_model') or 'n/a'}`", "",
             "| leaf | kind | status | content key | train | test | replay |", "|---|---|---|---|---|---|---|"]
    for leaf in manifest.get("leaves") or []:
        counts = leaf.get("counts") or {}
        lines.append(f"| `{_cell(leaf.get('path'))}` | {leaf.get('kind', '')} | {leaf.get('status', '')} | "
                     f"`{leaf.get('key') or ''}` | {_num(counts.get('train'))} | {_num(counts.get('test'))} | "
                     f"{_num(counts.get('replay'))} |")
    lines.append("")
    sets = manifest.get("sets") or {}
    if sets:
        lines += ["| set | samples | sha256 |", "|---|---|---|"]
        lines += [f"| `{name}` | {_num(info.get('samples'))} | `{str(info.get('sha256', ''))[:16]}` |"
                  for name, info in sorted(sets.items())]
        lines.append("")
    return lines


def render_card(checkpoint: dict[str, Any], phase: dict[str, Any], manifest: Mapping[str, Any] | None,
                dtype: str) -> str:
    """The README.md text for one checkpoint of a finished phase."""
    data = phase.get("data") or {}
    selected = (phase.get("selected") or {}).get("path")
    name = Path(checkpoint["path"]).name
    front = ["---", "library_name: transformers", "pipeline_tag: text-generation",
             "tags: [labtax, lab, synthetic-data]"]
    if phase.get("model") and not str(phase["model"]).startswith("/"):
        front.append(f"base_model: {phase['model']}")
    lines = [*front, "---", "", f"# {phase['phase']} checkpoint `{name}`", "",
             f"Trained by `labtax train`, phase **{phase['phase']}**, from `{phase.get('start')}`: "
             f"{checkpoint.get('step')} optimizer steps, {checkpoint.get('samples')} samples seen. "
             f"Weights saved in {dtype}." + (" **This is the phase's selected checkpoint.**"
                                           if checkpoint["path"] == selected else ""), "",
             *_taxonomy_section(manifest),
             "## Training data", "",
             (f"- samples: {_num(data.get('samples'))}, tokens: {_num(data.get('tokens'))}, "
             f"loss tokens: {_num(data.get('loss_tokens'))}"),
             f"- by source: {', '.join(f'{k} {v}' for k, v in (data.get('sources') or {}).items()) or 'n/a'}",
             f"- dropped: {', '.join(f'{k} {v}' for k, v in (data.get('dropped') or {}).items()) or 'none'}",
             f"- data key: `{data.get('key', 'n/a')}`", "",
             "## Evaluation", "",
             f"Checkpoints of this phase (selection: `{phase.get('select')}`):", "",
             "| checkpoint | step | samples | test.jsonl loss | eval score | |", "|---|---|---|---|---|---|"]
    for c in phase.get("checkpoints") or []:
        mark = "selected" if c["path"] == selected else ""
        lines.append(f"| `{Path(c['path']).name}` | {c.get('step')} | {c.get('samples')} | "
                     f"{_num(c.get('test_loss'))} | {_num(c.get('score'))} | {mark} |")
    lines += ["", "Per-leaf results: `labtax eval --base <model> --candidate <this folder> --data <sets>`.", ""]
    return "\n".join(lines)


def write_cards(phase: dict[str, Any], data_dir: Path, dtype: str) -> int:
    """Write README.md into every checkpoint of `phase` that still exists; returns how many."""
    manifest = read_manifest(data_dir)
    written = 0
    for checkpoint in phase.get("checkpoints") or []:
        folder = Path(checkpoint["path"])
        if not folder.is_dir():
            continue
        atomic_write_text(folder / CARD, render_card(checkpoint, phase, manifest, dtype))
        written += 1
    return written
