"""The manifest (`manifest.json`): which leaves the sets were built from, and how.

Written last by `labtax diff-generate` (and `labtax generate`'s `sets/`), so a reader that finds it
finds the sets it describes. One record, `Manifest`, with its leaves (`LeafEntry`), their
generation numbers (`GenerationStats`), the set files (`SetFile`) and the run (`RunSummary`): frozen
dataclasses that every writer builds whole (a field left out is a TypeError where the manifest is
built, not a key silently missing on disk) and every reader reads by attribute. `to_json` and
`from_json` are the one mapping to and from the JSON on disk; the reader fills what an older or
hand-written manifest lacks with the empty value of its type.

The one writer lays it out one top-level key per line and one leaf entry per line (the JSON pretty
printer is pure Python and slow on 1,000 leaves); any JSON reader reads it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

from labtax.data.names import MANIFEST, MANIFEST_FORMAT
from labtax.errors import UsageError
from labtax.util.atomic import atomic_write_text

LeafStatus = Literal["generated", "reused", "dropped", "failed", "invalid"]
# The generation numbers a leaf's manifest entry records, as the pipelines count them (int unless
# said): JSON keys in this order. Knowledge leaves have all of them, skills leaves a few.
_NUMBERS = ("quota", "requests_wanted", "max_requests_bound", "request_limit", "chunks", "chunks_asked",
            "chunks_covered", "facts", "facts_asked", "facts_covered", "facts_with_wordings", "reworded", "wordings",
            "seeds_used", "documents", "generated", "kept", "requests")


def _counts(value: Any) -> dict[str, int]:
    return {str(k): int(v) for k, v in value.items()} if isinstance(value, Mapping) else {}


@dataclass(frozen=True)
class MultipleChoice:
    """A knowledge leaf's multiple-choice test items: written, kept, and why the others were dropped."""

    generated: int
    kept: int
    dropped: Mapping[str, int]

    def to_json(self) -> dict[str, Any]:
        return {"generated": self.generated, "kept": self.kept, "dropped": dict(self.dropped)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MultipleChoice:
        return cls(int(data.get("generated") or 0), int(data.get("kept") or 0), _counts(data.get("dropped")))


@dataclass(frozen=True)
class JudgeCalibration:
    """One judge's per-leaf calibration, without its example values."""

    status: str | None
    auc: float | None
    threshold: float | None

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "auc": self.auc, "threshold": self.threshold}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> JudgeCalibration:
        return cls(data.get("status"), data.get("auc"), data.get("threshold"))


