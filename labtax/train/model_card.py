"""A model card (`README.md`) in every checkpoint, as people share checkpoints on model hubs.

It says what the checkpoint was made from, truthfully, so that a folder found later explains itself
and a hub accepts its metadata:
- `base_model` is the upstream model id (`HuggingFaceTB/SmolLM2-135M-Instruct`), never labtax's
  description of how it was loaded; that form (a GGUF file dequantised, a local folder) is said in the
  text. A model trained from a local folder takes that folder's own card's `base_model`.
- the licence is the base model's (known for labtax's named models, read from a local base's card,
  else `other` with the reason in the text);
- the held-out metric is named as it is: the loss on `validation.jsonl` (or `test.jsonl` for data
  mixed before the validation split existed), a mean per-token negative log-likelihood;
- the eval gate's per-leaf results, once `labtax eval` has run on the checkpoint (`labtax_eval.json`,
  written by eval), as `model-index` results and as a table;
- provenance: taxonomy commit, compared commit, teacher, every leaf with its content key and counts,
  the system turn of the sets; and the limitations of a model made this way.

The front matter is written with huggingface_hub's ModelCardData, the form the Hub validates.
`labtax_data.json` beside the card records the data folder and system turn for `labtax chat` and
`labtax export --format ollama` (labtax/use/provenance.py).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from labtax.data import PHASE_FILES, Manifest, read_manifest
from labtax.data.sample import read_set
from labtax.util.atomic import atomic_write_text

CARD = "README.md"
EVAL_RECORD = "labtax_eval.json"
DATA_RECORD = "labtax_data.json"
# The licences of the models labtax names (both Apache-2.0 upstream); labtax's own tiny model is
# labtax's licence.
LICENCES = {"HuggingFaceTB/SmolLM2-135M-Instruct": "apache-2.0", "Qwen/Qwen2.5-Coder-1.5B-Instruct": "apache-2.0",
            "labtax-tiny-llama": "apache-2.0"}
_HUB_ID = re.compile(r"^([A-Za-z0-9][\w.-]*/[\w.-]+)(?: \((.+)\))?$")


def _num(value: Any) -> str:
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.4f}"
    return "n/a" if value is None else str(value)


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _front_matter(path: Path) -> dict[str, Any]:
    """The metadata of a card at `path`, {} when there is none."""
    if not path.is_file():
        return {}
    from huggingface_hub import ModelCard

    try:
        return dict(ModelCard.load(path).data.to_dict())
    except Exception:  # noqa: BLE001 - any unreadable card is simply no information
        return {}


def base_model_of(model: str | None) -> tuple[str | None, str, str | None]:
    """(upstream hub id or None, how the training loaded it in words, licence id or None) for the
    model a phase started from (`phase['model']`, labtax.models.model_id's form)."""
    if not model:
        return None, "an unknown model", None
    match = _HUB_ID.match(model)
    if match:
        hub_id, form = match.group(1), match.group(2)
        loaded = f"`{hub_id}`" + (f", loaded from {form}" if form else "")
        return hub_id, loaded, LICENCES.get(hub_id)
    if model == "labtax-tiny-llama":
        return None, "labtax's `tiny` model (a 2-layer Llama initialised from a seed, not pretrained)", "apache-2.0"
    folder = Path(model)
    meta = _front_matter(folder / CARD)
    base = meta.get("base_model")
    base = base[0] if isinstance(base, list) and base else base
    licence = meta.get("license")
    if isinstance(base, str) and _HUB_ID.match(base):
        return base, f"the local folder `{folder}` (itself from `{base}`)", licence if isinstance(licence, str) else None
    return None, f"the local folder `{folder}`", licence if isinstance(licence, str) else None


def _taxonomy_section(manifest: Manifest | None, system: str | None) -> list[str]:
    if manifest is None:
        return ["## Training data provenance", "", ("No `manifest.json` beside the training sets: the data was not "
                "made by `labtax diff-generate`, so its taxonomy commit and leaves are unknown."), ""]
    head = manifest.head or "the working tree (uncommitted changes)"
    lines = ["## Training data provenance", "",
             f"- taxonomy commit: `{head}`" + (f" ({manifest.head_ref})" if manifest.head_ref else ""),
             f"- compared with: `{manifest.base or 'n/a'}`",
             f"- teacher model (wrote the synthetic data): `{manifest.teacher_model or 'n/a'}`",
             f"- system turn of every sample: {json.dumps(system) if system else 'none'}", "",
             "| leaf | kind | status | content key | train | test | replay |", "|---|---|---|---|---|---|---|"]
    for leaf in manifest.leaves:
        counts = leaf.counts
        lines.append(f"| `{_cell(leaf.path)}` | {leaf.kind} | {leaf.status} | "
                     f"`{leaf.key or ''}` | {_num(counts.get('train'))} | {_num(counts.get('test'))} | "
                     f"{_num(counts.get('replay'))} |")
    lines.append("")
    sets = manifest.sets
    if sets:
        lines += ["| set | samples | sha256 |", "|---|---|---|"]
        lines += [f"| `{name}` | {_num(info.samples)} | `{(info.sha256 or '')[:16]}` |"
                  for name, info in sorted(sets.items())]
        lines.append("")
    return lines


def _eval_results(report: Mapping[str, Any]) -> list[Any]:
    """The eval gate's per-leaf results as huggingface_hub EvalResults (the card's `model-index`)."""
    from huggingface_hub import EvalResult

    results = []
    for row in report.get("leaves") or []:
        # One result group per leaf: the Hub groups results by (task, dataset type, config, split), so
        # the leaf is the dataset's config (a leaf's held-out items of the taxonomy's test split).
        common = {"task_type": "text-generation", "dataset_type": "labtax-taxonomy", "dataset_name": row["leaf"],
                  "dataset_config": row["leaf"], "dataset_split": "test"}
        if row.get("candidate") is not None:
            results.append(EvalResult(**common, metric_type="mean_token_logprob", metric_value=row["candidate"],
                                      metric_name="mean per-token log-likelihood of the reference answers (nats)"))
        if row.get("change_pct") is not None:
            results.append(EvalResult(**common, metric_type="nll_change_pct", metric_value=row["change_pct"],
                                      metric_name=f"NLL change against {report['base']['model']} (%)"))
    return results


def _eval_section(report: Mapping[str, Any] | None) -> list[str]:
    if report is None:
        return ["## Evaluation gate", "", ("`labtax eval` has not been run on this checkpoint: run "
                "`labtax eval --base <model> --candidate <this folder> --data <sets>` (it records its "
                "per-leaf results here)."), ""]
    lines = ["## Evaluation gate", "", (f"`labtax eval` against `{report['base']['model']}`: **{report['verdict']}** "
             f"(data `{report.get('data')}`)."), "",
             "| leaf | changed | base | candidate | NLL change | evidence | status |", "|---|---|---|---|---|---|---|"]
    for r in report.get("leaves") or []:
        change = "n/a" if r.get("change_pct") is None else f"{r['change_pct']:+.2f}%"
        lines.append(f"| `{_cell(r['leaf'])}` | {'yes' if r.get('changed') else 'no'} | {_num(r.get('base'))} | "
                     f"{_num(r.get('candidate'))} | {change} | {r.get('evidence', '')} | {r.get('status', '')} |")
    lines += ["", ("Scores: mean per-token log-likelihood of the held-out reference answers (nats, higher is better); "
              "NLL change: 100 × (NLL candidate − NLL base) / NLL base (negative is better)."), ""]
    return lines


def _lora_lines(lora: Mapping[str, Any] | None) -> list[str]:
    if not lora:
        return []
    targets = lora.get("target_modules")
    return [(f"Trained as a LoRA adapter with PEFT (rank {lora.get('rank')}, alpha {lora.get('alpha')}, dropout "
            f"{lora.get('dropout')}, on {', '.join(targets) if isinstance(targets, list) else 'every linear layer of the blocks'}"
            f"{', base in 4-bit NF4 (QLoRA)' if lora.get('load_in_4bit') else ''}): this folder holds the merged "
            "weights, `adapter/` the adapter alone (its base: the model this phase started from)."), ""]


def _limitations(teacher: str | None) -> list[str]:
    return ["## Limitations", "",
            (f"- Fine-tuned on synthetic data that a teacher model (`{teacher or 'unknown'}`) wrote from the "
            "taxonomy's seed examples and documents: the teacher's errors and style are learned with it."),
            ("- The held-out loss and the evaluation gate measure items drawn from the same taxonomy and the same "
            "teacher; they say nothing of general ability, safety or factuality elsewhere."),
            "- Everything the base model is known to get wrong still applies; small models hallucinate.",
            "- The licence is the base model's; the taxonomy's content may carry its own terms.", ""]


def render_card(checkpoint: dict[str, Any], phase: dict[str, Any], manifest: Manifest | None,
                dtype: str, *, system: str | None = None, report: Mapping[str, Any] | None = None,
                adapter: bool = False) -> str:
    """The README.md text for one checkpoint of a finished phase (`report`: labtax eval's, when it ran)."""
    from huggingface_hub import ModelCardData

    data = phase.get("data") or {}
    selected = (phase.get("selected") or {}).get("path")
    name = Path(checkpoint["path"]).name
    hub_id, loaded, licence = base_model_of(phase.get("model"))
    held_out = phase.get("held_out") or "test.jsonl"
    results = _eval_results(report) if report else None
    card = ModelCardData(
        library_name="peft" if adapter else "transformers", pipeline_tag="text-generation",
        tags=["labtax", "lab", "synthetic-data"] + (["lora"] if adapter else []),
        base_model=hub_id, license=licence or "other",
        model_name=f"{phase['phase']}-{name}" if results else None, eval_results=results or None)
    licence_line = (f"Licence: `{licence}`, the base model's." if licence else
                    "Licence: unknown (the base model's card names none); `other` until you set it.")
    lines = ["---", card.to_yaml(), "---", "", f"# {phase['phase']} checkpoint `{name}`", "",
             f"Trained by `labtax train` (LAB method), phase **{phase['phase']}**, from {loaded}; this phase "
             f"started from `{phase.get('start')}`: {checkpoint.get('step')} optimizer steps, "
             f"{checkpoint.get('samples')} samples seen. Weights saved in {dtype}."
             + (" **This is the phase's selected checkpoint.**" if checkpoint["path"] == selected else ""), "",
             licence_line, "",
             *_lora_lines(phase.get("lora")),
             *_taxonomy_section(manifest, system),
             "## Training data", "",
             (f"- samples: {_num(data.get('samples'))}, tokens: {_num(data.get('tokens'))}, "
              f"loss tokens: {_num(data.get('loss_tokens'))}"),
             f"- by source: {', '.join(f'{k} {v}' for k, v in (data.get('sources') or {}).items()) or 'n/a'}",
             f"- dropped: {', '.join(f'{k} {v}' for k, v in (data.get('dropped') or {}).items()) or 'none'}",
             f"- data key: `{data.get('key', 'n/a')}`", "",
             "## Checkpoints of this phase", "",
             (f"Selection: `{phase.get('select')}`. Validation metric: the loss on `{held_out}` (generated rows "
             "held out of training), a mean per-token negative log-likelihood in nats (lower is better)."), "",
             f"| checkpoint | step | samples | {held_out} loss | eval score | |", "|---|---|---|---|---|---|"]
    for c in phase.get("checkpoints") or []:
        mark = "selected" if c["path"] == selected else ""
        lines.append(f"| `{Path(c['path']).name}` | {c.get('step')} | {c.get('samples')} | "
                     f"{_num(c.get('test_loss'))} | {_num(c.get('score'))} | {mark} |")
    lines += ["", *_eval_section(report), *_limitations(manifest.teacher_model or None if manifest else None)]
    return "\n".join(lines)


def sets_system_prompt(data_dir: Path) -> str | None:
    """The system turn the sets in `data_dir` begin with: the manifest's mix setting, else the first
    sample's system message; None when neither says ("" in the manifest: the sets have none)."""
    manifest = read_manifest(data_dir)
    if manifest is not None and manifest.system_prompt is not None:
        return manifest.system_prompt or None
    for name in PHASE_FILES.values():
        path = data_dir / name
        if not path.is_file():
            continue
        for sample in read_set(path, lambda record: record):
            row: Any = sample  # a raw JSON row: only its first message is read
            first = (row.get("messages") or [{}])[0]
            return str(first["content"]) if first.get("role") == "system" else None
    return None


def data_record(data_dir: Path) -> dict[str, Any]:
    """What a checkpoint records about its training data (`labtax_data.json`): read by labtax chat and
    labtax export --format ollama (labtax/use/provenance.py)."""
    manifest = read_manifest(data_dir)
    return {"data_dir": str(data_dir.resolve()), "system_prompt": sets_system_prompt(data_dir),
            "taxonomy_commit": manifest.head if manifest else None,
            "teacher_model": manifest.teacher_model or None if manifest else None}


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def write_cards(phase: dict[str, Any], data_dir: Path, dtype: str) -> int:
    """Write README.md and labtax_data.json into every checkpoint of `phase` that still exists; returns
    how many."""
    manifest = read_manifest(data_dir)
    record = data_record(data_dir)
    written = 0
    for checkpoint in phase.get("checkpoints") or []:
        folder = Path(checkpoint["path"])
        if not folder.is_dir():
            continue
        atomic_write_text(folder / DATA_RECORD, json.dumps(record, indent=1) + "\n")
        report = _read_json(folder / EVAL_RECORD)
        atomic_write_text(folder / CARD, render_card(checkpoint, phase, manifest, dtype,
                                                     system=record.get("system_prompt"), report=report))
        written += 1
    return written


def record_eval(candidate: Path, report: Mapping[str, Any]) -> bool:
    """Keep labtax eval's report in a labtax checkpoint (`labtax_eval.json`) and write its card again with
    the per-leaf results; False (nothing written) for a folder labtax train did not make."""
    phase_file = candidate.parent.parent / "result.json"  # OUTPUT/<phase>/checkpoints/<name>/
    phase = _read_json(phase_file)
    record = _read_json(candidate / DATA_RECORD)
    if not isinstance(phase, dict) or not isinstance(record, dict):
        return False
    checkpoint = next((c for c in phase.get("checkpoints") or [] if Path(c["path"]) == candidate.resolve()
                       or Path(c["path"]) == candidate), None)
    if checkpoint is None:
        return False
    atomic_write_text(candidate / EVAL_RECORD, json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    config = _read_json(candidate / "config.json") or {}
    dtype = "bf16" if config.get("dtype", config.get("torch_dtype")) == "bfloat16" else "fp32"
    data_dir = Path(record.get("data_dir") or "")
    manifest = read_manifest(data_dir) if data_dir.is_dir() else None
    atomic_write_text(candidate / CARD, render_card(checkpoint, phase, manifest, dtype,
                                                    system=record.get("system_prompt"), report=report))
    return True
