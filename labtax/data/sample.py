"""The sample record: one line of a set file, and the one reader of set files.

Every set line is a JSON object:

  messages   the conversation, [{"role": "user"|"assistant"|"system", "content": str}, ...]
  metadata   where the sample comes from (see `SampleMetadata`); `leaf` is always there
  unmask     True: loss on every non-system token (phase 1 knowledge); False: on the replies only

A test row (test.jsonl) is a sample whose last message is the reference answer; it may also carry
top-level `choices` (the options of a multiple-choice item) and `answer_index` (the right one).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
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
    question: str  # the question alone (the user turn may hold a context above it)
    context: str  # the document chunk (knowledge) or grounding context (skills)
    document: str  # knowledge: the document the chunk comes from
    chunk: int  # knowledge: the chunk's index in its document
    replay: bool  # phase 2: a replayed knowledge sample
    replay_with_chunk: bool  # a replay that shows its own chunk among the distractors
    seed_index: int  # test rows: the seed example's index in the leaf
    qa_index: int  # knowledge test rows: the question-answer pair's index in the seed example


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


def reference_split(row: Sample) -> tuple[tuple[tuple[str, str], ...], str]:
    """A test row as (the turns before the reference answer, the reference answer)."""
    turns = tuple((str(m["role"]), str(m["content"])) for m in row["messages"])
    if len(turns) < 2:
        raise ValueError("'messages' must hold at least a user turn and an assistant turn")
    if turns[-1][0] != "assistant":
        raise ValueError("the last message must be the assistant's reference answer")
    return turns[:-1], turns[-1][1]
