"""The data `labtax diff` returns: one `LeafChange` per changed leaf, gathered in a `DiffResult`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from labtax.taxonomy.model import Kind

Status = Literal["added", "modified", "deleted", "renamed"]
Reason = Literal["qna", "attribution", "document"]

STATUSES: tuple[Status, ...] = ("added", "modified", "deleted", "renamed")
# The canonical order of `reasons`, so that output never depends on the order changes were found in.
REASONS: tuple[Reason, ...] = ("qna", "attribution", "document")
LETTERS: dict[str, str] = {"added": "A", "modified": "M", "deleted": "D", "renamed": "R"}


@dataclass(frozen=True)
class LeafChange:
    """One changed leaf.

    Fields in the order of the JSON shape: `status`, `path` (the posix path of the qna.yaml relative to
    the taxonomy root; for a deleted leaf where it was, for a renamed one where it is now), `old_path`
    (where a renamed leaf was; None otherwise), `kind` (the kind at `path`), and `reasons`: which of
    the leaf's inputs changed, in the order of `REASONS`: `qna` (the qna.yaml's bytes), `attribution`
    (the attribution.txt beside it), `document` (the knowledge document reference, or a document
    inside the repository that it points to). A pure rename or move has no reasons.
    """

    status: Status
    path: str
    old_path: str | None
    kind: Kind
    reasons: tuple[Reason, ...] = ()

    @property
    def letter(self) -> str:
        """The one-letter status of the text output: A, M, D or R."""
        return LETTERS[self.status]

    def sort_key(self) -> tuple[str, str]:
        return (self.path, self.status)

    def to_dict(self) -> dict[str, Any]:
        """The stable JSON shape: status, path, old_path (null unless renamed), kind, reasons."""
        return {
            "status": self.status,
            "path": self.path,
            "old_path": self.old_path,
            "kind": self.kind,
            "reasons": list(self.reasons),
        }


@dataclass(frozen=True)
class DiffResult:
    """The changed leaves between `base` and `head`.

    `base` is the full SHA the comparison starts from: the merge-base of the requested base and head
    (or the empty tree's SHA for `--base empty`). `head` is the head commit's full SHA, or None when
    the working tree was compared.
    """

    base: str
    head: str | None
    changes: list[LeafChange] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"base": self.base, "head": self.head, "changes": [c.to_dict() for c in self.changes]}
