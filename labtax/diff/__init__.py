"""`labtax diff`: which taxonomy leaves changed between two revisions, or a revision and the working tree.

The API later stages call (all paths are posix, relative to the TAXONOMY root, which may be a
subfolder of the git working tree):

- `diff_taxonomy(repo, base=None, head=None) -> DiffResult(base, head, changes)`
- `changed_leaves(repo, base=None, head=None) -> list[LeafChange]` (sorted by path)
- `LeafChange(status, path, kind, reasons, old_path)`, frozen; `to_dict()` gives the JSON shape
  `{"status", "path", "old_path", "kind", "reasons"}`.
- `read_blob(repo, ref, path) -> bytes`, `read_blobs(repo, ref, paths) -> dict[str, bytes]`,
  `list_leaves_at(repo, ref) -> list[str]`: reading leaves at a ref (None = the working tree).

`repo` is the taxonomy folder. `base`: a ref, `"empty"`, or None for origin/main, else main; the
comparison starts at the merge-base of base and head (like `git diff base...head`). `head`: a ref, or
None for the working tree (staged, unstaged and untracked-but-not-ignored files). Errors are
`labtax.errors.GitError` (exit 2). See docs/diff.md.
"""

from __future__ import annotations

from labtax.diff.contents import list_leaves_at, read_blob, read_blobs
from labtax.diff.engine import changed_leaves, diff_taxonomy
from labtax.diff.model import REASONS, STATUSES, DiffResult, LeafChange
from labtax.diff.repository import EMPTY

__all__ = [
    "EMPTY",
    "REASONS",
    "STATUSES",
    "DiffResult",
    "LeafChange",
    "changed_leaves",
    "diff_taxonomy",
    "list_leaves_at",
    "read_blob",
    "read_blobs",
]
