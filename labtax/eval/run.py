"""`labtax eval` end to end: select leaves, score base and candidate, optionally judge, gate.

The result is one plain, JSON-ready dict (the stable `--format json` document, see
docs/eval.md); the text and markdown renderers read only that dict, so the three formats
always agree.
"""

from __future__ import annotations

import gc
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labtax.eval.data import Example, LeafMode, Selection, select_leaves
from labtax.eval.gate import Thresholds, decide, nll_change_pct
from labtax.eval.judge import (
    DEFAULT_JUDGE_MAX_TOKENS,
    DEFAULT_MAX_NEW_TOKENS,
    JudgeTally,
    generate_answers,
    judge_answers,
    tally,
)
from labtax.eval.scorer import DEFAULT_BATCH_TOKENS, LeafScore, resolve_device, score_leaves
from labtax.teachers.base import Teacher

SCHEMA = "labtax.eval/1"


@dataclass(frozen=True)
class JudgeOptions:
    endpoints: tuple[str, ...]
    model: str | None = None  # None: the model the first endpoint lists at /v1/models
    api_key_env: str | None = None
    concurrency: int = 8
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS  # bound on each evaluated model's answer
    max_tokens: int = DEFAULT_JUDGE_MAX_TOKENS  # bound on the judge's reply


@dataclass(frozen=True)
class EvalOptions:
    base: str
    candidate: str
    data_dir: Path
    leaves: LeafMode = "changed"
    sample_unchanged: int | None = 5
    seed: int = 0
    thresholds: Thresholds = field(default_factory=Thresholds)
    judge: JudgeOptions | None = None
    batch_tokens: int = DEFAULT_BATCH_TOKENS
    device: str = "auto"  # "auto": a GPU when torch sees one, else the CPU

    @classmethod
    def from_options(cls, params: dict[str, Any]) -> EvalOptions:
        """The options from `labtax eval`'s parsed command line (the judge only with an endpoint)."""
        judge = None
        if params["judge_endpoints"]:
            judge = JudgeOptions(endpoints=tuple(params["judge_endpoints"]), model=params["judge_model"],
                                 api_key_env=params["judge_api_key_env"],
                                 concurrency=params["judge_concurrency"], max_new_tokens=params["max_new_tokens"])
        return cls(
            base=params["base"], candidate=params["candidate"], data_dir=Path(params["data_dir"]),
            leaves="all" if params["leaves"] == "all" else "changed",
            sample_unchanged=params["sample_unchanged"], seed=params["seed"],
            thresholds=Thresholds(fail_on_regression_pct=params["regression_pct"],
                                  min_improvement_pct=params["improvement_pct"]),
            judge=judge, batch_tokens=params["batch_tokens"], device=params["device"],
        )


@dataclass
class _ModelResult:
    scores: dict[str, LeafScore]
    answers: list[str] | None = None  # greedy answers, in `_flat(selection)` order (judge only)
    judged: dict[str, JudgeTally] | None = None


def _check_model_name(name: str) -> None:
    """Fail fast (exit 2) on a bad model name, before minutes of scoring the other model."""
    from labtax.models import load_tokenizer

    load_tokenizer(name)


def _flat(selection: Selection) -> list[tuple[str, Example]]:
    return [(leaf, ex) for leaf, exs in selection.examples.items() for ex in exs]


