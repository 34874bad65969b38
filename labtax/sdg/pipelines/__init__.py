"""The LAB generation pipelines, one leaf at a time. The API the incremental engine builds on:

  generate_leaf(leaf, teacher, settings, *, taxonomy_root, progress=None) -> LeafResult   (async)
  estimate_requests(leaf, settings, chunks=None) -> int   the most teacher requests a leaf can cost
  pipeline_files() -> list[Path]                every pipeline and prompt data file (content key)
  pipeline_name(leaf) -> "knowledge" | "grounded_skills" | "freeform_skills"

`LeafResult.samples` are messages-format dicts in a deterministic order; `LeafResult.stats` holds
generated/kept counts, `dropped` per filter, requests, failed requests, tokens, seconds and per-stage
counts. All teacher traffic goes through `teacher.complete(...)`; each request of a leaf goes out as
soon as the reply it depends on has arrived (runner.py, stream.py).
"""

from __future__ import annotations

from pathlib import Path

from labtax.sdg.pipelines import knowledge, skills
from labtax.sdg.pipelines.runner import PIPELINE_DIR, LeafResult, Progress, Runner, load_pipeline
from labtax.sdg.prompts import prompt_files
from labtax.sdg.settings import GenerationSettings
from labtax.taxonomy.model import Leaf
from labtax.teachers.base import Teacher

__all__ = ["LeafResult", "Progress", "estimate_requests", "generate_leaf", "pipeline_files", "pipeline_name"]


def pipeline_name(leaf: Leaf) -> str:
    if leaf.kind == "knowledge":
        return "knowledge"
    return "grounded_skills" if leaf.grounded else "freeform_skills"


def pipeline_files() -> list[Path]:
    return sorted(PIPELINE_DIR.glob("*.yaml")) + prompt_files()


def stage_plan(leaf: Leaf, settings: GenerationSettings, chunks: int | list[str] | None = None) -> dict[str, int]:
    """The most requests each stage of the leaf's pipeline can send (knowledge: for `chunks`, a chunk
    count or the chunks' texts, whose facts size the plan; unknown, the bound of the request limit)."""
    return (knowledge.plan if leaf.kind == "knowledge" else skills.plan)(leaf, settings, chunks)


def estimate_requests(leaf: Leaf, settings: GenerationSettings, chunks: int | list[str] | None = None) -> int:
    """An upper bound on the teacher requests for one leaf (before retries): for a dry-run plan."""
    return sum(stage_plan(leaf, settings, chunks).values())


async def generate_leaf(
    leaf: Leaf,
    teacher: Teacher,
    settings: GenerationSettings,
    *,
    taxonomy_root: Path,
    progress: Progress | None = None,
) -> LeafResult:
    """Run the leaf's pipeline. Raises TeacherError when a whole stage failed, UsageError for bad
    documents; any single bad answer only drops its row (counted in stats["dropped"])."""
    runner = Runner(leaf, teacher, settings, load_pipeline(pipeline_name(leaf)), progress)
    try:
        if leaf.kind == "knowledge":
            samples = await knowledge.run_knowledge(runner, Path(taxonomy_root))
        else:
            samples = await skills.run_skills(runner)
        runner.finish()
    finally:
        runner.close()  # a failed leaf leaves nothing in flight
    return LeafResult(leaf.path, samples, runner.stats(len(samples)), runner.held_out,
                      frozenset(runner.shown))
