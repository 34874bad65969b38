"""The manifest (`manifest.json`): which leaves the sets were built from, and how.

Written last by `labtax diff-generate`, so a reader that finds it finds the sets it describes. The
one writer lays it out one top-level key per line and one leaf entry per line (the JSON pretty
printer is pure Python and slow on 1,000 leaves); any JSON reader reads it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypedDict

from labtax.data.names import MANIFEST
from labtax.errors import UsageError
from labtax.util.atomic import atomic_write_text


class LeafEntry(TypedDict, total=False):
    path: str  # the leaf's path at head (`.../qna.yaml`)
    key: str | None  # its content key in the leaf store
    kind: str
    status: str  # generated | reused | dropped | failed | invalid
    changed: bool  # changed in the diff (added, modified, renamed with edits)
    counts: dict[str, int]  # samples stored, in the training sets, test rows, replayed, overlapping
    tokens: int
    seconds: float
    generation: dict[str, Any]  # the leaf's generation funnel (requests, candidates, kept, by stage)
    error: str | None  # failed or invalid leaves: why


class Manifest(TypedDict, total=False):
    format: str  # "labtax-manifest/1"
    base: str | None
    head: str | None  # None: the working tree
    base_ref: str | None
    head_ref: str | None
    teacher_model: str
    settings: dict[str, Any]  # the generation settings
    mix: dict[str, Any]  # the mix settings
    sets: dict[str, dict[str, Any]]  # per set file: samples, bytes, sha256, mtime_ns
    fingerprint: str  # what the sets are a function of
    leaves: list[LeafEntry]
    phase1_steps: dict[str, int]  # --phase1 two-step only: short, long, foundational, step1_replay rows
    run: dict[str, Any]  # requests sent and replayed, tokens, seconds of the run that wrote it


def read_manifest(path: Path, *, strict: bool = False) -> Manifest | None:
    """The manifest at `path` (a file, or a directory holding `manifest.json`), None when there is none.
    An unreadable one is None too, unless `strict`: then it is a usage error naming the file."""
    if path.is_dir():
        path = path / MANIFEST
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or not isinstance(data.get("leaves"), list):
            raise TypeError("not a JSON object with a list of leaves")
        for entry in data["leaves"]:
            if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
                raise TypeError("a leaf entry without a path")
        sets = data.get("sets", {})
        if not isinstance(sets, dict) or not all(isinstance(v, dict) for v in sets.values()):
            raise TypeError("'sets' is not a mapping of set files")
        if not isinstance(data.get("fingerprint", ""), str) or not isinstance(data.get("run", {}), dict):
            raise TypeError("'fingerprint' or 'run' has the wrong type")
    except (OSError, ValueError, TypeError) as exc:
        if strict:
            raise UsageError(f"{path}: not a labtax manifest: {exc}") from None
        return None
    return data  # type: ignore[return-value]


def encode_manifest(manifest: Manifest) -> str:
    def one(value: Any) -> str:
        return json.dumps(value, sort_keys=True, ensure_ascii=False)

    parts = []
    for key in sorted(manifest):
        value = manifest[key]  # type: ignore[literal-required]
        if isinstance(value, list):
            body = ",\n".join(f"    {one(v)}" for v in value)
            parts.append(f"  {one(key)}: [\n{body}\n  ]" if value else f"  {one(key)}: []")
        else:
            parts.append(f"  {one(key)}: {one(value)}")
    return "{\n" + ",\n".join(parts) + "\n}\n"


def write_manifest(directory: Path, manifest: Manifest) -> None:
    """Write `directory/manifest.json` atomically."""
    atomic_write_text(directory / MANIFEST, encode_manifest(manifest))
