"""Data processing: chat template, loss masks, drop-overlong, and a token cache per input file.

A sample is one line of a set file (`labtax.data.Sample`: messages, metadata, unmask). It is rendered
with the model's chat template and tokenized once; the loss covers the assistant replies (their
content and end-of-turn token, not the `<|im_start|>assistant` header), or, for `unmask: true`,
every token that is not part of a system message (nor of a default system prompt the template adds).

Targets are stored already shifted (target[i] is the label of token i+1 of the same sample, the last
one is ignored) so that a packed row never predicts across a sample boundary.

The cache holds flat int32 token and target arrays plus offsets, memory-mapped when read, so a
dataset ten times larger does not need ten times the RAM. Its key is the file's content hash, the
tokenizer's hash and max_seq_len; it is written into a temporary directory and renamed into place.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from labtax.data import read_set

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

IGNORE = -100
CACHE_VERSION = 1
_TOKENIZE_CHUNK = 256  # samples tokenized per batch call: fast, and memory stays bounded


@dataclass
class Encoded:
    """One tokenized sample: token ids and shifted targets (IGNORE where there is no loss)."""

    input_ids: list[int]
    targets: list[int]


def _render(tokenizer: PreTrainedTokenizerBase, messages: list[dict[str, str]], gen: bool = False) -> str:
    if not messages and not gen:
        return ""
    try:
        return str(tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=gen))
    except Exception:  # some templates reject an empty conversation; callers fall back then
        if messages:
            raise
        return "\x00"


def _own_start(tokenizer: PreTrainedTokenizerBase, first: dict[str, str], rendered: str) -> int:
    """Where the first message's own text starts, past any default system prompt the template adds.

    Rendered after an explicit system message, the first message shows only its own text; that text
    is a suffix of the message rendered alone, and whatever precedes it is the template's default.
    """
    probe = {"role": "system", "content": "labtax"}
    alone = _render(tokenizer, [probe])
    both = _render(tokenizer, [probe, first])
    if both.startswith(alone):
        own = both[len(alone):]
        if own and rendered.endswith(own):
            return len(rendered) - len(own)
    return 0


def loss_spans(tokenizer: PreTrainedTokenizerBase, messages: list[dict[str, str]],
               unmask: bool) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the character spans that carry loss.

    Each message's text is found by rendering growing prefixes of the conversation (chat templates
    are prefix-stable), so no template-specific markers are hard-coded here.
    """
    spans: list[tuple[int, int]] = []
    prev = ""
    for k, message in enumerate(messages):
        cur = _render(tokenizer, messages[: k + 1])
        if not cur.startswith(prev):
            raise ValueError("the chat template is not prefix-stable for this conversation")
        seg_start, seg_end = len(prev), len(prev) + len(cur[len(prev):].rstrip())
        role = message.get("role")
        if role == "assistant" and not unmask:
            header = _render(tokenizer, messages[:k], gen=True)
            if cur.startswith(header) and len(header) >= seg_start:
                start = len(header)
            else:  # template without a generation prompt: find the content itself
                found = cur.find(message.get("content", ""), seg_start)
                start = found if found >= 0 else seg_start
            spans.append((start, seg_end))
        elif unmask and role != "system":
            start = seg_start + (_own_start(tokenizer, message, cur) if k == 0 else 0)
            spans.append((start, seg_end))
        prev = cur
    return prev, spans


def encode_texts(tokenizer: PreTrainedTokenizerBase, texts: list[str],
                 spans: list[list[tuple[int, int]]]) -> list[Encoded]:
    """Tokenize rendered conversations; a token carries a label when it starts inside a loss span."""
    if not texts:  # fast tokenizers index the first encoding even for an empty batch
        return []
    batch = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)
    out = []
    for ids, offsets, sample_spans in zip(batch["input_ids"], batch["offset_mapping"], spans):
        starts = np.asarray([o[0] for o in offsets], dtype=np.int64)
        ends = np.asarray([o[1] for o in offsets], dtype=np.int64)
        in_loss = np.zeros(len(ids), dtype=bool)
        for lo, hi in sample_spans:
            in_loss |= (starts >= lo) & (starts < hi) & (ends > starts)
        labels = np.where(in_loss, np.asarray(ids, dtype=np.int64), IGNORE)
        targets = np.concatenate([labels[1:], [IGNORE]]).tolist()
        out.append(Encoded(list(ids), targets))
    return out


def encode_sample(tokenizer: PreTrainedTokenizerBase, sample: dict[str, Any]) -> Encoded:
    """Tokenize one sample (messages + unmask) into ids and shifted targets."""
    text, spans = loss_spans(tokenizer, sample["messages"], bool(sample.get("unmask", False)))
    return encode_texts(tokenizer, [text], [spans])[0]


def tokenizer_hash(tokenizer: PreTrainedTokenizerBase) -> str:
    """A content hash of the tokenizer (vocabulary, merges, special tokens) and its chat template."""
    h = hashlib.sha256()
    backend = getattr(tokenizer, "backend_tokenizer", None)
    h.update(backend.to_str().encode() if backend is not None else repr(sorted(tokenizer.get_vocab().items())).encode())
    h.update(str(tokenizer.chat_template or "").encode())
    return h.hexdigest()


