"""The taxonomy: finding, reading and validating qna.yaml leaves.

Public API (used by the other stages):
  find_leaves(root) -> list[str]            sorted posix paths of every qna.yaml under the three roots
  collect_targets(root, paths) -> list[str] the files validate checks
  labtax.taxonomy.leaves: parse_leaf(path, data) -> Leaf (raises LeafError), load_leaf(root, path),
  validate(root, paths, config) -> list[Finding] (sorted; paths None = the whole taxonomy)

This package's own import stays light (the model and discovery): `labtax diff` needs only leaf
paths and kinds and must not pay for the reader, the schema and the rules, which `leaves.py` loads.
"""

from __future__ import annotations

from pathlib import Path

from labtax.taxonomy.discover import find_leaves, find_targets, targets_for_paths
from labtax.taxonomy.model import KINDS, Finding, Leaf, kind_of

__all__ = ["KINDS", "Finding", "Leaf", "collect_targets", "find_leaves", "kind_of"]


def collect_targets(root: Path, paths: list[str] | None, cwd: Path | None = None) -> list[str]:
    """The files validate checks: the whole taxonomy when `paths` is None, else `paths` (relative to
    `cwd`, default the root) with directories expanded and attribution.txt mapped to its qna.yaml.
    Raises UsageError for a path that does not exist or lies outside the root."""
    root = Path(root)
    return find_targets(root) if paths is None else targets_for_paths(root, paths, cwd or root)
