"""From changed files to changed LEAVES: the rules for qna.yaml, attribution.txt and documents.

Blobs are read only for edited knowledge qna.yaml files (to compare their document references) and,
when a non-leaf file inside the taxonomy changed (it may be a document), to find the knowledge leaves
whose document it is: all through one `git cat-file --batch`, started on first need.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field

from labtax.diff import documents
from labtax.diff.changes import FileChange, Range
from labtax.diff.contents import BlobReader, is_leaf_path, leaf_files_at
from labtax.diff.model import REASONS, LeafChange, Reason, Status
from labtax.diff.repository import Taxonomy
from labtax.taxonomy.model import ATTRIBUTION_FILENAME, LEAF_FILENAME, kind_of


@dataclass
class _Acc:
    """A leaf change being assembled (mutable until it becomes a LeafChange)."""

    status: Status
    path: str
    old_path: str | None = None
    reasons: set[Reason] = field(default_factory=set)
    qna: FileChange | None = None  # the qna.yaml's own file change, if any

    def freeze(self) -> LeafChange:
        kind = kind_of(self.path)
        assert kind is not None  # only paths under a kind root become leaves
        reasons = tuple(r for r in REASONS if r in self.reasons)
        return LeafChange(
            self.status, self.path, self.old_path if self.status == "renamed" else None, kind, reasons
        )


def _attribution_leaf(tax: Taxonomy, repo_path: str | None) -> str | None:
    """The taxonomy-relative qna.yaml beside an attribution.txt under a kind root, if it is one."""
    rel = tax.from_repo(repo_path) if repo_path is not None else None
    if rel is None or posixpath.basename(rel) != ATTRIBUTION_FILENAME or kind_of(rel) is None:
        return None
    leaf = posixpath.join(posixpath.dirname(rel), LEAF_FILENAME)
    return leaf if is_leaf_path(leaf) else None


class Classifier:
    """Turns the changed files of one range into sorted `LeafChange`s."""

    def __init__(
        self,
        tax: Taxonomy,
        rng: Range,
        files: list[FileChange],
        reader: BlobReader,
        untracked: list[str] | None = None,
    ) -> None:
        self.tax = tax
        self.untracked = untracked  # working tree: the untracked files, already listed once
        self.rng = rng
        self.files = files
        self.reader = reader
        # Keyed by (deleted?, path): a deleted leaf and a new one may share a path in odd histories.
        self.leaves: dict[tuple[bool, str], _Acc] = {}
        self.renamed_from: dict[str, str] = {}  # old leaf path -> new leaf path

    def run(self) -> list[LeafChange]:
        self._leaf_files()
        self._attributions()
        self._document_references()
        self._documents()
        return sorted((acc.freeze() for acc in self.leaves.values()), key=LeafChange.sort_key)

    # -- qna.yaml files
    def _leaf_files(self) -> None:
        for fc in self.files:
            old = self._leaf(fc.old_path)
            new = self._leaf(fc.new_path)
            if fc.status == "R" and old and new:
                reasons: set[Reason] = set() if fc.same_bytes() else {"qna"}
                self._put(_Acc("renamed", new, old, reasons, fc))
                self.renamed_from[old] = new
                continue
            if fc.status == "M" and new:
                if not fc.same_bytes():  # a mode-only change of a qna.yaml changes nothing
                    self._put(_Acc("modified", new, None, {"qna"}, fc))
                continue
            if old and fc.status in ("D", "R"):
                self._put(_Acc("deleted", old, None, {"qna"}, fc))
            if new and fc.status in ("A", "R"):
                self._put(_Acc("added", new, None, {"qna"}, fc))

    def _leaf(self, repo_path: str | None) -> str | None:
        rel = self.tax.from_repo(repo_path) if repo_path is not None else None
        return rel if rel is not None and is_leaf_path(rel) else None

    def _put(self, acc: _Acc) -> None:
        self.leaves[(acc.status == "deleted", acc.path)] = acc

    # -- attribution.txt beside a leaf
    def _attributions(self) -> None:
        touched: set[tuple[bool, str]] = set()
        for fc in self.files:
            old = _attribution_leaf(self.tax, fc.old_path)
            new = _attribution_leaf(self.tax, fc.new_path)
            if fc.status == "R" and old and new and fc.same_bytes() and self.renamed_from.get(old) == new:
                continue  # moved along with its leaf, unchanged
            if fc.status == "M" and fc.same_bytes():
                continue
            if new:
                touched.add((False, new))
            if old and fc.status != "M":
                touched.add(self._head_key(old))
        for key in touched:
            if key in self.leaves:
                self.leaves[key].reasons.add("attribution")
        # An attribution changed beside a leaf whose qna.yaml did not: is there a leaf at head?
        unchanged = sorted(
            path for deleted, path in touched if not deleted and (False, path) not in self.leaves
        )
        found = self.reader.at_many(self.rng.head, [self.tax.to_repo(p) for p in unchanged])
        for path, data in zip(unchanged, found):
            if data is not None:
                self._put(_Acc("modified", path, None, {"attribution"}))

    def _head_key(self, old_leaf: str) -> tuple[bool, str]:
        """Where a base-side leaf path lives in the result: renamed, deleted, or unchanged."""
        if old_leaf in self.renamed_from:
            return (False, self.renamed_from[old_leaf])
        if (True, old_leaf) in self.leaves:
            return (True, old_leaf)
        return (False, old_leaf)

    # -- knowledge: the document reference inside a changed qna.yaml
    def _document_references(self) -> None:
        edited = [
            acc
            for acc in self.leaves.values()
            if acc.status in ("modified", "renamed")
            and "qna" in acc.reasons
            and acc.qna is not None
            and "knowledge" in (kind_of(acc.path), kind_of(acc.old_path or ""))
        ]
        if not edited:
            return
        # Both sides of every edited knowledge qna.yaml in one batch: SHAs from git, else the disk.
        names = [n for acc in edited for n in (acc.qna.old_sha or "", acc.qna.new_sha or "")]  # type: ignore[union-attr]
        blobs = self.reader.read_many(names)
        for i, acc in enumerate(edited):
            fc = acc.qna
            assert fc is not None
            old, new = blobs[2 * i], blobs[2 * i + 1]
            if fc.new_sha is None and fc.new_path is not None:
                new = self.reader.at(None, fc.new_path)
            if documents.references_changed(old, new):
                acc.reasons.add("document")

    # -- knowledge: a document inside the repository changed
    def _documents(self) -> None:
        candidates = sorted(
            {
                p
                for fc in self.files
                for p in fc.paths()
                # Documents live inside the taxonomy root (document.repo may not climb out of it).
                if self.tax.from_repo(p) is not None
                and not self._leaf(p)
                and not _attribution_leaf(self.tax, p)
            }
        )
        if not candidates:
            return  # the usual case: only leaves changed, no scan at all
        leaves = leaf_files_at(self.tax, self.rng.head, kinds=("knowledge",), untracked=self.untracked)
        if self.rng.head is None:
            blobs = self.reader.at_many(None, [self.tax.to_repo(leaf) for _sha, leaf in leaves])
        else:
            blobs = self.reader.read_bulk([sha or "" for sha, _leaf in leaves])
        for (_sha, leaf), data in zip(leaves, blobs):
            docs = documents.local_documents(data or b"", self.tax.prefix)
            if docs is None or not any(docs.matches(p) for p in candidates):
                continue
            acc = self.leaves.get((False, leaf))
            if acc is None:
                self._put(_Acc("modified", leaf, None, {"document"}))
            else:
                acc.reasons.add("document")
