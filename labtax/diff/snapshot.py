"""A snapshot of the leaves at one revision with cheap change detectors, for callers that must notice
a change without parsing every leaf (diff-generate's planning): the qna.yaml blob id of each leaf
and fingerprints of folders (git tree ids at a commit; names, sizes and mtimes in the working tree)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from labtax.diff.contents import BlobReader, blob_sha, is_leaf_path, leaf_files_at, split_z
from labtax.diff.repository import Taxonomy


class Snapshot:
    """The leaves at head with cheap change detectors: the qna.yaml blob id and folder fingerprints
    (git tree ids at a commit; names, sizes and mtimes in the working tree)."""

    def __init__(self, tax: Taxonomy, commit: str | None) -> None:
        self.tax = tax
        self.commit = commit
        self.blobs: dict[str, str] = {}
        self.data: dict[str, bytes] = {}
        self._trees: dict[str, str] = {}
        self._fp_cache: dict[str, str] = {}
        if commit is None:
            for _sha, path in leaf_files_at(tax, None):
                raw = (tax.worktree / tax.to_repo(path)).read_bytes()
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

    @property
    def paths(self) -> list[str]:
        return sorted(self.blobs)

    def read(self, paths: list[str]) -> dict[str, bytes]:
        missing = [p for p in paths if p not in self.data]
        if missing and self.commit is not None:
            reader = BlobReader(self.tax)
            for p in missing:
                raw = reader.at(self.commit, self.tax.to_repo(p))
                if raw is not None:
                    self.data[p] = raw
        return {p: self.data[p] for p in paths if p in self.data}

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