@dataclass(frozen=True)
class GenerationStats:
    """A leaf's generation as the manifest and the reports see it: its volume numbers (None: the
    leaf's pipeline does not count it), its funnel (asked -> parsed -> ... -> kept, pipeline order) and
    its drop reasons. Built from a pipeline's stats by `from_stats`, at the runner."""

    funnel: Mapping[str, int] = field(default_factory=dict)
    dropped: Mapping[str, int] = field(default_factory=dict)
    quota: int | None = None
    requests_wanted: int | None = None
    max_requests_bound: bool | None = None
    request_limit: int | None = None
    chunks: int | None = None
    chunks_asked: int | None = None
    chunks_covered: int | None = None
    facts: int | None = None
    facts_asked: int | None = None
    facts_covered: int | None = None
    facts_with_wordings: int | None = None
    reworded: int | None = None  # wordings the reword stage added (knowledge)
    wordings: int | None = None
    seeds_used: int | None = None
    documents: int | None = None
    generated: int | None = None
    kept: int | None = None
    requests: int | None = None
    chunks_sized_by: str | None = None  # "teacher tokenizer" or the words x 1.3 estimate
    document_readers: Mapping[str, int] | None = None  # reader -> documents it read
    mc: MultipleChoice | None = None
    calibration: Mapping[str, JudgeCalibration] = field(default_factory=dict)  # judge stage -> calibration

    @classmethod
    def from_stats(cls, stats: Mapping[str, Any]) -> GenerationStats:
        """What the manifest records of a pipeline's stats (`LeafResult.stats`, the store's meta)."""
        return cls.from_json(stats)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> GenerationStats:
        numbers: dict[str, Any] = {}
        for key in _NUMBERS:
            if data.get(key) is not None:
                numbers[key] = bool(data[key]) if key == "max_requests_bound" else int(data[key])
        mc, readers, calibration = data.get("mc"), data.get("document_readers"), data.get("calibration")
        return cls(
            funnel=_counts(data.get("funnel")), dropped=_counts(data.get("dropped")), **numbers,
            chunks_sized_by=str(data["chunks_sized_by"]) if data.get("chunks_sized_by") is not None else None,
            document_readers=_counts(readers) if isinstance(readers, Mapping) else None,
            mc=MultipleChoice.from_json(mc) if isinstance(mc, Mapping) else None,
            calibration={str(k): JudgeCalibration.from_json(v) for k, v in calibration.items()
                         if isinstance(v, Mapping)} if isinstance(calibration, Mapping) else {},
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {k: getattr(self, k) for k in _NUMBERS if getattr(self, k) is not None}
        if self.mc is not None:
            out["mc"] = self.mc.to_json()
        if self.chunks_sized_by is not None:
            out["chunks_sized_by"] = self.chunks_sized_by
        if self.document_readers is not None:
            out["document_readers"] = dict(self.document_readers)
        if self.funnel:
            out["funnel"] = dict(self.funnel)
        if self.dropped:
            out["dropped"] = dict(self.dropped)
        if self.calibration:
            out["calibration"] = {k: v.to_json() for k, v in self.calibration.items()}
        return out


def coverage_text(stats: GenerationStats) -> str:
    """'; chunks covered 7/7; facts covered 30/35, 28 in two wordings or more (20 reworded)' of a knowledge
    leaf's generation ('' for others)."""
    out = ""
    if stats.chunks_covered is not None and stats.chunks:
        out += f"; chunks covered {stats.chunks_covered}/{stats.chunks}"
    if stats.facts_covered is not None and stats.facts:
        out += f"; facts covered {stats.facts_covered}/{stats.facts}"
        if stats.facts_with_wordings is not None and stats.facts_covered:
            out += f", {stats.facts_with_wordings} in two wordings or more"
            if stats.reworded:
                out += f" ({stats.reworded} reworded)"
    return out


@dataclass(frozen=True)
class LeafEntry:
    """One leaf of the run: where it is, its content key, what the run did with it and what it holds."""

    path: str  # the leaf's path at head (`.../qna.yaml`)
    key: str | None  # its content key in the leaf store (None: an invalid leaf, or a manifest of an older generate)
    kind: str
    status: LeafStatus
    changed: bool  # changed in the diff (added, modified, renamed with edits)
    counts: Mapping[str, int]  # samples stored, in the training sets, test rows, replayed, overlapping
    tokens: int
    seconds: float
    generation: GenerationStats | None = None  # generated and reused leaves: their funnel
    error: str | None = None  # failed or invalid leaves: why

    @property
    def has_data(self) -> bool:
        """Generated or reused: the sets hold its rows."""
        return self.status in ("generated", "reused")

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path, "key": self.key, "kind": self.kind, "status": self.status,
                               "changed": self.changed, "counts": dict(self.counts), "tokens": self.tokens,
                               "seconds": self.seconds}
        # On disk as before: a leaf with data has `generation`, a failed or invalid one `error`.
        if self.has_data:
            out["generation"] = self.generation.to_json() if self.generation is not None else {}
        if self.status in ("failed", "invalid"):
            out["error"] = self.error
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LeafEntry:
        gen = data.get("generation")
        return cls(path=str(data["path"]), key=data.get("key"), kind=str(data.get("kind") or ""),
                   status=cast(LeafStatus, str(data.get("status") or "")), changed=bool(data.get("changed")),
                   counts=_counts(data.get("counts")), tokens=int(data.get("tokens") or 0),
                   seconds=float(data.get("seconds") or 0.0),
                   generation=GenerationStats.from_json(gen) if isinstance(gen, Mapping) else None,
                   error=data.get("error"))


@dataclass(frozen=True)
class SetFile:
    """A set file as written: rows, size, sha256, and the mtime a cheap intactness check compares."""

    samples: int
    bytes: int | None
    sha256: str | None
    mtime_ns: int | None

    def to_json(self) -> dict[str, Any]:
        return {"samples": self.samples, "bytes": self.bytes, "sha256": self.sha256, "mtime_ns": self.mtime_ns}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SetFile:
        return cls(int(data.get("samples") or 0), data.get("bytes"), data.get("sha256"), data.get("mtime_ns"))


@dataclass(frozen=True)
class FaultSummary:
    """Teacher requests retried, failed after every retry, or answered with nothing readable, and why."""

    retried: int = 0
    failed: int = 0
    unreadable: int = 0
    reasons: Mapping[str, int] = field(default_factory=dict)

    @property
    def clean(self) -> bool:
        return not (self.retried or self.failed or self.unreadable or self.reasons)

    def to_json(self) -> dict[str, Any]:
        return {"retried": self.retried, "failed": self.failed, "unreadable": self.unreadable,
                "reasons": dict(sorted(self.reasons.items()))}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FaultSummary:
        return cls(int(data.get("retried") or 0), int(data.get("failed") or 0), int(data.get("unreadable") or 0),
                   _counts(data.get("reasons")))


