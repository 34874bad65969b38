"""Generation settings: every knob that changes what the pipelines ask the teacher or keep.

The dataclass is frozen and `as_dict()` is canonical (sorted keys, plain types), so the incremental
engine can hash it into a leaf's content key: a changed knob means regenerated data.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

# --budget-tokens unset: what a leaf's first stage may write, by teacher. The embedded teacher writes
# ~10-25 tokens/s on a 2-core CPU (batched), so a leaf's Q&A at this size takes minutes, not days; a
# served teacher gets no budget (the LAB recipe's volumes, bounded by --max-requests-per-leaf).
CPU_BUDGET_TOKENS = 8192
SERVED_BUDGET_TOKENS = 0


def budget_policy(teacher: str, budget: int | None) -> int:
    """--budget-tokens: as given; unset, CPU-sized for the in-process embedded teacher, none otherwise."""
    if budget is not None:
        return budget
    return CPU_BUDGET_TOKENS if teacher == "embedded" else SERVED_BUDGET_TOKENS

# The seed-example count `samples_per_leaf` is stated for (a taxonomy's minimum per leaf).
SEED_BASE = 5


def judges_policy(teacher: str, judges: str | None) -> str:
    """--judges: enforce unless told. Never by teacher name: a judge that cannot tell a leaf's seeds
    from broken copies is found by calibration (pipelines/calibrate.py) and leaves its rows unjudged."""
    return judges or "enforce"


def unreadable_policy(teacher: str, keep: bool | None) -> str:
    """--keep/--drop-unreadable-verdicts, unset: drop (verdicts read from probabilities are always
    readable; a text verdict that cannot be read says nothing)."""
    return "keep" if keep else "drop"


@dataclass(frozen=True)
class GenerationSettings:
    # The most samples kept for a leaf with SEED_BASE seed examples, scaled with the leaf's own count:
    # a skills leaf keeps ceil(samples_per_leaf * seeds / SEED_BASE); a knowledge leaf, whose volume
    # follows its documents, ceil(samples_per_leaf * seed examples * chunks / SEED_BASE). 150 is the
    # reference recipe's ~30 samples per seed example.
    samples_per_leaf: int = 150
    seed: int = 42  # base of every request seed (derived with the leaf path, stage and index)
    temperature: float = 0.7  # for the creative stages (contexts, questions, answers, knowledge Q&A)
    judge_temperature: float = 0.0  # judges and scorers answer greedily: the verdicts are stable
    top_p: float = 1.0
    max_tokens: int = 512  # per request
    score_threshold: int = 2  # pairs scored below this (on 1-3) are dropped
    chunk_tokens: int = 400  # knowledge: document chunk budget, in the teacher's tokens
    questions_per_request: int = 10  # skills: questions asked for per request (one seed shown)
    # knowledge: the most question-answer pairs one request asks for (facts x wordings: 3 facts, 2
    # wordings each); a chunk with more facts gets more requests (pipelines/knowledge_plan.py)
    qa_per_request: int = 6
    # knowledge: differently worded question-answer pairs asked for per fact: a fact is recalled from a
    # new wording only when training showed it in several (the mixer holds one out for closed-book tests)
    wordings_per_fact: int = 2
    # The most completion tokens a leaf's first stage (knowledge Q&A, skills questions/contexts) may
    # cost, counted at max_tokens per request (0: no budget, only max_requests_per_leaf). A knowledge
    # leaf spends it on every chunk and fact first, then on more wordings.
    budget_tokens: int = 0
    icl_examples: int = 3  # grounded skills: seed contexts shown per new-context request
    # The most teacher requests of a leaf's first stage (knowledge Q&A, skills questions/contexts);
    # when the leaf's volume asks for more, requests are spread over every chunk and seed and the
    # leaf's stats say the bound bound (`max_requests_bound`).
    max_requests_per_leaf: int = 1000
    overgenerate: float = 2.0  # ask for this many times samples_per_leaf candidates (filters drop some)
    dedup_threshold: float = 0.8  # word-3-shingle Jaccard at or above which two texts are near-duplicates
    # What an unreadable judge/score answer means: "drop" (default: the row is dropped and counted as
    # <stage>_unparsed) or "keep" (the row passes that filter, its score is recorded as null and the
    # stage counts it as unreadable_kept). "keep" is for tiny local teachers such as the embedded 135M
    # model, which writes good-enough questions and answers but rarely follows a grading format.
    unreadable_verdicts: str = "drop"
    # "enforce" (default): a judge's "no" or a low score drops the row, as in the LAB recipe.
    # "advisory": every verdict is still asked for and recorded in the sample's metadata.scores, but
    # none drops a row; each stage counts the rows it would have dropped (advisory_kept).
    judges: str = "enforce"
    # A judge read from probabilities is calibrated per leaf on its seeds vs broken copies of them; one
    # whose AUC there is below this cannot tell them apart and is reported unusable (rows unjudged).
    judge_min_auc: float = 0.75
    calibration_examples: int = 6  # per side (seeds, broken copies) and judge; a CPU teacher: fewer
    # Held out, never trained on: closed-book multiple-choice items per knowledge leaf (the gate's test
    # split; 0: none), asked for this many per request; and generated rows per leaf kept past the
    # quota as the validation split that checkpoint selection uses (distinct from the gate's items).
    mc_per_leaf: int = 10
    mc_per_request: int = 3
    validation_per_leaf: int = 2
    batch_requests: int = 256  # a stage's progress line every this many requests (requests stream)
    # Knowledge documents: "auto" (docling when installed, else the builtin readers), "docling" or
    # "builtin" (sdg/readers.py). Not in the content key: the documents' text, which it makes, is.
    document_reader: str = "auto"

    def __post_init__(self) -> None:
        counts = ("samples_per_leaf", "questions_per_request", "qa_per_request", "icl_examples", "max_tokens",
                  "batch_requests", "max_requests_per_leaf", "mc_per_request", "wordings_per_fact")
        rules: list[tuple[bool, str]] = [
            *((getattr(self, name) >= 1, f"{name} must be at least 1") for name in counts),
            (1 <= self.score_threshold <= 3, "score_threshold must be 1, 2 or 3"),
            (self.chunk_tokens >= 16, "chunk_tokens must be at least 16"),
            (0.0 < self.dedup_threshold <= 1.0, "dedup_threshold must be in (0, 1]"),
            (self.budget_tokens >= 0, "budget_tokens must be at least 0"),
            (self.mc_per_leaf >= 0 and self.validation_per_leaf >= 0,
             "mc_per_leaf and validation_per_leaf must be at least 0"),
            (self.unreadable_verdicts in ("drop", "keep"), "unreadable_verdicts must be 'drop' or 'keep'"),
            (self.judges in ("enforce", "advisory"), "judges must be 'enforce' or 'advisory'"),
            (self.calibration_examples >= 2, "calibration_examples must be at least 2"),
            (0.5 <= self.judge_min_auc <= 1.0, "judge_min_auc must be in [0.5, 1]"),
            (self.overgenerate >= 1.0, "overgenerate must be at least 1.0"),
            (self.document_reader in ("auto", "docling", "builtin"), "document_reader must be auto, docling or builtin"),
        ]
        for ok, message in rules:
            if not ok:
                raise ValueError(message)

    def as_dict(self) -> dict[str, Any]:
        """Plain, sorted, JSON-ready: what goes into the content key. `batch_requests` does not change
        the data (only how it is sent), so it is left out; so is `document_reader` (the text it reads
        is in the key)."""
        data = asdict(self)
        data.pop("batch_requests")
        data.pop("document_reader")
        return dict(sorted(data.items()))

    def request_limit(self) -> int:
        """The most first-stage requests of a leaf: max_requests_per_leaf, and what budget_tokens buys
        at max_tokens a request (at least one)."""
        if self.budget_tokens:
            return max(1, min(self.max_requests_per_leaf, self.budget_tokens // self.max_tokens))
        return self.max_requests_per_leaf

    def with_(self, **changes: Any) -> GenerationSettings:
        return replace(self, **changes)

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]


def settings_record(settings: GenerationSettings, document_reader: str) -> dict[str, Any]:
    """The settings as a run records them (the manifest, the ledger, diff-generate's `--format json`):
    what the content keys hash, and the identity of the reader that read the documents
    (`readers.reader_identity`: "builtin" or docling's version), which is not in the key."""
    return {**settings.as_dict(), "document_reader": document_reader}
