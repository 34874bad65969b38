"""The taxonomy: finding, reading and validating qna.yaml leaves.

Public API (used by the other stages):
  find_leaves(root) -> list[str]            sorted posix paths of every qna.yaml under the three roots
  parse_leaf(path, data) -> Leaf            raises LeafError (with .findings) when it cannot be read
  load_leaf(root, path) -> Leaf
  validate(root, paths, config) -> list[Finding]   sorted; paths None = the whole taxonomy
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from labtax.errors import LabtaxError
from labtax.taxonomy.discover import find_leaves, find_targets, targets_for_paths
from labtax.taxonomy.model import KINDS, Finding, Leaf, kind_of

if TYPE_CHECKING:
    from labtax.taxonomy.config import Config

# The reader, the schema and the rules (engine, config) are imported by the functions that use them:
# `labtax diff` needs only the model (leaf paths and kinds) and must not pay for the validator.

__all__ = [
    "KINDS", "Finding", "Leaf", "LeafError", "check_targets", "collect_targets", "find_leaves", "kind_of", "load_leaf", "parse_leaf", "validate",
]


class LeafError(LabtaxError):
    """A leaf that cannot be parsed; `.findings` says why, with positions."""

    def __init__(self, path: str, findings: list[Finding]) -> None:
        first = findings[0] if findings else None
        detail = f"{first.line}:{first.col}: {first.message}" if first else "cannot be read"
        super().__init__(f"{path}:{detail}")
        self.path = path
        self.findings = findings


def parse_leaf(path: str, data: bytes) -> Leaf:
    """Parse and construct a leaf from its bytes. `path` is the posix path relative to the taxonomy root."""
    from labtax.taxonomy.config import DEFAULT_MAX_FILE_BYTES, DEFAULT_MAX_YAML_NODES
    from labtax.taxonomy.engine import leaf_version, parse_text

    kind = kind_of(path)
    if kind is None:
        raise LeafError(path, [Finding("leaf-location", "error", path, 1, 1,
                                       "a qna.yaml must live under one of the three taxonomy roots")])
    if len(data) > DEFAULT_MAX_FILE_BYTES:
        raise LeafError(path, [Finding("file-too-large", "error", path, 1, 1,
                                       f"file is larger than {DEFAULT_MAX_FILE_BYTES:,} bytes")])
    parsed, _text, findings = parse_text(path, data, DEFAULT_MAX_YAML_NODES)
    if parsed is None or not parsed.ok:
        raise LeafError(path, [f for f in findings if f.severity == "error"] or findings)
    version, problems = leaf_version(path, kind, parsed.value, parsed.positions)
    if version is None:
        raise LeafError(path, problems)
    return Leaf(path=path, kind=kind, data=parsed.value, version=version, positions=parsed.positions,
                key_positions=parsed.key_positions)


def load_leaf(root: Path, path: str) -> Leaf:
    """Read and parse `root/path` (same safety checks as validate: symlinks, size, file type)."""
    from labtax.taxonomy.config import DEFAULT_MAX_FILE_BYTES
    from labtax.taxonomy.engine import read_leaf_bytes

    data, findings = read_leaf_bytes(Path(root), path, DEFAULT_MAX_FILE_BYTES)
    if data is None:
        raise LeafError(path, findings)
    return parse_leaf(path, data)


def collect_targets(root: Path, paths: list[str] | None, cwd: Path | None = None) -> list[str]:
    """The files validate checks: the whole taxonomy when `paths` is None, else `paths` (relative to
    `cwd`, default the root) with directories expanded and attribution.txt mapped to its qna.yaml.
    Raises UsageError for a path that does not exist or lies outside the root."""
    root = Path(root)
    return find_targets(root) if paths is None else targets_for_paths(root, paths, cwd or root)


def check_targets(root: Path, targets: list[str], config: Config | None = None) -> list[Finding]:
    """Sorted findings, config applied, for already-collected root-relative targets."""
    from labtax.taxonomy.config import Config
    from labtax.taxonomy.engine import check_many, finalize

    config = config or Config()
    return finalize(check_many(Path(root), targets, config), config)


def validate(root: Path, paths: list[str] | None, config: Config | None = None) -> list[Finding]:
    """Sorted findings (config applied) for `paths` relative to `root` (None: the whole taxonomy)."""
    return check_targets(root, collect_targets(root, paths), config)
