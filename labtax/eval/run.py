"""`labtax eval` end to end: select leaves, score base and candidate, optionally judge, gate.

Per model (one in memory at a time): the per-item log-likelihood of every reference answer, the
option it prefers on every multiple-choice item (closed book), and, when a judge is configured, its
greedy answers to the changed skill leaves' questions. Then the judge compares the two models'
answers pairwise, and `report.build_report` turns it all into the typed `EvalReport` (see
docs/eval.md); the renderers read only that report, so every format agrees.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labtax import compute
from labtax.eval.closed_book import (
    CLOSED_BOOK_MAX_NEW_TOKENS,
    closed_book_examples,
    judge_answers,
    score_leaf,
)
from labtax.eval.data import Example, LeafMode, Selection, select_leaves
from labtax.eval.encoding import Encoded, encode_all, tokenizer_fingerprint
from labtax.eval.gate import Thresholds
from labtax.eval.judge import (
    DEFAULT_JUDGE_MAX_TOKENS,
    DEFAULT_MAX_NEW_TOKENS,
    PairTally,
    generate_answers,
    judge_pairs,
    tally,
)
from labtax.eval.noise import NoiseFloor, check_same_base
from labtax.eval.report import SCHEMA, EvalReport, ModelResult, build_report
from labtax.eval.scorer import (
    DEFAULT_BATCH_TOKENS,
    LeafScore,
    choice_examples,
    max_len_of,
    pad_token_id,
    pick_choice,
    resolve_device,
    score_encoded,
)
from labtax.models import TINY_SEED, check_weights, choose_threads, load_tokenizer, model_id
from labtax.teachers import make_teacher
from labtax.teachers.base import Teacher

__all__ = ["SCHEMA", "EvalOptions", "EvalReport", "JudgeOptions", "build_report", "run_eval"]
_ModelResult = ModelResult  # the name the report tests build by hand


@dataclass(frozen=True)
class JudgeOptions:
    endpoints: tuple[str, ...] = ()
    model: str | None = None  # None: the model the first endpoint lists (openai), `embedded` (embedded)
    api_key_env: str | None = None
    concurrency: int = 8
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS  # bound on each evaluated model's answer
    max_tokens: int = DEFAULT_JUDGE_MAX_TOKENS  # bound on the judge's reply
    teacher: str = "openai"  # "openai" (the endpoints) or "embedded" (in-process)


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
    tiny_seed: int = TINY_SEED  # the seed `tiny` is built from: labtax train's default
    closed_book_max_new_tokens: int = CLOSED_BOOK_MAX_NEW_TOKENS  # bound on each closed-book answer
    noise_floor: NoiseFloor | None = None  # the base against its retrain with another seed (eval/noise.py)


def _check_model_name(name: str) -> None:
    """Fail fast (exit 2) on a bad model name, unusable weights (a truncated safetensors file, a
    pickle-only `.bin`) or a chat template the sandbox refuses, before minutes of scoring the other
    model."""
    load_tokenizer(name)
    check_weights(name)


def judged_leaves(selection: Selection) -> dict[str, list[Example]]:
    """The questions the judge sees: the reference items of the changed skill leaves."""
    return {
        chosen.leaf: [ex for ex in selection.examples.get(chosen.leaf, []) if not ex.is_choice]
        for chosen in selection.leaves
        if chosen.changed and not chosen.leaf.startswith("knowledge/")
    }


def recall_leaves(selection: Selection) -> dict[str, list[Example]]:
    """The closed-book items of every selected leaf that has them (changed or a control)."""
    out = {chosen.leaf: closed_book_examples(selection.examples.get(chosen.leaf, [])) for chosen in selection.leaves}
    return {leaf: exs for leaf, exs in out.items() if exs}


def score_recall(selection: Selection, base: ModelResult, candidate: ModelResult,
                 make_judge: Callable[[], Teacher] | None,
                 log: Callable[[str], None]) -> dict[str, tuple[list[bool | None], ...]]:
    """Per leaf (base right?, candidate right?) per closed-book item, by the key facts; where those
    cannot decide (free text), by a judge made with `make_judge` (only then) when there is one, else
    None (not scored)."""
    out: dict[str, tuple[list[bool | None], ...]] = {}
    ask: list[tuple[str, int, int, Example, str]] = []  # (leaf, model, item, example, answer)
    for leaf, exs in recall_leaves(selection).items():
        per_model = []
        for m, result in enumerate((base, candidate)):
            answers = (result.recall_answers or {}).get(leaf, [])
            got: list[bool | None] = [r.correct for r in score_leaf(exs, answers)]
            ask += [(leaf, m, i, exs[i], answers[i]) for i, ok in enumerate(got) if ok is None]
            per_model.append(got)
        out[leaf] = tuple(per_model)
    if ask and make_judge is not None:
        teacher = make_judge()
        log(f"judging {len(ask)} closed-book answers without key facts with {teacher.model_id}")
        for (leaf, m, i, _, _), ok in zip(ask, judge_answers(teacher, [(ex, a) for *_, ex, a in ask])):
            out[leaf][m][i] = ok
    return out


def load_for_eval(name: str, options: EvalOptions) -> Any:
    """The model a name means here: `tiny` is built from the seed `labtax train` starts from."""
    # The teacher's and chat's choice (labtax/compute.py): the 1.5B on an AVX2 CPU keeps bf16 weights
    # and computes in fp32 (its fp32 weights exceed the memory budget); a 135M student stays fp32.
    # The measurement is cached machine-wide (it is keyed by the MLP shape), never in a checkpoint.
    device = resolve_device(options.device)
    threads = choose_threads()
    choice = compute.choose_for(name, device, threads, cache=compute.choice_file(None))
    return compute.load(name, choice, threads=threads, device=device, seed=options.tiny_seed)


def _evaluate_model(name: str, selection: Selection, options: EvalOptions, log: Callable[[str], None],
                    encodings: dict[tuple[str, int], list[Encoded]]) -> ModelResult:
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # stderr carries our progress lines only
    tokenizer = load_tokenizer(name)
    model = load_for_eval(name, options)
    refs = [(leaf, ex) for leaf, exs in selection.examples.items() for ex in exs if not ex.is_choice]
    mcs = [(leaf, ex) for leaf, exs in selection.examples.items() for ex in exs if ex.is_choice]
    options_flat = [opt for _, ex in mcs for opt in choice_examples(ex)]
    log(f"scoring {name}: {len(refs)} reference answers and {len(mcs)} multiple-choice items "
        f"({len(options_flat)} options) from {len(selection.examples)} leaves")
    # One batched pass over answers and options together: batches fill up across both. The token ids
    # are the same for both models when their tokenizers are: encoded once.
    examples, fingerprint = [ex for _, ex in refs] + options_flat, tokenizer_fingerprint(tokenizer)
    key = (fingerprint, max_len_of(model)) if fingerprint else None
    items = encodings.get(key) if key else None
    if items is None:
        items = encode_all(tokenizer, examples, max_len=max_len_of(model))
        if key:
            encodings[key] = items
    scored = score_encoded(model, items, pad_id=pad_token_id(tokenizer), batch_tokens=options.batch_tokens)
    result = ModelResult(scores={}, items={}, picks={})
    assert result.items is not None and result.picks is not None
    for (leaf, _), score in zip(refs, scored):
        result.items.setdefault(leaf, []).append(score)
    pos = len(refs)
    for leaf, ex in mcs:
        result.picks.setdefault(leaf, []).append(pick_choice(scored[pos: pos + len(ex.choices)]))
        pos += len(ex.choices)
    for leaf, exs in selection.examples.items():
        got = result.items.get(leaf, [])
        if any(not ex.is_choice for ex in exs):
            result.scores[leaf] = LeafScore(leaf, len(got), sum(s.tokens for s in got), sum(s.logprob for s in got))
    recall = recall_leaves(selection)
    if recall:
        flat = [ex for exs in recall.values() for ex in exs]
        log(f"answering {len(flat)} closed-book questions with {name} (greedy, <= "
            f"{options.closed_book_max_new_tokens} tokens)")
        said = generate_answers(model, tokenizer, flat, max_new_tokens=options.closed_book_max_new_tokens)
        result.recall_answers, pos = {}, 0
        for leaf, exs in recall.items():
            result.recall_answers[leaf] = said[pos: pos + len(exs)]
            pos += len(exs)
    if options.judge is not None:
        questions = [ex for exs in judged_leaves(selection).values() for ex in exs]
        log(f"answering {len(questions)} questions with {name} (greedy, <= {options.judge.max_new_tokens} tokens)")
        answers = generate_answers(model, tokenizer, questions, max_new_tokens=options.judge.max_new_tokens)
        result.answers = {}
        pos = 0
        for leaf, exs in judged_leaves(selection).items():
            result.answers[leaf] = answers[pos: pos + len(exs)]
            pos += len(exs)
    del model  # one model in memory at a time
    gc.collect()
    _empty_cuda_cache()
    return result


def _empty_cuda_cache() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _judge(teacher: Teacher, selection: Selection, options: EvalOptions, base: ModelResult,
           candidate: ModelResult, log: Callable[[str], None]) -> dict[str, PairTally]:
    """Every changed skill leaf's questions, both orders, in one batch (one event loop)."""
    assert options.judge is not None
    leaves = judged_leaves(selection)
    flat = [(leaf, i, ex) for leaf, exs in leaves.items() for i, ex in enumerate(exs)]
    b_ans = [(base.answers or {})[leaf][i] for leaf, i, _ in flat]
    c_ans = [(candidate.answers or {})[leaf][i] for leaf, i, _ in flat]
    log(f"judging {len(flat)} answer pairs in both orders with {teacher.model_id}")
    outcomes = judge_pairs(teacher, [ex for _, _, ex in flat], b_ans, c_ans, max_tokens=options.judge.max_tokens)
    by_leaf: dict[str, list[Any]] = {leaf: [] for leaf in leaves}
    for (leaf, _, _), outcome in zip(flat, outcomes):
        by_leaf[leaf].append(outcome)
    return {leaf: tally(results) for leaf, results in by_leaf.items()}


