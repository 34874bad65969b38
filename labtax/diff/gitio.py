"""The stable import point for the diff's git layer (`labtax/sdg/incremental.py`, the diff stages,
tests and benchmarks import from here; docs/diff.md promises it).

The code lives in two modules:

- `labtax.diff.repository`: opening the repository that holds the taxonomy (`open_taxonomy`,
  `Taxonomy`), running git in it, and resolving refs.
- `labtax.diff.contents`: reading what is in the taxonomy at a revision: `read_blob`, `read_blobs`,
  `list_leaves_at`, `leaf_files_at`, `BlobReader`, and the path and object-name helpers.
"""

from __future__ import annotations

from labtax.diff.contents import (
    BlobReader,
    blob_sha,
    is_leaf_path,
    leaf_files_at,
    list_leaves_at,
    null_sha,
    read_blob,
    read_blobs,
    split_z,
)
from labtax.diff.repository import (
    DEFAULT_BASES,
    EMPTY,
    Job,
    RevRange,
    Taxonomy,
    check_ref_syntax,
    check_repository_usable,
    empty_tree,
    head_is_born,
    is_shallow,
    merge_base_range,
    open_taxonomy,
    resolve_commit,
    try_merge_base_range,
)

# Listed so that linters and type checkers treat these imports as this module's public names.
__all__ = [
    "DEFAULT_BASES",
    "EMPTY",
    "BlobReader",
    "Job",
    "RevRange",
    "Taxonomy",
    "blob_sha",
    "check_ref_syntax",
    "check_repository_usable",
    "empty_tree",
    "head_is_born",
    "is_leaf_path",
    "is_shallow",
    "leaf_files_at",
    "list_leaves_at",
    "merge_base_range",
    "null_sha",
    "open_taxonomy",
    "read_blob",
    "read_blobs",
    "resolve_commit",
    "split_z",
    "try_merge_base_range",
]
