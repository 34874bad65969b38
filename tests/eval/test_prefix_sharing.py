"""Prefix-shared packed rows score exactly what a plain forward pass per option scores."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from labtax.eval.data import Example
from labtax.eval.encoding import Encoded, encode
from labtax.eval.packing import ancestor_mask, pack_rows, packable
from labtax.eval.scorer import choice_examples, score_encoded
from labtax.models import load_model, load_tokenizer


@pytest.fixture(scope="module")
def tiny() -> tuple[Any, Any]:
    return load_model("tiny"), load_tokenizer("tiny")


def _plain(model: Any, item: Encoded) -> float:
    """One option, its own forward pass, full logits, no mask: the straightforward computation."""
    ids = torch.tensor([item.prompt_ids + item.target_ids])
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=ids).logits[0].double(), dim=-1)
    start = len(item.prompt_ids)
    return sum(float(logp[start - 1 + k, t]) for k, t in enumerate(item.target_ids))


def _items(tokenizer: Any) -> list[Encoded]:
    mc = Example("l", (("user", "Which metal is the lantern of Ostrava made of?"),), "Copper.",
                 choices=("Copper.", "Copper and tin.", "Silver, mostly.", "Glass"), answer_index=0)
    other = Example("m", (("user", "Which river feeds the harbor?"),), "x",
                    choices=("The Vltava.", "The Vltava and the Elbe.", "None"), answer_index=0)
    ref = Example("l", (("user", "Describe the lantern."),), "It is a tall copper lantern by the harbor.")
    same_twice = Example("l", (("user", "Describe the lantern."),), "It is a tall copper lantern by the harbor.")
    exs = [*choice_examples(mc), *choice_examples(other), ref, same_twice]
    return [encode(tokenizer, ex) for ex in exs]


@pytest.mark.parametrize("row_tokens", [1, 60, 384, 10_000])
def test_shared_prefix_scores_equal_one_forward_per_option(tiny: tuple[Any, Any], row_tokens: int) -> None:
    model, tokenizer = tiny
    assert packable(model)
    items = _items(tokenizer)
    packed = score_encoded(model, items, row_tokens=row_tokens, max_batch=3)
    for item, score in zip(items, packed):
        assert score.tokens == len(item.target_ids)
        assert score.logprob == pytest.approx(_plain(model, item), rel=1e-5, abs=1e-4)
    rowwise = score_encoded(model, items, share_prefixes=False)
    assert [s.logprob for s in packed] == pytest.approx([s.logprob for s in rowwise], rel=1e-5)


def test_shared_tokens_are_laid_out_once(tiny: tuple[Any, Any]) -> None:
    _, tokenizer = tiny
    items = _items(tokenizer)
    (row,) = pack_rows(items, row_tokens=10_000)
    distinct = {tuple((i.prompt_ids + i.target_ids)[:k]) for i in items for k in range(1, i.length + 1)}
    assert len(row.tokens) == len(distinct) < sum(i.length for i in items) // 2
    assert sorted(i for i, _, _ in row.scored) == sorted(i for i, it in enumerate(items) for _ in it.target_ids)
    # Each node sits at its depth and after its parent.
    assert all(row.depths[n] == (row.depths[p] + 1 if p >= 0 else 0) and p < n for n, p in enumerate(row.parents))
    # A row budget smaller than one item still scores it, one item per row.
    assert len(pack_rows(items, row_tokens=1)) == len({tuple(i.prompt_ids + i.target_ids) for i in items})


def test_ancestor_mask_sees_only_the_path_to_the_root() -> None:
    # 0 -> 1 -> 2 and 0 -> 3: node 3 must not see 1 or 2; the padding position sees itself only.
    mask = ancestor_mask([-1, 0, 1, 0], width=5)
    assert mask.tolist() == [
        [True, False, False, False, False],
        [True, True, False, False, False],
        [True, True, True, False, False],
        [True, False, False, True, False],
        [False, False, False, False, True],
    ]


def test_models_without_mask_support_score_row_by_row(tiny: tuple[Any, Any]) -> None:
    from transformers import GPT2Config, GPT2LMHeadModel

    _, tokenizer = tiny
    torch.manual_seed(0)
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_embd=32, n_layer=1, n_head=2)).eval()
    assert not packable(gpt2)  # learned absolute positions, its own mask handling: row by row
    items = _items(tokenizer)
    got = score_encoded(gpt2, items)
    assert [s.logprob for s in got] == pytest.approx([_plain(gpt2, item) for item in items], rel=1e-5)


def test_shared_prompts_encode_as_one_at_a_time(tiny: tuple[Any, Any], tmp_path: Any) -> None:
    from transformers import AutoTokenizer

    from labtax.eval.encoding import encode_all, tokenizer_fingerprint

    _, tokenizer = tiny
    mc = Example("l", (("user", "Which river feeds the harbor?"),), "x",
                 choices=("The Vltava.", "The Vltava and the Elbe.", "None"), answer_index=0)
    exs = [*choice_examples(mc), Example("l", (("user", "Describe the lantern."),), "A copper lantern.")]
    assert encode_all(tokenizer, exs, max_len=12) == [encode(tokenizer, ex, max_len=12) for ex in exs]
    # The fingerprint says when a second model's tokenizer encodes alike: a saved copy does, another
    # chat template does not.
    tokenizer.save_pretrained(tmp_path / "copy")
    copy = AutoTokenizer.from_pretrained(str(tmp_path / "copy"))
    assert tokenizer_fingerprint(copy) == tokenizer_fingerprint(tokenizer) is not None
    copy.chat_template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    assert tokenizer_fingerprint(copy) != tokenizer_fingerprint(tokenizer)