def file_sha256(path: Path) -> str:
    """A file's sha256, read a megabyte at a time (sets can be gigabytes)."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _sample_source(metadata: dict[str, Any]) -> str:
    """Which part of the taxonomy a sample comes from (the leaf's root folder), to report the mix."""
    if metadata.get("replay"):
        return "replay"
    leaf = str(metadata.get("leaf") or "")
    return leaf.split("/", 1)[0] if "/" in leaf else (leaf or "unknown")


class TokenizedFile:
    """A memory-mapped tokenized JSONL file: samples by index, plus their lengths and loss counts."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.meta: dict[str, Any] = json.loads((directory / "meta.json").read_text())
        n_tokens = int(self.meta["tokens"])
        self.offsets = np.load(directory / "offsets.npy")
        self.loss_counts = np.load(directory / "loss_counts.npy")
        # An empty memmap is an error in numpy: keep zero-length arrays in memory instead.
        self.ids: np.ndarray
        self.targets: np.ndarray
        if n_tokens:
            self.ids = np.memmap(directory / "ids.bin", dtype=np.int32, mode="r", shape=(n_tokens,))
            self.targets = np.memmap(directory / "targets.bin", dtype=np.int32, mode="r", shape=(n_tokens,))
        else:
            self.ids = self.targets = np.zeros(0, dtype=np.int32)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def sample(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = int(self.offsets[index]), int(self.offsets[index + 1])
        return np.asarray(self.ids[lo:hi]), np.asarray(self.targets[lo:hi])


def _as_is(sample: Any) -> dict[str, Any]:
    return sample


def cache_dir(path: Path, tokenizer: PreTrainedTokenizerBase, max_seq_len: int, cache_root: Path,
              tok_hash: str | None = None) -> Path:
    """Where `tokenize_file` puts (or finds) this file's tokens: keyed by content, tokenizer, max_seq_len."""
    key_src = f"v{CACHE_VERSION}|{file_sha256(path)}|{tok_hash or tokenizer_hash(tokenizer)}|{max_seq_len}"
    return cache_root / f"{path.stem}-{hashlib.sha256(key_src.encode()).hexdigest()[:20]}"


def wait_for_tokens(path: Path, tokenizer: PreTrainedTokenizerBase, max_seq_len: int, cache_root: Path,
                    tok_hash: str | None = None, poll_s: float = 0.2) -> TokenizedFile:
    """Map the cache another process (the node's local rank 0) is building, once it is renamed into
    place. No collective is involved, so no process-group timeout applies however long it takes;
    if that process dies, torchrun stops this one too."""
    target = cache_dir(path, tokenizer, max_seq_len, cache_root, tok_hash)
    while not (target / "meta.json").is_file():
        time.sleep(poll_s)
    return TokenizedFile(target)


def tokenize_file(path: Path, tokenizer: PreTrainedTokenizerBase, max_seq_len: int,
                  cache_root: Path, tok_hash: str | None = None) -> TokenizedFile:
    """Tokenize a JSONL file into the cache (once per content + tokenizer + max_seq_len) and map it."""
    target = cache_dir(path, tokenizer, max_seq_len, cache_root, tok_hash)
    key = target.name.rsplit("-", 1)[1]
    if (target / "meta.json").is_file():
        return TokenizedFile(target)
    cache_root.mkdir(parents=True, exist_ok=True)
    tmp = cache_root / f".{target.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    offsets, loss_counts = [0], []
    dropped: Counter[str] = Counter()
    sources: Counter[str] = Counter()
    with (tmp / "ids.bin").open("wb") as ids_f, (tmp / "targets.bin").open("wb") as tgt_f:

        def flush(chunk: list[dict[str, Any]]) -> None:
            texts, spans = [], []
            for sample in chunk:
                text, sample_spans = loss_spans(tokenizer, sample["messages"], bool(sample.get("unmask")))
                texts.append(text)
                spans.append(sample_spans)
            for sample, enc in zip(chunk, encode_texts(tokenizer, texts, spans)):
                n_loss = sum(t != IGNORE for t in enc.targets)
                if len(enc.input_ids) > max_seq_len:
                    dropped["too_long"] += 1  # never truncated: a cut answer teaches a cut answer
                    continue
                if n_loss == 0:
                    dropped["no_loss_tokens"] += 1
                    continue
                ids_f.write(np.asarray(enc.input_ids, dtype=np.int32).tobytes())
                tgt_f.write(np.asarray(enc.targets, dtype=np.int32).tobytes())
                offsets.append(offsets[-1] + len(enc.input_ids))
                loss_counts.append(n_loss)
                sources[_sample_source(sample.get("metadata") or {})] += 1

        chunk: list[dict[str, Any]] = []
        for sample in read_set(path, _as_is, "training sample"):
            chunk.append(sample)
            if len(chunk) == _TOKENIZE_CHUNK:
                flush(chunk)
                chunk = []
        flush(chunk)
    np.save(tmp / "offsets.npy", np.asarray(offsets, dtype=np.int64))
    np.save(tmp / "loss_counts.npy", np.asarray(loss_counts, dtype=np.int64))
    meta = {"source": str(path), "key": key, "max_seq_len": max_seq_len, "samples": len(loss_counts),
            "tokens": offsets[-1], "loss_tokens": int(sum(loss_counts)), "dropped": dict(dropped),
            "sources": dict(sorted(sources.items()))}
    (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
    try:
        os.replace(tmp, target)
    except OSError:  # another rank or run finished it first
        shutil.rmtree(tmp, ignore_errors=True)
    return TokenizedFile(target)