def _evaluate_model(
    name: str, selection: Selection, options: EvalOptions, log: Callable[[str], None]
) -> _ModelResult:
    from transformers.utils import logging as hf_logging

    from labtax.models import load_model, load_tokenizer

    hf_logging.disable_progress_bar()  # stderr carries our progress lines only
    tokenizer = load_tokenizer(name)
    model = load_model(name)  # `tiny` is seed 0, as in `labtax train`
    model.to(resolve_device(options.device))  # type: ignore[arg-type]  # (transformers' stub wants a model)
    examples = {leaf: exs for leaf, exs in selection.examples.items() if exs}
    count = sum(len(v) for v in examples.values())
    log(f"scoring {name}: {count} examples from {len(examples)} leaves")
    result = _ModelResult(score_leaves(model, tokenizer, examples, batch_tokens=options.batch_tokens))
    if options.judge is not None:
        flat = _flat(selection)
        log(f"generating {len(flat)} answers with {name} (greedy, <= {options.judge.max_new_tokens} tokens)")
        result.answers = generate_answers(
            model, tokenizer, [ex for _, ex in flat], max_new_tokens=options.judge.max_new_tokens
        )
    del model  # one model in memory at a time
    gc.collect()
    _empty_cuda_cache()
    return result


def _empty_cuda_cache() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _judge(
    teacher: Teacher, selection: Selection, options: EvalOptions, results: Sequence[_ModelResult],
    log: Callable[[str], None],
) -> None:
    """Rate every model's answers in one batch (one event loop, one connection pool)."""
    assert options.judge is not None
    flat = _flat(selection)
    examples = [ex for _, ex in flat] * len(results)
    answers = [a for r in results for a in (r.answers or [])]
    log(f"judging {len(answers)} answers with {teacher.model_id}")
    ratings = judge_answers(teacher, examples, answers, max_tokens=options.judge.max_tokens)
    for k, result in enumerate(results):
        by_leaf: dict[str, list[float | str]] = {}
        for (leaf, _), rating in zip(flat, ratings[k * len(flat): (k + 1) * len(flat)]):
            by_leaf.setdefault(leaf, []).append(rating)
        result.judged = {leaf: tally(r) for leaf, r in by_leaf.items()}


def default_teacher_factory(judge: JudgeOptions) -> Callable[[], Teacher]:
    def make() -> Teacher:
        from labtax.teachers import make_teacher

        return make_teacher(
            "openai", endpoints=list(judge.endpoints), model=judge.model,
            api_key_env=judge.api_key_env, concurrency=judge.concurrency,
        )

    return make


def run_eval(
    options: EvalOptions,
    *,
    make_teacher: Callable[[], Teacher] | None = None,
    log: Callable[[str], None] = lambda _msg: None,
) -> dict[str, Any]:
    """Evaluate and return the report dict (see `build_report`)."""
    selection = select_leaves(
        options.data_dir, mode=options.leaves, sample_unchanged=options.sample_unchanged, seed=options.seed
    )
    _check_model_name(options.base)
    _check_model_name(options.candidate)
    teacher: Teacher | None = None
    if options.judge is not None:
        # Built before scoring: a wrong endpoint or a missing API key fails in a second, not after.
        teacher = (make_teacher or default_teacher_factory(options.judge))()
    base = _evaluate_model(options.base, selection, options, log)
    if options.candidate == options.base:
        # The same model twice (a dry run of the gate): scoring is deterministic, so reuse it.
        candidate = _ModelResult(dict(base.scores), list(base.answers) if base.answers is not None else None)
    else:
        candidate = _evaluate_model(options.candidate, selection, options, log)
    if teacher is not None:
        _judge(teacher, selection, options, [base, candidate], log)
    return build_report(options, selection, base, candidate, judge_model=teacher.model_id if teacher else None)


def _finite(value: float | None) -> float | None:
    """JSON has no infinities or NaN: a non-finite number is written as null."""
    return value if value is not None and math.isfinite(value) else None


def _judge_row(base: JudgeTally | None, cand: JudgeTally | None) -> dict[str, Any] | None:
    if base is None and cand is None:
        return None
    b = base.mean if base else None
    c = cand.mean if cand else None
    return {
        "base": b,
        "candidate": c,
        "change": (c - b) if b is not None and c is not None else None,
        "base_rated": len(base.scores) if base else 0,
        "candidate_rated": len(cand.scores) if cand else 0,
        "malformed": (base.malformed if base else 0) + (cand.malformed if cand else 0),
        "failed": (base.failed if base else 0) + (cand.failed if cand else 0),
    }


