"""Names and versions of what a `labtax diff-generate` output directory holds."""

from __future__ import annotations

PHASE1 = "phase1_knowledge.jsonl"  # phase 1 training set: knowledge, loss on every token
PHASE2 = "phase2_skills.jsonl"  # phase 2 training set: skills plus a knowledge replay share
TEST = "test.jsonl"  # the gate's held-out items (seed examples, multiple-choice items), one test row per line
VALIDATION = "validation.jsonl"  # held out of training for checkpoint selection; never the gate's items
MANIFEST = "manifest.json"  # written last: which leaves the sets hold, and the sets' checksums
SET_FILES = (PHASE1, PHASE2, TEST)  # always written; VALIDATION only when some leaf has held-out rows
# `--phase1 two-step` (the LAB paper's knowledge tuning in two steps) also writes these two; PHASE1
# stays the whole of phase 1 (export, one-step training of the same data).
PHASE1_STEP1 = "phase1_knowledge_step1.jsonl"  # step 1: the knowledge samples with short answers
PHASE1_STEP2 = "phase1_knowledge_step2.jsonl"  # step 2: long answers, foundational skills, step 1 replayed
STEP_FILES = (PHASE1_STEP1, PHASE1_STEP2)
PHASE_FILES: dict[str, str] = {"knowledge": PHASE1, "skills": PHASE2}

# The one version of the leaf store's form (what `mix.mix.prepare_leaf` stores, in the layout
# `sdg.store` writes). It is part of every content key, so a change regenerates stale data.
STORE_FORMAT = 2  # 2: closed-book knowledge seeds, multiple-choice and validation rows in the test block
LEAF_FILE_FORMAT = f"labtax-leaf/{STORE_FORMAT}"
MANIFEST_FORMAT = "labtax-manifest/1"

_LEAF_SUFFIX = "/qna.yaml"


def leaf_folder(path: str) -> str:
    """A leaf's folder (`compositional_skills/writing/poem`) from its path as labtax writes it in
    samples and the manifest (`.../poem/qna.yaml`): the name reports show a leaf by."""
    return path.removesuffix(_LEAF_SUFFIX)

# A leaf's funnel steps in pipeline order. The manifest stores the funnel as a JSON object written with
# sorted keys, so readers put the steps back in this order (unknown steps after, as found).
FUNNEL_STEPS = ("asked", "parsed", "deduplicated", "supported", "judged", "answered", "scored", "kept")


def funnel_in_order(funnel: dict[str, int]) -> dict[str, int]:
    """`funnel` with its steps in pipeline order."""
    rank = {step: i for i, step in enumerate(FUNNEL_STEPS)}
    return dict(sorted(funnel.items(), key=lambda kv: rank.get(kv[0], len(rank))))
