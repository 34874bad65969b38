"""Reading and validating leaves: `parse_leaf`, `load_leaf` (a `LeafError` when a leaf cannot be
read), `check_targets` and `validate`. A module of its own, not the package's `__init__`, because
they need the YAML reader, the schema and the rules (labtax.taxonomy.engine), which `labtax diff`
(the package's model and discovery only) must not load."""

from __future__ import annotations

from pathlib import Path

from labtax.errors import LabtaxError
from labtax.taxonomy import collect_targets
from labtax.taxonomy.config import DEFAULT_MAX_FILE_BYTES, DEFAULT_MAX_YAML_NODES, Config
from labtax.taxonomy.engine import check_many, finalize, leaf_version, parse_text, read_leaf_bytes
from labtax.taxonomy.model import Finding, Leaf, kind_of


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
    data, findings = read_leaf_bytes(Path(root), path, DEFAULT_MAX_FILE_BYTES)
    if data is None:
        raise LeafError(path, findings)
    return parse_leaf(path, data)


def check_targets(root: Path, targets: list[str], config: Config | None = None) -> list[Finding]:
    """Sorted findings, config applied, for already-collected root-relative targets."""
    config = config or Config()
    return finalize(check_many(Path(root), targets, config), config)


def validate(root: Path, paths: list[str] | None, config: Config | None = None) -> list[Finding]:
    """Sorted findings (config applied) for `paths` relative to `root` (None: the whole taxonomy)."""
    return check_targets(root, collect_targets(root, paths), config)
