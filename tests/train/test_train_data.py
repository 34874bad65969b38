"""Loss masks, dropping over-long samples, and the token cache."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from train_fixtures import write_jsonl

from labtax.train.data import IGNORE, encode_sample, tokenize_file, tokenizer_hash

CONVERSATION = [
    {"role": "system", "content": "Answer briefly."},
    {"role": "user", "content": "What is the capital of France?"},
    {"role": "assistant", "content": "Paris."},
    {"role": "user", "content": "And of Italy?"},
    {"role": "assistant", "content": "Rome, since 1871."},
]


def labelled(enc: Any) -> list[int]:
    """Indices of the tokens that carry a label (targets are shifted by one)."""
    return [i + 1 for i, t in enumerate(enc.targets) if t != IGNORE]


def test_only_assistant_tokens_and_end_of_turn_carry_labels(tokenizer: Any) -> None:
    enc = encode_sample(tokenizer, {"messages": CONVERSATION})
    # The expected tokens, found independently: tokenize the rendered prefix before each reply.
    expected: list[int] = []
    for k in (2, 4):
        before = tokenizer.apply_chat_template(CONVERSATION[:k], tokenize=False, add_generation_prompt=True)
        upto = tokenizer.apply_chat_template(CONVERSATION[: k + 1], tokenize=False)
        lo = len(tokenizer(before, add_special_tokens=False)["input_ids"])
        hi = len(tokenizer(upto.rstrip("\n"), add_special_tokens=False)["input_ids"])
        expected += range(lo, hi)
    assert labelled(enc) == expected
    assert tokenizer.decode([enc.input_ids[i] for i in expected]) == "Paris.<|im_end|>Rome, since 1871.<|im_end|>"
    # Each label is the token itself, so the model learns to predict exactly these.
    for i in expected:
        assert enc.targets[i - 1] == enc.input_ids[i]
    assert enc.input_ids == tokenizer.apply_chat_template(CONVERSATION, tokenize=True, return_dict=True)["input_ids"]


def test_unmask_labels_every_non_system_token(tokenizer: Any) -> None:
    enc = encode_sample(tokenizer, {"messages": CONVERSATION, "unmask": True})
    system_end = len(tokenizer(tokenizer.apply_chat_template(CONVERSATION[:1], tokenize=False),
                               add_special_tokens=False)["input_ids"])
    text = tokenizer.decode([enc.input_ids[i] for i in labelled(enc)])
    assert labelled(enc)[0] == system_end
    assert "Answer briefly" not in text
    assert text.startswith("<|im_start|>user\nWhat is the capital") and text.endswith("1871.<|im_end|>")
    # Everything after the system turn counts except the newlines between turns.
    rest = [tokenizer.decode([t]) for t in enc.input_ids[system_end:]]
    unlabelled = [tok for i, tok in enumerate(rest, system_end) if i not in set(labelled(enc))]
    assert set(unlabelled) <= {"\n"}


def test_unmask_skips_the_default_system_prompt_the_template_adds(tokenizer: Any) -> None:
    messages = CONVERSATION[1:3]  # no system message: SmolLM2's template inserts its own
    enc = encode_sample(tokenizer, {"messages": messages, "unmask": True})
    rendered = tokenizer.decode(enc.input_ids)
    assert "You are a helpful AI assistant" in rendered
    text = tokenizer.decode([enc.input_ids[i] for i in labelled(enc)])
    assert "helpful AI assistant" not in text and text.startswith("<|im_start|>user")


def _sample(words: int, role_text: str = "word") -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": "q?"},
                         {"role": "assistant", "content": " ".join([role_text] * words)}],
            "metadata": {"leaf": "knowledge/a/b"}}


def test_overlong_samples_are_dropped_and_counted(tmp_path: Path, tokenizer: Any) -> None:
    samples = [_sample(5), _sample(400), _sample(10), _sample(300), {"messages": [{"role": "user", "content": "x"}]}]
    path = write_jsonl(tmp_path / "d.jsonl", samples)
    data = tokenize_file(path, tokenizer, 128, tmp_path / "cache")
    assert len(data) == 2
    assert data.meta["dropped"] == {"too_long": 2, "no_loss_tokens": 1}
    # Kept samples are whole, never truncated.
    for i, sample in enumerate([samples[0], samples[2]]):
        ids, targets = data.sample(i)
        assert ids.tolist() == encode_sample(tokenizer, sample).input_ids
        assert int((targets != IGNORE).sum()) == data.loss_counts[i]
    assert data.lengths.max() <= 128


def test_token_cache_is_keyed_by_content_tokenizer_and_length(tmp_path: Path, tokenizer: Any) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [_sample(5), _sample(7)])
    cache = tmp_path / "cache"
    first = tokenize_file(path, tokenizer, 128, cache)
    again = tokenize_file(path, tokenizer, 128, cache, tokenizer_hash(tokenizer))
    assert again.directory == first.directory
    assert np.array_equal(np.asarray(again.ids), np.asarray(first.ids))
    assert tokenize_file(path, tokenizer, 64, cache).directory != first.directory
    write_jsonl(path, [_sample(5), _sample(8)])
    assert tokenize_file(path, tokenizer, 128, cache).directory != first.directory
    assert not [p for p in cache.iterdir() if ".tmp-" in p.name]
