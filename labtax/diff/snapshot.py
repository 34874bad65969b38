"""A snapshot of the leaves at one revision with cheap change detectors, for callers that must notice
a change without parsing every leaf (diff-generate's planning): the qna.yaml blob id of each leaf
and fingerprints of folders (git tree ids at a commit; names, sizes and mtimes in the working tree).

A qna.yaml is read the way `validate` reads it: a symlink leaving the repository (absolute, or `../`
out of it, in the working tree or as committed) is never followed; its findings are in `problems`
and the leaf has no bytes. A committed symlink inside the repository is read at its target."""

from __future__ import annotations

import hashlib
import os
import posixpath
from pathlib import Path

from labtax.diff.contents import BlobReader, blob_sha, is_leaf_path, leaf_files_at, split_z
from labtax.diff.repository import Taxonomy
from labtax.taxonomy.config import DEFAULT_MAX_FILE_BYTES
from labtax.taxonomy.engine import attribution_path, read_leaf_bytes
from labtax.taxonomy.model import Finding

SYMLINK_MODE = "120000"


class Snapshot:
    """The leaves at head with cheap change detectors: the qna.yaml blob id and folder fingerprints
    (git tree ids at a commit; names, sizes and mtimes in the working tree)."""

    def __init__(self, tax: Taxonomy, commit: str | None, max_bytes: int = DEFAULT_MAX_FILE_BYTES) -> None:
        self.tax = tax
        self.commit = commit
        self.blobs: dict[str, str] = {}
        self.data: dict[str, bytes] = {}
        self.problems: dict[str, list[Finding]] = {}  # leaves that cannot be read safely, and why
        self._links: dict[str, str] = {}  # leaf -> repo path of its (inside) symlink target, at commit
        self._trees: dict[str, str] = {}
        self._fp_cache: dict[str, str] = {}
        if commit is None:
            for _sha, path in leaf_files_at(tax, None):
                raw, problems = read_leaf_bytes(tax.worktree, tax.to_repo(path), max_bytes)
                if raw is None:
                    self.problems[path] = [_relabel(f, path) for f in problems]
                    self.blobs[path] = "unreadable"
                    continue
                self.data[path] = raw
                self.blobs[path] = blob_sha(raw)
        else:
            args = ["ls-tree", "-r", "-t", "-z", "--full-tree", commit]
            if tax.prefix:
                args += ["--", tax.prefix]
            for item in split_z(tax.git(*args)):
                meta, _, repo_path = item.partition("\t")
                parts = meta.split()
                if len(parts) != 3:
                    continue
                rel = tax.from_repo(repo_path)
                if rel is None:
                    continue
                if parts[1] == "tree":
                    self._trees[rel] = parts[2]
                elif parts[1] == "blob" and is_leaf_path(rel):
                    self.blobs[rel] = parts[2]
                    if parts[0] == SYMLINK_MODE:
                        self._links[rel] = repo_path

    @property
    def paths(self) -> list[str]:
        return sorted(self.blobs)

    def read(self, paths: list[str]) -> dict[str, bytes]:
        missing = [p for p in paths if p not in self.data and p not in self.problems]
        if missing and self.commit is not None:
            reader = BlobReader(self.tax)
            try:
                for p in missing:
                    target = self._link_target(reader, p) if p in self._links else self.tax.to_repo(p)
                    if target is None:
                        continue
                    raw = reader.at(self.commit, target)
                    if raw is not None:
                        self.data[p] = raw
            finally:
                reader.close()
        return {p: self.data[p] for p in paths if p in self.data}

    def attribution(self, path: str) -> bytes | None:
        """The bytes of the leaf's attribution.txt at this revision (None: missing or not a file)."""
        repo_path = self.tax.to_repo(attribution_path(path))
        if self.commit is None:
            raw, _problems = read_leaf_bytes(self.tax.worktree, repo_path, DEFAULT_MAX_FILE_BYTES)
            return raw
        reader = BlobReader(self.tax)
        try:
            return reader.at(self.commit, repo_path)
        finally:
            reader.close()

    def _link_target(self, reader: BlobReader, path: str) -> str | None:
        """The repo path a committed qna.yaml symlink names, or None (with a finding) when it leaves
        the repository: the same rule as validate's in the working tree."""
        assert self.commit is not None
        repo_path = self._links[path]
        text = (reader.at(self.commit, repo_path) or b"").decode("utf-8", "replace")
        joined = posixpath.normpath(posixpath.join(posixpath.dirname(repo_path), text))
        if text.startswith("/") or joined == ".." or joined.startswith("../"):
            self.problems[path] = [Finding("symlink-outside", "error", path, 1, 1,
                                           f"symlink points outside the repository (to {text})",
                                           "", "replace the link with the file itself")]
            return None
        return joined

    def fingerprint(self, dirs: list[str]) -> str:
        return hashlib.sha256("\0".join(self._dir_fp(d) for d in dirs).encode()).hexdigest()

    def _dir_fp(self, rel: str) -> str:
        if rel in self._fp_cache:
            return self._fp_cache[rel]
        if self.commit is not None:
            fp = self._trees.get(rel, "-")
        else:
            h = hashlib.sha256()
            root = self.tax.worktree / self.tax.to_repo(rel)
            for dirpath, dirnames, filenames in os.walk(root):
                dirnames[:] = sorted(d for d in dirnames if d != ".git")
                for name in sorted(filenames):
                    p = Path(dirpath) / name
                    try:
                        st = p.stat()
                    except OSError:
                        continue
                    h.update(f"{p.relative_to(root).as_posix()}|{st.st_size}|{st.st_mtime_ns}\n".encode())
            fp = h.hexdigest()
        self._fp_cache[rel] = fp
        return fp


def _relabel(finding: Finding, path: str) -> Finding:
    """A finding on the repo-relative path read, named by the leaf's taxonomy-relative path."""
    from dataclasses import replace

    return replace(finding, path=path)
