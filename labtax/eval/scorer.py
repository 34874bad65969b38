"""Batched per-token log-likelihood of reference answers under a causal LM.

For each example the prompt is the chat template of the turns before the answer *with* the generation
prompt, and the scored completion is the reference answer plus the template's end-of-turn marker (what
the model must emit to stop), tokenized separately from the prompt exactly as the model would produce
them after the prompt. Only completion tokens are scored.

Batching: the examples' token sequences are laid into a trie, so a prefix several of them share (a
multiple-choice item's prompt under each of its options, the template's system header) runs through
the transformer once (`packing`: packed rows with an ancestor mask); architectures that cannot take
such a mask get one right-padded row per example instead. Either way rows are sorted by length and
batched under a token budget, padding never changes the real positions' results, and the output head
(the costly part for a small model with a 49k vocabulary) runs only on the positions that predict
completion tokens, never on prompt or padding positions.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labtax.compute import compute_dtype
from labtax.data import TEST, VALIDATION
from labtax.errors import UsageError
from labtax.eval.data import Example, read_test_set
from labtax.eval.encoding import DEFAULT_MAX_LEN, Encoded, encode_all
from labtax.eval.packing import DEFAULT_ROW_TOKENS, batch_tensors, pack_rows, packable
from labtax.models import load_model, load_tokenizer
from labtax.progress import bar

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

DEFAULT_BATCH_TOKENS = 8192  # padded tokens per forward pass
DEFAULT_MAX_BATCH = 64  # examples per forward pass
HEAD_CHUNK = 32  # output-head rows at a time: a (rows x vocab) fp32 buffer of ~6 MB, which stays in
# cache between the head's matmul and the log-softmax reading it back (measured with the tiny model's
# 64-wide head, 49k vocabulary, one thread: 32 rows 0.95 s, 128 rows 1.66 s per 4,096 positions)


@dataclass(frozen=True)
class ExampleScore:
    logprob: float  # sum of the log-probabilities (nats) of the scored tokens
    tokens: int  # number of scored tokens


@dataclass(frozen=True)
class LeafScore:
    """One leaf's score: the token-weighted mean log-likelihood over all its examples."""

    leaf: str
    examples: int
    tokens: int
    logprob: float  # sum over all scored tokens of all examples

    @property
    def mean_logprob(self) -> float:
        """Mean per-token log-likelihood (nats, <= 0; higher is better)."""
        return self.logprob / self.tokens if self.tokens else float("nan")

    @property
    def nll(self) -> float:
        """Mean per-token negative log-likelihood (nats, >= 0; lower is better)."""
        return -self.mean_logprob


