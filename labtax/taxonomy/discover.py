"""Finding the files to validate: every leaf under the three roots, or what the user named.

Walks never follow directory symlinks (no loops, no escaping the repository) and skip hidden
directories (`.git`, a knowledge example's `.documents/`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from labtax.errors import UsageError
from labtax.taxonomy.model import ATTRIBUTION_FILENAME, KINDS, LEAF_FILENAME

_SKIP_DIRS = {"node_modules", "__pycache__", "venv"}


def looks_like_leaf(name: str) -> bool:
    """`qna.yaml` and its common misspellings (`qna.yml`, `QNA.yaml`), which get a rename hint."""
    return name.lower() in ("qna.yaml", "qna.yml")


def _walk(root: Path, rel: str) -> Iterator[str]:
    """Posix paths (relative to root) of leaf-like entries under root/rel, any file type."""
    stack = [rel]
    while stack:
        current = stack.pop()
        try:
            entries = list(os.scandir(root / current if current else root))
        except OSError:
            continue  # an unreadable directory holds nothing we can validate
        for entry in entries:
            child = f"{current}/{entry.name}" if current else entry.name
            if looks_like_leaf(entry.name):
                yield child  # files, symlinks, FIFOs, even a directory named qna.yaml: all reported
                continue
            if entry.is_dir(follow_symlinks=False) and not entry.name.startswith(".") and entry.name not in _SKIP_DIRS:
                stack.append(child)


def find_leaves(root: Path) -> list[str]:
    """Sorted posix paths, relative to `root`, of every file named exactly qna.yaml under the three roots."""
    found: list[str] = []
    for kind in KINDS:
        if (root / kind).is_dir():
            found.extend(
                p for p in _walk(root, kind)
                if PurePosixPath(p).name == LEAF_FILENAME and not (root / p).is_dir()
            )
    return sorted(found)


def find_targets(root: Path, under: str = "") -> list[str]:
    """What `labtax validate` checks by default: leaves, misnamed leaves, and qna.yaml files anywhere
    else in the repository (reported as misplaced)."""
    return sorted(set(_walk(root, under)))


def _relative(root: Path, given: str, cwd: Path) -> str:
    absolute = os.path.abspath(os.path.join(cwd, given))
    root_abs = os.path.abspath(root)
    rel = os.path.relpath(absolute, root_abs)
    if rel == ".." or rel.startswith("../") or os.path.isabs(rel):
        # The same place reached through a symlinked directory: compare real parents.
        parent = os.path.realpath(os.path.dirname(absolute))
        rel = os.path.relpath(os.path.join(parent, os.path.basename(absolute)), os.path.realpath(root_abs))
        if rel == ".." or rel.startswith("../"):
            raise UsageError(f"{given}: outside the taxonomy {root}", hint="pass --taxonomy DIR")
    return "" if rel == "." else PurePosixPath(Path(rel)).as_posix()


def targets_for_paths(root: Path, paths: list[str], cwd: Path | None = None) -> list[str]:
    """Map the PATHS a user (or pre-commit) passed to leaf files: directories expand to their leaves,
    an attribution.txt stands for the qna.yaml beside it."""
    cwd = cwd or Path.cwd()
    out: set[str] = set()
    for given in paths:
        full = os.path.join(cwd, given)
        if not os.path.lexists(full):
            raise UsageError(f"{given}: no such file or directory")
        rel = _relative(root, given, cwd)
        name = PurePosixPath(rel).name
        if os.path.isdir(full) and not os.path.islink(full) and not looks_like_leaf(name):
            out.update(find_targets(root, rel))
        elif name == ATTRIBUTION_FILENAME:
            sibling = str(PurePosixPath(rel).parent / LEAF_FILENAME) if "/" in rel else LEAF_FILENAME
            if os.path.lexists(root / sibling):
                out.add(sibling)
        else:
            out.add(rel)
    return sorted(out)


def git_toplevel(start: Path) -> Path | None:
    """The work tree holding `start` (a `.git` directory or file above it), found without running git."""
    current = start.resolve()
    for candidate in (current, *current.parents):
        if (candidate / ".git").exists():
            return candidate
    return None
