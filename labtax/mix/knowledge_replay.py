"""Phase 2's knowledge replay, the fixed system prompt and precomputed replay data (used by mix.py).

Replay volume: `replay_ratio` of the skill samples is a FLOOR, not a cap, and so is
`replay_min_per_leaf` per knowledge leaf: the replay holds max(ceil(ratio x skills), min_per_leaf x
knowledge leaves) rows (never more than there are), shared out over the knowledge leaves in
proportion to their kept samples (largest remainders), each leaf getting at least
min(min_per_leaf, its samples). So every knowledge leaf is represented in phase 2.

A replayed row is the question after `distractors` chunks of the SAME leaf (the RAFT recipe: the
model must find the right passage among its document's others), its own chunk among them with
probability `replay_context_prob`; loss on the answer only. With `closed_book_rows` (the mixer's
phase-1 setting) its closed-book row follows (the question alone, `replay_copy: "closed_book"`), so
phase 2 keeps the recall phase 1 taught; with `replay_unmasked_copy` the row's phase-1 form (its
chunk and Q&A, loss on every token) follows, as an unmasked copy.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from labtax.data.sample import chunk_of, question_of, with_user
from labtax.errors import UsageError
from labtax.mix.held_out import closed_book_row

# The system turn every sample of the sets begins with (MixSettings.system_prompt; "" for none).
DEFAULT_SYSTEM_PROMPT = (
    "You are a careful, helpful and harmless AI assistant. You follow instructions closely, answer "
    "accurately and say so when you do not know."
)


def replay_counts(kept: Sequence[int], n_skills: int, ratio: float, min_per_leaf: int) -> list[int]:
    """Rows to replay from each knowledge leaf (by its number of kept samples)."""
    available = sum(kept)
    if not available or not n_skills:
        return [0] * len(kept)
    floors = [min(min_per_leaf, k) for k in kept]
    total = min(available, max(math.ceil(ratio * n_skills), sum(floors)))
    counts = list(floors)
    left = total - sum(counts)
    if left > 0:
        room = [k - f for k, f in zip(kept, floors)]
        spare = sum(room)
        shares = [left * r / spare for r in room]
        counts = [c + int(s) for c, s in zip(counts, shares)]
        order = sorted(range(len(kept)), key=lambda i: (-(shares[i] - int(shares[i])), i))
        rest = total - sum(counts)
        for i in order:
            if rest <= 0:
                break
            if counts[i] < kept[i]:
                counts[i] += 1
                rest -= 1
    return counts


def replay_row(sample: dict[str, Any], chunks: Sequence[str], distractors: int, context_prob: float,
               rng: random.Random) -> dict[str, Any]:
    """A replayed knowledge sample: the question after distractor chunks of its own leaf, its own chunk
    among them part of the time (the model must then find it, else answer from what it learned)."""
    own = chunk_of(sample)
    others = [c for c in chunks if c != own]
    picked = [others[j] for j in sorted(rng.sample(range(len(others)), min(distractors, len(others))))]
    with_own = bool(own) and rng.random() < context_prob
    docs = picked + ([own] if with_own else [])
    rng.shuffle(docs)
    prefix = "".join(f"Document:\n{d}\n\n" for d in docs)
    out = with_user(sample, prefix + question_of(sample).strip())  # type: ignore[arg-type]
    out["unmask"] = False
    meta = dict(out.get("metadata") or {})
    if "question" not in meta:
        meta["question_at"] = len(prefix)
    meta.pop("context", None)  # the chunks shown are in the turn; the replay never reads it back
    meta["replay"] = True
    meta["replay_with_chunk"] = with_own
    out["metadata"] = meta  # type: ignore[typeddict-item]
    return dict(out)


def draw_replay(path: str, lines: Sequence[bytes], chunks: Sequence[str], kept: Sequence[int], n: int,
                settings: Any, encode: Callable[[Any], bytes]) -> list[bytes]:
    """`n` replayed rows of one knowledge leaf (its stored `lines`, the line numbers `kept` in the
    sets), drawn with a stream of the seed and the leaf path, each followed by its unmasked copy when
    settings.replay_unmasked_copy; encoded lines ending in a newline."""
    rng = random.Random(f"labtax-replay-{settings.seed}-{path}")
    ordered = sorted(chunks)
    out: list[bytes] = []
    for i in sorted(rng.sample(list(kept), n)):
        sample = json.loads(lines[i])
        sample["metadata"]["leaf"] = path
        row = replay_row(sample, ordered, settings.distractors, settings.replay_context_prob, rng)
        out.append(encode(system_first(row, settings.system_prompt)) + b"\n")
        if getattr(settings, "closed_book_rows", 0):
            # Phase 2 keeps what phase 1 stored: the fact asked closed book, as phase 1 taught it.
            closed = closed_book_row(sample)
            closed["metadata"].update({"replay": True, "replay_copy": "closed_book"})
            out.append(encode(system_first(closed, settings.system_prompt)) + b"\n")
        if settings.replay_unmasked_copy:
            sample["metadata"]["replay"] = True
            sample["metadata"]["replay_copy"] = "unmasked"
            out.append(encode(system_first(sample, settings.system_prompt)) + b"\n")
    return out


def system_first(sample: dict[str, Any], prompt: str) -> dict[str, Any]:
    """A copy with the system turn first (no-op for an empty prompt)."""
    if not prompt:
        return sample
    return {**sample, "messages": [{"content": prompt, "role": "system"}, *sample["messages"]]}


def system_turn(prompt: str) -> bytes:
    """The encoded system message, as set lines spell it (sorted keys, compact)."""
    return json.dumps({"content": prompt, "role": "system"}, ensure_ascii=False, separators=(",", ":"),
                      sort_keys=True).encode("utf-8")


def with_system(lines: bytes | memoryview, prompt: str) -> bytes | memoryview:
    """Set lines with the system turn first in every conversation. One replace over the buffer: in
    a compact JSON line `"messages":[` can only be the key (a string's quotes are escaped), and the
    pipelines never write a system turn of their own."""
    if not prompt or not len(lines):
        return lines
    return bytes(lines).replace(b'"messages":[', b'"messages":[' + system_turn(prompt) + b",")


def file_digest(path: str) -> str:
    """sha256 of the replay-data file ('' for none): a changed file rebuilds the sets."""
    if not path:
        return ""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError as exc:
        raise UsageError(f"--replay-data {path}: cannot be read ({exc.strerror})") from None


def read_replay_data(path: Path, system_prompt: str) -> list[dict[str, Any]]:
    """Precomputed skills data (`--replay-data FILE`, JSONL in the messages format) as phase-2 rows:
    loss on the replies only, `metadata.leaf` = `replay-data:<file name>`, and the fixed system turn
    in place of any system turn of their own."""
    rows = []
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"--replay-data {path}: cannot be read ({exc.strerror})") from None
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            msgs = record["messages"]
            if not isinstance(msgs, list) or not all(
                    isinstance(m, dict) and m.get("role") in ("system", "user", "assistant")
                    and isinstance(m.get("content"), str) for m in msgs):
                raise ValueError("messages must be role/content objects")
            if not any(m["role"] == "assistant" for m in msgs):
                raise ValueError("no assistant turn")
        except (ValueError, KeyError, TypeError) as exc:
            raise UsageError(f"--replay-data {path}:{lineno}: not a messages record ({exc})") from None
        turns = [{"content": m["content"], "role": m["role"]} for m in msgs if m["role"] != "system"]
        if system_prompt:
            turns.insert(0, {"content": system_prompt, "role": "system"})
        rows.append({"messages": turns, "metadata": {"leaf": f"replay-data:{path.name}", "kind": "replay_data"},
                     "unmask": False})
    return rows