def _batches(lengths: Sequence[int], batch_tokens: int, max_batch: int) -> Iterator[list[int]]:
    """Indices grouped longest first so each batch holds rows of similar length (little padding)."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batch: list[int] = []
    width = 0
    for i in order:
        new_width = max(width, lengths[i])
        if batch and (new_width * (len(batch) + 1) > batch_tokens or len(batch) >= max_batch):
            yield batch
            batch, new_width = [], lengths[i]
        batch.append(i)
        width = new_width
    if batch:
        yield batch


def _head_parts(model: PreTrainedModel) -> tuple[Any, Any] | None:
    """(decoder body, output head) when logits are exactly head(body(x)), else None.

    Models that scale or soft-cap their logits after the head (Gemma 2, Cohere, Granite) take the
    plain full-logits path instead.
    """
    config = model.config
    for attr in ("final_logit_softcapping", "logit_scale", "logits_scaling"):
        if getattr(config, attr, None) not in (None, 1, 1.0):
            return None
    try:
        body = model.get_decoder()
    except (AttributeError, NotImplementedError, ValueError):
        return None
    head = model.get_output_embeddings()
    if body is None or body is model or head is None:
        return None
    return body, head


def score_encoded(
    model: PreTrainedModel,
    items: Sequence[Encoded],
    *,
    pad_id: int = 0,
    batch_tokens: int = DEFAULT_BATCH_TOKENS,
    max_batch: int = DEFAULT_MAX_BATCH,
    fast_head: bool = True,
    share_prefixes: bool = True,
    row_tokens: int = DEFAULT_ROW_TOKENS,
) -> list[ExampleScore]:
    """Sum of log-probabilities and token count of each item's completion, in input order.

    `share_prefixes` (where the architecture allows it, see `packing.packable`): the shared prefixes
    of the items (a multiple-choice item's prompt, the template's system header) run once, in
    packed rows of about `row_tokens` trie nodes; otherwise one padded row per item."""
    import torch

    device = next(model.parameters()).device
    parts = _head_parts(model) if fast_head else None
    sums = torch.zeros(len(items), dtype=torch.float64, device=device)
    with torch.inference_mode(), bar(len(items), "eval scoring", "example") as progress:
        if share_prefixes and packable(model):
            rows = pack_rows(items, row_tokens)
            dtype = compute_dtype(model)  # bf16 weights widened at run time compute in fp32
            for batch in _batches([len(r.tokens) for r in rows], batch_tokens, max_batch):
                chosen = [rows[b] for b in batch]
                progress.update(len({i for r in chosen for i, _, _ in r.scored}))
                ids, mask, positions = batch_tensors(chosen, dtype)
                where = [(b, i, node, tgt) for b, r in enumerate(chosen) for i, node, tgt in r.scored]
                _add_scores(model, parts, sums, where, device, input_ids=ids, attention_mask=mask,
                            position_ids=positions)
        else:
            for batch in _batches([item.length for item in items], batch_tokens, max_batch):
                progress.update(len(batch))
                ids, mask = _padded(items, batch, pad_id)
                where = [(row, i, len(items[i].prompt_ids) - 1 + k, tgt)
                         for row, i in enumerate(batch) for k, tgt in enumerate(items[i].target_ids)]
                _add_scores(model, parts, sums, where, device, input_ids=ids, attention_mask=mask)
    return [ExampleScore(float(total), len(item.target_ids)) for total, item in zip(sums.tolist(), items)]


def _padded(items: Sequence[Encoded], batch: Sequence[int], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded input ids and the 2D attention mask of one batch of items."""
    import torch

    width = max(items[i].length for i in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, i in enumerate(batch):
        seq = items[i].prompt_ids + items[i].target_ids
        ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        mask[row, : len(seq)] = 1
    return ids, mask


def _add_scores(model: PreTrainedModel, parts: tuple[Any, Any] | None, sums: torch.Tensor,
                where: Sequence[tuple[int, int, int, int]], device: Any, **inputs: torch.Tensor) -> None:
    """One forward pass; add to `sums[item]` the log-probability of each (batch row, item, position
    whose output predicts, target token) of `where`. The output head runs on those positions only."""
    import torch

    if not where:
        return
    row_t, item_t, col_t, tgt_t = (torch.tensor(list(col), dtype=torch.long, device=device)
                                   for col in zip(*where))
    inputs = {name: tensor.to(device) for name, tensor in inputs.items()}
    if parts is not None:
        body, head = parts
        token_lp = _log_probs(body(**inputs).last_hidden_state[row_t, col_t], tgt_t, head)
    else:
        token_lp = _log_probs(model(**inputs).logits[row_t, col_t], tgt_t, None)
    sums.index_add_(0, item_t, token_lp.double())


def _log_probs(rows: torch.Tensor, targets: torch.Tensor, head: Any) -> torch.Tensor:
    """log p(target) per row; `rows` are hidden states when `head` is given, else logits. The
    (rows x vocab) logits are made a chunk at a time to bound memory."""
    import torch

    out = []
    for lo in range(0, targets.shape[0], HEAD_CHUNK):
        hi = min(lo + HEAD_CHUNK, targets.shape[0])
        logits = (head(rows[lo:hi]) if head is not None else rows[lo:hi]).float()
        # cross_entropy's fused log-softmax is about twice as fast on CPU as gather - logsumexp.
        out.append(-torch.nn.functional.cross_entropy(logits, targets[lo:hi], reduction="none"))
    return torch.cat(out) if out else torch.zeros(0)


def pad_token_id(tokenizer: PreTrainedTokenizerBase) -> int:
    for candidate in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if candidate is not None:
            return int(candidate)
    return 0


def score_examples(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    examples: Sequence[Example],
    *,
    batch_tokens: int = DEFAULT_BATCH_TOKENS,
    max_batch: int = DEFAULT_MAX_BATCH,
    fast_head: bool = True,
) -> list[ExampleScore]:
    """Each example's summed answer log-probability and token count, in input order (one batched
    pass over all of them: batches mix leaves, so they fill up)."""
    return score_encoded(
        model, encode_all(tokenizer, examples, max_len=max_len_of(model)), pad_id=pad_token_id(tokenizer),
        batch_tokens=batch_tokens, max_batch=max_batch, fast_head=fast_head,
    )


def max_len_of(model: PreTrainedModel) -> int:
    """The longest sequence scored: the model's context, at most DEFAULT_MAX_LEN."""
    return min(int(getattr(model.config, "max_position_embeddings", DEFAULT_MAX_LEN) or DEFAULT_MAX_LEN),
               DEFAULT_MAX_LEN)


def choice_examples(item: Example) -> list[Example]:
    """One scoring example per option of a multiple-choice item: the option as the assistant's reply."""
    return [Example(item.leaf, item.prompt, choice) for choice in item.choices]


def pick_choice(scores: Sequence[ExampleScore]) -> int:
    """The option the model prefers: the highest mean per-token log-likelihood (length-normalised, so
    a short option is not favoured for being short); the first on a tie."""
    means = [s.logprob / s.tokens if s.tokens else float("-inf") for s in scores]
    return max(range(len(means)), key=lambda i: (means[i], -i))


def score_leaves(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    examples: Mapping[str, Sequence[Example]],
    *,
    batch_tokens: int = DEFAULT_BATCH_TOKENS,
    max_batch: int = DEFAULT_MAX_BATCH,
    fast_head: bool = True,
) -> dict[str, LeafScore]:
    """Score every leaf's examples in one batched pass and sum them per leaf."""
    flat = [(leaf, ex) for leaf, exs in examples.items() for ex in exs]
    scores = score_examples(model, tokenizer, [ex for _, ex in flat], batch_tokens=batch_tokens,
                            max_batch=max_batch, fast_head=fast_head)
    totals: dict[str, list[float]] = {leaf: [0, 0, 0.0] for leaf in examples}
    for (leaf, _), score in zip(flat, scores):
        totals[leaf][0] += 1
        totals[leaf][1] += score.tokens
        totals[leaf][2] += score.logprob
    return {
        leaf: LeafScore(leaf, int(n), int(tokens), float(lp)) for leaf, (n, tokens, lp) in totals.items()
    }


def mean_over_leaves(scores: Mapping[str, LeafScore]) -> float:
    """The mean over leaves of each leaf's mean per-token log-likelihood (each leaf weighs the same)."""
    values = [s.mean_logprob for s in scores.values() if s.tokens]
    return sum(values) / len(values) if values else float("-inf")


def resolve_device(spec: str = "auto") -> str:
    """"auto": the GPU when torch sees one, else the CPU; anything else is passed to torch as is."""
    import torch

    if spec == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise UsageError(f"--device {spec!r} is not a torch device (auto, cpu, cuda, cuda:N)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {spec}: torch sees no CUDA GPU here")
    return spec


def score_checkpoint(checkpoint_dir: Path, data_dir: Path, *, device: str = "auto") -> float:
    """Checkpoint selection score for `labtax train --select eval` (higher is better).

    The mean over every leaf of the validation split (`data_dir/validation.jsonl`, held out of
    training and distinct from the gate's test split; `test.jsonl` only for data mixed before the
    validation split existed) of the leaf's mean per-token log-likelihood of its reference answers.
    All leaves, not a sample: every checkpoint of a run is compared on the same, complete set.
    """
    split = Path(data_dir) / VALIDATION
    examples = read_test_set(split if split.is_file() else Path(data_dir) / TEST)
    name = str(checkpoint_dir)
    model = load_model(name)
    model.to(resolve_device(device))  # type: ignore[arg-type]  # (transformers' stub wants a model)
    tokenizer = load_tokenizer(name)
    try:
        return mean_over_leaves(score_leaves(model, tokenizer, examples))
    finally:
        del model
        _free_accelerator_memory()


def _free_accelerator_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()

