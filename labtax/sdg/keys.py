"""The content key of a leaf: what its generated data depends on, and nothing else.

key = sha256 over
  - the canonical leaf content: the parsed qna.yaml (so re-indenting, re-quoting or reordering keys
    does not change it) plus the leaf's kind, minus fields that never reach a prompt (`created_by`);
  - the content of its documents, in the order the pipeline reads them;
  - the *environment*: the pipeline and prompt files, the teacher's model id and the generation
    settings, hashed once per run (`environment_digest`).

The leaf's path is deliberately NOT part of the key: a renamed leaf with unchanged content keeps its
key and so reuses its data. Samples are path-free in the store; the mixer stamps the current path.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from labtax.taxonomy.model import Leaf

# Bump when the meaning of a key changes (what goes in, or the stored format it addresses).
KEY_VERSION = 1

# Fields of a qna.yaml that no pipeline puts into a prompt: changing them must not regenerate.
NON_GENERATIVE_FIELDS: frozenset[str] = frozenset({"created_by"})


def canonical_json(obj: Any) -> bytes:
    """One byte string per value: sorted keys, no whitespace, UTF-8; dates and the like via str()."""
    return json.dumps(
        obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str
    ).encode("utf-8")


def sha256_hex(data: bytes | str) -> str:
    if isinstance(data, str):
        data = data.encode("utf-8")
    return hashlib.sha256(data).hexdigest()


def canonical_leaf(leaf: Leaf) -> bytes:
    """The normalised content of a leaf: its kind and its parsed data without non-generative fields."""
    data = {k: v for k, v in leaf.data.items() if k not in NON_GENERATIVE_FIELDS}
    return canonical_json({"kind": leaf.kind, "data": data})


def files_digest(paths: Sequence[Path]) -> str:
    """A digest of a set of files (the pipeline and prompt files): names relative to their common
    parent and contents, order-independent, so moving the checkout does not change it."""
    resolved = sorted({Path(p).resolve() for p in paths})
    if not resolved:
        return sha256_hex(b"")
    common = Path(*_common_parts([p.parts for p in resolved])) if len(resolved) > 1 else resolved[0].parent
    h = hashlib.sha256()
    for p in resolved:
        rel = p.relative_to(common).as_posix()
        h.update(rel.encode("utf-8") + b"\0")
        h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


def _common_parts(parts: list[tuple[str, ...]]) -> tuple[str, ...]:
    first = parts[0]
    n = len(first)
    for other in parts[1:]:
        n = min(n, len(other))
        for i in range(n):
            if other[i] != first[i]:
                n = i
                break
    # Never the file itself: at most the parent of the shortest path.
    return first[: min(n, min(len(p) for p in parts) - 1)]


def environment_digest(*, pipeline_digest: str, model_id: str, settings: Mapping[str, Any]) -> str:
    """Everything outside the leaf that shapes its data. Computed once per run."""
    return sha256_hex(
        canonical_json(
            {"v": KEY_VERSION, "pipeline": pipeline_digest, "model": model_id, "settings": dict(settings)}
        )
    )


def content_key(leaf: Leaf, documents: Iterable[bytes | str], env_digest: str) -> str:
    """The leaf's content key (64 hex digits)."""
    payload = {
        "v": KEY_VERSION,
        "leaf": sha256_hex(canonical_leaf(leaf)),
        "documents": [sha256_hex(d) for d in documents],
        "env": env_digest,
    }
    return sha256_hex(canonical_json(payload))
