"""`labtax export --format ilab`: the training sets as InstructLab's trainer reads them, unchanged.

instructlab-sdg's mixer writes `knowledge_train_msgs_*.jsonl` and `skills_train_msgs_*.jsonl`
whose rows have exactly three columns: `id` (a unique string), `messages` (a system message first,
with the recipe's system prompt) and `metadata` (a JSON *string*, not an object). A phase-1
knowledge sample, which is trained on every token, is one `pretraining` message holding
`<|user|>\\n{question}\\n<|assistant|>\\n{answer}`; instructlab-training unrolls that form back into
a user and an assistant turn and unmasks both. labtax's own sets say the same with `"unmask": true`;
this module converts one into the other, and nothing else: the conversations are labtax's.

Ids are UUIDs derived from each row's content (uuid5), so exporting the same sets twice gives the
same files byte for byte.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labtax.data.names import PHASE1, PHASE2
from labtax.data.sample import Sample, read_set
from labtax.errors import UsageError

DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant."
ILAB_FILES = {PHASE1: "knowledge_train_msgs.jsonl", PHASE2: "skills_train_msgs.jsonl"}
_NAMESPACE = uuid.UUID("6f1d1f4e-8a59-4d5e-9f0a-6c1b8f3e2a10")  # labtax's: ids differ from any other tool's


def _pretraining(messages: list[dict[str, str]]) -> dict[str, str]:
    """The user and assistant turns of an all-tokens sample as the one `pretraining` message."""
    turns = [m for m in messages if m.get("role") != "system"]
    user = next((m["content"] for m in turns if m.get("role") == "user"), "")
    assistant = next((m["content"] for m in reversed(turns) if m.get("role") == "assistant"), "")
    return {"role": "pretraining", "content": f"<|user|>\n{user}\n<|assistant|>\n{assistant}"}


def to_ilab(sample: Sample, system_prompt: str | None) -> dict[str, Any]:
    """One labtax set row as an instructlab-sdg mixed-set row."""
    messages = [{"role": str(m["role"]), "content": str(m["content"])} for m in sample["messages"]]
    system = next((m["content"] for m in messages if m["role"] == "system"), None)
    prompt = system_prompt if system_prompt is not None else (system or DEFAULT_SYSTEM_PROMPT)
    body = [m for m in messages if m["role"] != "system"]
    if sample.get("unmask"):
        body = [_pretraining(body)]
    metadata = json.dumps(dict(sample.get("metadata") or {}), ensure_ascii=False, sort_keys=True)
    conversation = [{"role": "system", "content": prompt}, *body]
    digest = json.dumps([conversation, metadata], ensure_ascii=False, sort_keys=True)
    return {"id": str(uuid.uuid5(_NAMESPACE, digest)), "messages": conversation, "metadata": metadata}


@dataclass(frozen=True)
class Exported:
    source: Path
    target: Path
    rows: int


def export_ilab(data_dir: Path, output: Path, system_prompt: str | None = None) -> list[Exported]:
    """Write the ilab form of every training set found in `data_dir` into `output`."""
    found = [name for name in ILAB_FILES if (data_dir / name).is_file()]
    if not found:
        raise UsageError(f"{data_dir}: no {PHASE1} or {PHASE2} (run labtax diff-generate first)")
    output.mkdir(parents=True, exist_ok=True)
    done = []
    for name in found:
        source, target = data_dir / name, output / ILAB_FILES[name]
        tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
        rows = 0
        with tmp.open("w", encoding="utf-8") as out:
            for sample in read_set(source, lambda record: record):
                out.write(json.dumps(to_ilab(sample, system_prompt), ensure_ascii=False) + "\n")
                rows += 1
        os.replace(tmp, target)
        done.append(Exported(source, target, rows))
    return done