def default_teacher_factory(judge: JudgeOptions) -> Callable[[], Teacher]:
    def make() -> Teacher:
        if judge.teacher == "embedded":
            return make_teacher("embedded", model=judge.model or "embedded")
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
) -> EvalReport:
    """Evaluate and return the report (labtax/eval/record.py; `.to_json()` is the --format json document)."""
    selection = select_leaves(
        options.data_dir, mode=options.leaves, sample_unchanged=options.sample_unchanged, seed=options.seed
    )
    _check_model_name(options.base)
    _check_model_name(options.candidate)
    if options.noise_floor is not None:  # before minutes of scoring: a floor of another base is a usage error
        check_same_base(options.noise_floor, model_id(options.base))
    teacher: Teacher | None = None
    if options.judge is not None:
        # Built before scoring: a wrong endpoint or a missing API key fails in a second, not after.
        teacher = (make_teacher or default_teacher_factory(options.judge))()
    encodings: dict[tuple[str, int], list[Encoded]] = {}
    base = _evaluate_model(options.base, selection, options, log, encodings)
    if options.candidate == options.base:
        # The same model twice (a dry run of the gate): scoring is deterministic, so reuse it.
        candidate = ModelResult(dict(base.scores), base.items, base.picks, base.answers, base.recall_answers)
    else:
        candidate = _evaluate_model(options.candidate, selection, options, log, encodings)
    # The closed-book judge closes its teacher (one event loop per client): the pairwise judge has its own.
    judge_factory = (make_teacher or default_teacher_factory(options.judge)) if options.judge is not None else None
    recall = score_recall(selection, base, candidate, judge_factory, log)
    pairs = _judge(teacher, selection, options, base, candidate, log) if teacher is not None else None
    return build_report(options, selection, base, candidate, judge_model=teacher.model_id if teacher else None,
                        pairs=pairs, recall=recall)