def build_report(
    options: EvalOptions,
    selection: Selection,
    base: _ModelResult,
    candidate: _ModelResult,
    *,
    judge_model: str | None = None,
) -> dict[str, Any]:
    from labtax.models import model_id

    rows: list[dict[str, Any]] = []
    for chosen in selection.leaves:
        b = base.scores.get(chosen.leaf)
        c = candidate.scores.get(chosen.leaf)
        has_data = b is not None and c is not None and b.tokens > 0 and c.tokens > 0
        change = nll_change_pct(b.mean_logprob, c.mean_logprob) if has_data and b and c else None
        status, passed = decide(chosen.changed, change, options.thresholds)
        judged = None
        if base.judged is not None or candidate.judged is not None:
            judged = _judge_row(
                (base.judged or {}).get(chosen.leaf), (candidate.judged or {}).get(chosen.leaf)
            )
        rows.append({
            "leaf": chosen.leaf,
            "changed": chosen.changed,
            "examples": len(selection.examples.get(chosen.leaf, [])),
            "tokens": c.tokens if c else 0,
            "base": _finite(b.mean_logprob) if has_data and b else None,
            "candidate": _finite(c.mean_logprob) if has_data and c else None,
            "change_pct": _finite(change),
            "status": status,
            "passed": passed,
            "judge": judged,
        })
    # Per-token scores of two models compare fairly only when both count the same tokens.
    same_tokens = all(
        base.scores[leaf].tokens == candidate.scores[leaf].tokens
        for leaf in base.scores.keys() & candidate.scores.keys()
    )
    failed = [r for r in rows if not r["passed"]]
    statuses = [r["status"] for r in rows]
    judge_summary = None
    if options.judge is not None:
        judged_rows = [r["judge"] for r in rows if r["judge"]]
        judge_summary = {
            "endpoints": list(options.judge.endpoints),
            "model": judge_model or options.judge.model or "",
            "max_new_tokens": options.judge.max_new_tokens,
            "requests": 2 * sum(r["examples"] for r in rows if r["status"] != "no_data"),
            "malformed": sum(j["malformed"] for j in judged_rows),
            "failed": sum(j["failed"] for j in judged_rows),
        }
    return {
        "schema": SCHEMA,
        "verdict": "fail" if failed else "pass",
        "exit_code": 1 if failed else 0,
        "base": {"model": options.base, "id": model_id(options.base)},
        "candidate": {"model": options.candidate, "id": model_id(options.candidate)},
        "data": str(options.data_dir),
        "metric": {
            "score": "mean per-token log-likelihood of the reference answer, nats (<= 0, higher is better)",
            "change_pct": "100 * (NLL_candidate - NLL_base) / NLL_base, NLL = -score (negative is better)",
        },
        "selection": {
            "leaves": selection.mode,
            "sample_unchanged": selection.sample_unchanged,
            "seed": selection.seed,
            "manifest": selection.manifest,
        },
        "thresholds": {
            "fail_on_regression_pct": options.thresholds.fail_on_regression_pct,
            "min_improvement_pct": options.thresholds.min_improvement_pct,
        },
        "judge": judge_summary,
        "same_tokenization": same_tokens,
        "leaves": rows,
        "summary": {
            "leaves": len(rows),
            "changed": sum(1 for r in rows if r["changed"]),
            "unchanged": sum(1 for r in rows if not r["changed"]),
            "examples": sum(r["examples"] for r in rows),
            "failed": len(failed),
            **{s: statuses.count(s) for s in ("improved", "not_improved", "stable", "regressed", "no_data")},
        },
    }


def failed_leaves(report: dict[str, Any]) -> Sequence[str]:
    return [r["leaf"] for r in report["leaves"] if not r["passed"]]
