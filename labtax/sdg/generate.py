"""`labtax generate`: the named leaves through the diff-generate engine as a forced plan, plus one
JSONL of pipeline records per leaf and a report.

Kept out of cli.py so the command stays a thin shell: this module loads the leaves, plans every one
for generation (planning.plan_forced), runs the plan through running.execute (the leaf store, the
ledger, the sets and their manifest, as diff-generate writes them), writes each leaf's file
atomically as soon as it is done, and returns the per-leaf outcomes for the report.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labtax.data import Manifest
from labtax.errors import EXIT_OK, LabtaxError
from labtax.mix import mix
from labtax.progress import QUIET, note
from labtax.sdg.ledger import Ledger
from labtax.sdg.output_dir import LEAVES_DIR, LEDGER_FILE, output_lock, quarantine_manifest
from labtax.sdg.pipelines import LeafResult
from labtax.sdg.planning import LeafPlan, plan_forced
from labtax.sdg.running import LeafListener, StageFn, execute, funnel_text, ledger_failures
from labtax.sdg.settings import GenerationSettings
from labtax.sdg.store import LeafStore
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
        self.names = {leaf.path: leaf.leaf_dir for leaf in leaves}
        if self.enabled:
            from tqdm import tqdm

            for i, leaf in enumerate(leaves):
                self.bars[leaf.path] = tqdm(total=0, desc=leaf.leaf_dir, position=i, leave=False,
                                            file=sys.stderr, unit="req")

    def callback(self, path: str) -> StageFn | None:
        """A leaf's stage progress (its path as planned): its bar follows the stage and its requests."""
        if not self.enabled:
            return None
        bar, name = self.bars[path], self.names[path]

        def progress(stage: str, done: int, total: int) -> None:
            bar.set_description(f"{name} [{stage}]", refresh=False)
            bar.total = total
            bar.n = done
            bar.refresh()

        return progress

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()


@dataclass(frozen=True)
class GenerateRun:
    """What one `labtax generate` did: each named leaf's outcome, in the leaves' order, and the
    manifest of the sets it mixed into `<output>/sets/`."""

    outcomes: tuple[LeafOutcome, ...]
    manifest: Manifest | None

    @property
    def exit_code(self) -> int:
        """The worst failed leaf's code (a teacher failure, a document that cannot be read), else 0."""
        return max((o.error.exit_code for o in self.outcomes if o.error is not None), default=EXIT_OK)


def generate_leaves(
    leaves: Sequence[Leaf],
    teacher: Teacher,
    settings: GenerationSettings,
    *,
    taxonomy_root: Path,
    output: Path,
    mix_settings: mix.MixSettings | None = None,
) -> GenerateRun:
    """`labtax generate`: the named leaves as a forced plan (planning.plan_forced: every one generated,
    no git) through the engine `diff-generate` runs (sdg/running.py execute), in `<output>/sets/` as in
    a diff-generate output directory: the leaf store `leaves/`, the ledger `ledger.sqlite` (a rerun
    replays every answered request: a killed run resumes, a finished one sends none), the sets and
    their manifest; each leaf's pipeline records in `<output>/<leaf folder>.jsonl` as soon as it is
    done. A teacher failure fails only its own leaf."""
    mix_settings = mix_settings or mix.MixSettings(seed=settings.seed)
    outcomes = {leaf.path: LeafOutcome(leaf.path) for leaf in leaves}

    def finished(lp: LeafPlan, result: LeafResult | None, error: LabtaxError | None) -> None:
        outcome = outcomes[lp.path]
        if result is not None and lp.leaf is not None:
            outcome.result, outcome.output = result, output_path(output, lp.leaf)
            write_jsonl(outcome.output, result.samples)
        outcome.error = error

    engine = output / SETS_DIR  # a diff-generate output directory: store, ledger, sets, manifest
    bars = _Bars(leaves)
    try:
        with ledger_failures(engine), output_lock(engine), Ledger(engine / LEDGER_FILE) as ledger:
            quarantine_manifest(engine)
            plan, unreadable = plan_forced(taxonomy_root, leaves, model_id=teacher.model_id, settings=settings,
                                           mix_settings=mix_settings, ledger=ledger)
            for path, exc in unreadable.items():
                outcomes[path].error = exc
            run = execute(plan, engine, taxonomy=taxonomy_root, teacher=teacher, settings=settings,
                          mix_settings=mix_settings, ledger=ledger, store=LeafStore(engine / LEAVES_DIR),
                          command="generate", listener=LeafListener(bars.callback, finished))
    finally:
        bars.close()
    for line in mix.dedup_warnings({e.path: e.counts for e in (run.manifest.leaves if run.manifest else ())}):
        note(line, QUIET)  # a warning: shown under --quiet too
    return GenerateRun(tuple(outcomes.values()), run.manifest)


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
