"""`labtax generate`: run the leaf pipelines for forced leaves and write one JSONL per leaf.

Kept out of cli.py so the command stays a thin shell: this module loads the leaves, builds the
teacher, runs every leaf (concurrently: leaves are independent and an openai teacher's concurrency
is shared by all of them), writes each leaf's file atomically as soon as it is done, and returns the
per-leaf results for the report.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labtax.data import FaultSummary, GenerationStats, LeafEntry, Manifest, RunSummary, write_manifest
from labtax.data.manifest import coverage_text
from labtax.data.names import funnel_in_order
from labtax.errors import LabtaxError
from labtax.mix import mix
from labtax.mix.held_out import seed_test_samples
from labtax.progress import QUIET, note
from labtax.sdg.pipelines import LeafResult, generate_leaf
from labtax.sdg.readers import reader_identity
from labtax.sdg.settings import GenerationSettings, settings_record
from labtax.taxonomy import collect_targets
from labtax.taxonomy.leaves import load_leaf
from labtax.taxonomy.model import Leaf
from labtax.teachers.base import Teacher
from labtax.util.atomic import atomic_write_text
from labtax.util.quoting import one_line, quote_path
from labtax.util.redact import redact, redact_obj


@dataclass
class LeafOutcome:
    leaf: str
    result: LeafResult | None = None
    output: Path | None = None
    error: LabtaxError | None = None


def output_path(output: Path, leaf: Leaf) -> Path:
    """`<output>/<leaf folder>.jsonl`, e.g. out/compositional_skills/writing/poems.jsonl."""
    return output / f"{leaf.leaf_dir}.jsonl"


def write_jsonl(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    """Temp file in the same folder, then rename: a reader never sees half a file."""
    atomic_write_text(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


class _Bars:
    """One tqdm bar per leaf on stderr; nothing at all when stderr is not a terminal."""

    def __init__(self, leaves: Sequence[Leaf]) -> None:
        self.enabled = sys.stderr.isatty()
        self.bars: dict[str, Any] = {}
        if self.enabled:
            from tqdm import tqdm

            for i, leaf in enumerate(leaves):
                self.bars[leaf.path] = tqdm(total=0, desc=leaf.leaf_dir, position=i, leave=False,
                                            file=sys.stderr, unit="req")

    def callback(self, leaf: Leaf) -> Any:
        if not self.enabled:
            return None
        bar = self.bars[leaf.path]

        def progress(stage: str, done: int, total: int) -> None:
            bar.set_description(f"{leaf.leaf_dir} [{stage}]", refresh=False)
            bar.total = total
            bar.n = done
            bar.refresh()

        return progress

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()


async def generate_leaves(
    leaves: Sequence[Leaf],
    teacher: Teacher,
    settings: GenerationSettings,
    *,
    taxonomy_root: Path,
    output: Path,
) -> list[LeafOutcome]:
    bars = _Bars(leaves)

    async def one(leaf: Leaf) -> LeafOutcome:
        try:
            result = await generate_leaf(leaf, teacher, settings, taxonomy_root=taxonomy_root,
                                         progress=bars.callback(leaf))
        except LabtaxError as exc:
            return LeafOutcome(leaf.path, error=exc)
        path = output_path(output, leaf)
        write_jsonl(path, result.samples)
        return LeafOutcome(leaf.path, result, path)

    try:
        return list(await asyncio.gather(*(one(leaf) for leaf in leaves)))
    finally:
        bars.close()
        await teacher.aclose()


def summary_line(outcome: LeafOutcome) -> str:
    if outcome.error is not None or outcome.result is None:
        return one_line(redact(f"{quote_path(outcome.leaf)}: FAILED: {outcome.error}"))
    st = outcome.result.stats
    dropped = ", ".join(f"{k} {v}" for k, v in st["dropped"].items()) or "none"
    line = (
        f"{quote_path(outcome.leaf)}: generated {st['generated']}, kept {st['kept']} (dropped: {dropped}); "
        f"requests {st['requests']} ({st['failed_requests']} failed); "
        f"tokens {st['prompt_tokens']} in + {st['completion_tokens']} out; {st['seconds']:.1f} s"
        + ("; faults: " + ", ".join(f"{k} {v}" for k, v in st["faults"].items()) if st.get("faults") else "")
    )
    return line + funnel_text(st)


def funnel_text(stats: dict[str, Any]) -> str:
    """'; funnel asked 50 -> parsed 48 -> ... -> kept 20' plus a note when the request bound bound."""
    funnel = funnel_in_order(stats.get("funnel") or {})
    out = ("; funnel " + " -> ".join(f"{k} {v}" for k, v in funnel.items())) if funnel else ""
    out += coverage_text(GenerationStats.from_stats(stats))
    if stats.get("document_readers"):
        out += "; documents read by " + ", ".join(f"{k} {v}" for k, v in stats["document_readers"].items())
    if str(stats.get("chunks_sized_by", "")).startswith("estimate"):
        out += "; chunks sized by the words x 1.3 estimate (no tokenizer for this teacher)"
    if stats.get("max_requests_bound"):
        out += (f"; request limit bound (--max-requests-per-leaf, --budget-tokens): "
                f"{stats['stages'][next(iter(stats['stages']))]['requests']} of {stats['requests_wanted']} requests sent")
    return out


def load_forced_leaves(root: Path, paths: Sequence[str], cwd: Path | None = None) -> list[Leaf]:
    """The leaves named on the command line (a qna.yaml, its folder or its attribution.txt; relative to
    `cwd`), or every leaf of the taxonomy when none is named. Sorted, each once."""
    targets = collect_targets(root, list(paths) if paths else None, cwd or Path.cwd())
    leaves = sorted({t for t in targets if t.endswith("qna.yaml")})
    return [load_leaf(root, t) for t in leaves]


def write_report(output: Path, outcomes: Sequence[LeafOutcome]) -> Path:
    """`<output>/generate-report.json`: every leaf's stats (or error), for scripts and CI."""
    report = {
        o.leaf: (o.result.stats if o.result else {"error": redact(str(o.error))}) | {"output": str(o.output or "")}
        for o in outcomes
    }
    report = dict(redact_obj(report))  # type: ignore[call-overload]
    path = output / "generate-report.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    # Atomic: a full disk leaves the previous report whole, and its error names this file.
    atomic_write_text(path, json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    return path


SETS_DIR = "sets"  # beside the per-leaf files; no leaf folder is named so (they start with a root)


def write_leaf_sets(output: Path, leaves: Sequence[Leaf], outcomes: Sequence[LeafOutcome], settings: GenerationSettings,
                    mix_settings: Any, model_id: str) -> Path | None:
    """`<output>/sets/`: this run's leaves mixed as `diff-generate` mixes them (the training sets,
    `test.jsonl` with the seeds, flagged exactly as shown to the teacher, and the multiple-choice items,
    `validation.jsonl`, and a manifest naming the leaves as changed), so `labtax train --data`, its
    `--select` and `labtax eval --data` read it. None when no leaf produced data."""
    by_path = {leaf.path: leaf for leaf in leaves}
    done = [(by_path[o.leaf], o.result) for o in outcomes if o.result is not None]
    if not done:
        return None
    inputs = [mix.MixLeaf.from_samples(leaf.path, leaf.kind, "", res.samples,
                                       seed_test_samples(leaf, res.shown) + res.held_out) for leaf, res in done]
    sets = mix.build_sets(inputs, mix_settings)
    for line in mix.dedup_warnings(sets.counts):
        note(line, QUIET)  # a warning: shown under --quiet too
    target = output / SETS_DIR
    target.mkdir(parents=True, exist_ok=True)
    entries = [
        LeafEntry(leaf.path, None, leaf.kind, "generated", True, sets.counts.get(leaf.path, {}),
                  int(res.stats.get("prompt_tokens", 0)) + int(res.stats.get("completion_tokens", 0)),
                  float(res.stats.get("seconds", 0.0)), generation=GenerationStats.from_stats(res.stats))
        for leaf, res in done
    ]
    entries += [LeafEntry(o.leaf, None, by_path[o.leaf].kind, "failed", True, {}, 0, 0.0, error=redact(str(o.error)))
                for o in outcomes if o.result is None]
    write_manifest(target, Manifest(
        base=None, head=None, base_ref=None, head_ref=None, teacher_model=model_id,
        settings=settings_record(settings, reader_identity(settings.document_reader)),
        mix=mix_settings.as_dict(), sets=mix.write_sets(target, sets),
        fingerprint=mix.sets_fingerprint([(leaf.path, leaf.kind, "") for leaf, _ in done], mix_settings),
        leaves=tuple(sorted(entries, key=lambda e: e.path)),
        phase1_steps=sets.step_counts or None,  # --phase1 two-step
        run=RunSummary(sum(int(res.stats.get("requests", 0)) for _, res in done), 0, sum(e.tokens for e in entries),
                       sum(e.seconds for e in entries), FaultSummary()),
    ))
    return target
