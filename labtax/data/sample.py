"""The sample record: one line of a set file, and the one reader of set files.

Every set line is a JSON object:

  messages   the conversation, [{"role": "user"|"assistant"|"system", "content": str}, ...]
  metadata   where the sample comes from (see `SampleMetadata`); `leaf` is always there
  unmask     True: loss on every non-system token (phase 1 knowledge); False: on the replies only

A test row (test.jsonl) is a sample whose last message is the reference answer; it may also carry
top-level `choices` (the options of a multiple-choice item) and `answer_index` (the right one).

The metadata does not repeat the conversation: the question and the chunk (or grounding context)
are read from the last user turn, `{context}\n\n{question}`, where `question_at` says where the
question starts; the answer is the last assistant turn. `question_of` and `chunk_of` read them
(also from older data that still carries `question` and `context` in its metadata).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypedDict, TypeVar

from labtax.errors import UsageError

T = TypeVar("T")


class Message(TypedDict):
    role: str
    content: str


class SampleMetadata(TypedDict, total=False):
    leaf: str  # the leaf's path at the time of mixing (`.../qna.yaml`)
    kind: str  # knowledge | compositional_skills | foundational_skills
    source: str  # "seed" on test rows (a seed example of the leaf, never generated data)
    pipeline: str  # the pipeline that generated it
    teacher: str  # the teacher's model id
    seed: int  # the generation seed
    scores: dict[str, Any]  # the judges' verdicts and scores, by stage
    question_at: int  # where the question starts in the last user turn (a context stands above it)
    question: str  # only where the user turn does not end with the question (or in older data)
    context: str  # only where the user turn does not hold the context (or in older data)
    document: str  # knowledge: the document the chunk comes from
    chunk: int  # knowledge: the chunk's index in its document
    # knowledge: the fact a generated pair asks about, "<document>#<chunk>/<n>"; the differently worded
    # pairs of one fact share it (the mixer holds one wording out for closed-book tests)
    fact: str
    replay: bool  # phase 2: a replayed knowledge sample
    replay_with_chunk: bool  # a replay that shows its own chunk among the distractors
    replay_step: int  # two-step phase 1: 1 on a step-1 sample replayed in step 2
    seed_index: int  # test rows: the seed example's index in the leaf
    qa_index: int  # knowledge test rows: the question-answer pair's index in the seed example
    closed_book: bool  # knowledge: the question alone, no passage (a closed-book training or held-out row)


class Sample(TypedDict):
    messages: list[Message]
    metadata: SampleMetadata
    unmask: bool


class TestRow(Sample, total=False):
    choices: list[str]  # a multiple-choice item's options (optional)
    answer_index: int  # the index of the right option in `choices`


def read_set(path: Path, convert: Callable[[Sample], T], what: str = "sample") -> Iterator[T]:
    """The records of a set file, each passed through `convert` (which raises ValueError, KeyError
    or TypeError for a record it cannot use). A bad line is a one-line usage error naming it."""
    with path.open(encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record: Any = json.loads(line)
                if not isinstance(record, dict) or not isinstance(record.get("messages"), list) \
                        or not record["messages"]:
                    raise ValueError("no messages")
                item = convert(record)  # type: ignore[arg-type]
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                raise UsageError(f"{path}:{lineno}: not a {what} ({exc})") from None
            yield item


def reference_split(row: Mapping[str, Any]) -> tuple[tuple[tuple[str, str], ...], str]:
    """A test row as (the turns before the reference answer, the reference answer)."""
    turns = tuple((str(m["role"]), str(m["content"])) for m in row["messages"])
    if len(turns) < 2:
        raise ValueError("'messages' must hold at least a user turn and an assistant turn")
    if turns[-1][0] != "assistant":
        raise ValueError("the last message must be the assistant's reference answer")
    return turns[:-1], turns[-1][1]


def _user_index(sample: Mapping[str, Any]) -> int | None:
    msgs = sample.get("messages") or []
    for i in range(len(msgs) - 1, -1, -1):
        if msgs[i].get("role") == "user":
            return i
    return None


def user_text(sample: Mapping[str, Any]) -> str:
    """The last user turn ('' when there is none)."""
    i = _user_index(sample)
    return str(sample["messages"][i].get("content", "")) if i is not None else ""


def with_user(sample: Mapping[str, Any], content: str) -> dict[str, Any]:
    """A copy whose last user turn is `content` (inserted first when there is none)."""
    i = _user_index(sample)
    msgs = [dict(m) for m in sample.get("messages") or []]
    if i is None:
        msgs.insert(0, {"role": "user", "content": content})
    else:
        msgs[i]["content"] = content
    out = dict(sample)
    out["messages"] = msgs
    return out


def question_of(sample: Mapping[str, Any]) -> str:
    """The question alone: the user turn from `question_at`, else `metadata.question`, else the turn."""
    meta = sample.get("metadata") or {}
    at = meta.get("question_at")
    if isinstance(at, int):
        return user_text(sample)[at:]
    q = meta.get("question")
    if isinstance(q, str) and q.strip():
        return q
    return user_text(sample)


def chunk_of(sample: Mapping[str, Any]) -> str:
    """The context above the question (a knowledge sample's document chunk); '' when there is none."""
    meta = sample.get("metadata") or {}
    v = meta.get("context")
    if isinstance(v, str) and v.strip():
        return v.strip()
    at = meta.get("question_at")
    return user_text(sample)[:at].strip() if isinstance(at, int) else ""


def slim(sample: Mapping[str, Any]) -> dict[str, Any]:
    """The sample with its metadata no longer repeating the conversation: `question`, `context` and
    `answer` are dropped where the turns hold them (`question_at` marks the question), kept where
    they do not (so `question_of` and `chunk_of` read the same before and after)."""
    meta: dict[str, Any] = dict(sample.get("metadata") or {})
    question, context = question_of(sample), chunk_of(sample)
    user = user_text(sample)
    if "question" in meta and question and user.endswith(question):
        del meta["question"]
        if len(user) > len(question):
            meta["question_at"] = len(user) - len(question)
    if "context" in meta and ("question_at" in meta or "question" not in meta):
        probe = {**sample, "metadata": {k: v for k, v in meta.items() if k != "context"}}
        if chunk_of(probe) == context:
            del meta["context"]
    msgs = sample.get("messages") or []
    if "answer" in meta and msgs and msgs[-1].get("role") == "assistant" and msgs[-1].get("content") == meta["answer"]:
        del meta["answer"]
    return {**sample, "metadata": meta}