@dataclass(frozen=True)
class RunSummary:
    """What the run that wrote the manifest cost: requests sent and replayed, tokens, seconds, faults."""

    requests_sent: int
    requests_replayed: int
    tokens: int
    seconds: float
    faults: FaultSummary

    def to_json(self) -> dict[str, Any]:
        return {"requests_sent": self.requests_sent, "requests_replayed": self.requests_replayed,
                "tokens": self.tokens, "seconds": round(self.seconds, 3), "faults": self.faults.to_json()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunSummary:
        faults = data.get("faults")
        return cls(int(data.get("requests_sent") or 0), int(data.get("requests_replayed") or 0),
                   int(data.get("tokens") or 0), float(data.get("seconds") or 0.0),
                   FaultSummary.from_json(faults if isinstance(faults, Mapping) else {}))


@dataclass(frozen=True)
class Manifest:
    """The record of the sets in one output directory (`manifest.json`)."""

    base: str | None
    head: str | None  # None: the working tree
    base_ref: str | None
    head_ref: str | None
    teacher_model: str
    settings: Mapping[str, Any]  # the generation settings (free-form: what the content keys hash)
    mix: Mapping[str, Any]  # the mix settings (`MixSettings.as_dict()`)
    sets: Mapping[str, SetFile]  # per set file
    fingerprint: str  # what the sets are a function of
    leaves: tuple[LeafEntry, ...]
    run: RunSummary
    phase1_steps: Mapping[str, int] | None = None  # --phase1 two-step only: short, long, ... rows
    format: str = MANIFEST_FORMAT

    def leaf(self, path: str) -> LeafEntry | None:
        return next((e for e in self.leaves if e.path == path), None)

    @property
    def system_prompt(self) -> str | None:
        """The mix's system turn when the manifest records one ("" : the sets have none)."""
        value = self.mix.get("system_prompt")
        return value if isinstance(value, str) else None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "format": self.format, "base": self.base, "head": self.head, "base_ref": self.base_ref,
            "head_ref": self.head_ref, "teacher_model": self.teacher_model, "settings": dict(self.settings),
            "mix": dict(self.mix), "sets": {name: info.to_json() for name, info in self.sets.items()},
            "fingerprint": self.fingerprint, "leaves": [e.to_json() for e in self.leaves],
            "run": self.run.to_json(),
        }
        if self.phase1_steps:
            out["phase1_steps"] = dict(self.phase1_steps)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Manifest:
        """A manifest from its JSON; what an older or hand-written one lacks is empty. Raises TypeError
        (or ValueError, KeyError) on a shape that is not a manifest's."""
        if not isinstance(data, Mapping) or not isinstance(data.get("leaves"), list):
            raise TypeError("not a JSON object with a list of leaves")
        for entry in data["leaves"]:
            if not isinstance(entry, Mapping) or not isinstance(entry.get("path"), str):
                raise TypeError("a leaf entry without a path")
        sets = data.get("sets", {})
        if not isinstance(sets, Mapping) or not all(isinstance(v, Mapping) for v in sets.values()):
            raise TypeError("'sets' is not a mapping of set files")
        if not isinstance(data.get("fingerprint", ""), str) or not isinstance(data.get("run", {}), Mapping):
            raise TypeError("'fingerprint' or 'run' has the wrong type")
        mix, settings, steps = data.get("mix"), data.get("settings"), data.get("phase1_steps")
        return cls(
            base=data.get("base"), head=data.get("head"), base_ref=data.get("base_ref"), head_ref=data.get("head_ref"),
            teacher_model=str(data.get("teacher_model") or ""),
            settings=dict(settings) if isinstance(settings, Mapping) else {},
            mix=dict(mix) if isinstance(mix, Mapping) else {},
            sets={str(name): SetFile.from_json(info) for name, info in sets.items()},
            fingerprint=str(data.get("fingerprint") or ""),
            leaves=tuple(LeafEntry.from_json(e) for e in data["leaves"]),
            run=RunSummary.from_json(data.get("run") or {}),
            phase1_steps=_counts(steps) if isinstance(steps, Mapping) and steps else None,
            format=str(data.get("format") or MANIFEST_FORMAT),
        )


def read_manifest(path: Path, *, strict: bool = False) -> Manifest | None:
    """The manifest at `path` (a file, or a directory holding `manifest.json`), None when there is none.
    An unreadable one is None too, unless `strict`: then it is a usage error naming the file."""
    if path.is_dir():
        path = path / MANIFEST
    if not path.is_file():
        return None
    try:
        return Manifest.from_json(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        if strict:
            raise UsageError(f"{path}: not a labtax manifest: {exc}") from None
        return None


def encode_manifest(manifest: Manifest) -> str:
    def one(value: Any) -> str:
        return json.dumps(value, sort_keys=True, ensure_ascii=False)

    data = manifest.to_json()
    parts = []
    for key in sorted(data):
        value = data[key]
        if isinstance(value, list):
            body = ",\n".join(f"    {one(v)}" for v in value)
            parts.append(f"  {one(key)}: [\n{body}\n  ]" if value else f"  {one(key)}: []")
        else:
            parts.append(f"  {one(key)}: {one(value)}")
    return "{\n" + ",\n".join(parts) + "\n}\n"


def write_manifest(directory: Path, manifest: Manifest) -> None:
    """Write `directory/manifest.json` atomically."""
    atomic_write_text(directory / MANIFEST, encode_manifest(manifest))
