"""`diff_taxonomy` and `changed_leaves`: the range and its changed files (`changes`), then the leaf
rules (`classify`)."""

from __future__ import annotations

import os

from labtax.diff.changes import range_and_files, spawn_untracked
from labtax.diff.classify import Classifier
from labtax.diff.contents import BlobReader, split_z
from labtax.diff.model import DiffResult, LeafChange
from labtax.diff.repository import open_taxonomy


def diff_taxonomy(
    repo: str | os.PathLike[str], base: str | None = None, head: str | None = None
) -> DiffResult:
    """The changed leaves of the taxonomy folder `repo` from the merge-base of `base` and `head`.

    `base`: a ref (branch, tag, SHA, `HEAD~3`, `origin/main`), `"empty"` (every leaf is added), or None
    (origin/main, else main). `head`: a ref, or None for the working tree (staged, unstaged and
    untracked-but-not-ignored files). Raises `GitError` (exit 2) for a folder outside git, an unknown
    ref, an empty repository, a shallow clone missing the merge-base, or no base to default to.
    """
    with open_taxonomy(repo) as tax:
        # Work that needs no ref starts first and runs while rev-parse and diff do.
        untracked = spawn_untracked(tax) if head is None else None
        # cat-file starts only when needed: started eagerly it measured slower (one more process
        # competing for the CPU while rev-parse and diff run).
        reader = BlobReader(tax)
        try:
            rng, files = range_and_files(tax, base, head, untracked)
            listed = split_z(untracked.result()) if untracked is not None and rng.head is None else None
            changes = Classifier(tax, rng, files, reader, listed).run()
        finally:
            if untracked is not None:
                untracked.cancel()
            reader.close()
        return DiffResult(rng.base, rng.head, changes)


def changed_leaves(
    repo: str | os.PathLike[str], base: str | None = None, head: str | None = None
) -> list[LeafChange]:
    """The changes of `diff_taxonomy(repo, base, head)`, sorted by path."""
    return diff_taxonomy(repo, base, head).changes

