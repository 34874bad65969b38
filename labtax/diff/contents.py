"""Reading a taxonomy's content at a revision: leaf listings and file bytes, through git or from disk.

The public helpers, for stages that rebuild data from the leaves at some revision:

- `read_blob(repo, ref, path) -> bytes`: the bytes of `path` (posix, relative to the TAXONOMY root)
  at `ref` (any revision git understands), or in the working tree when `ref` is None. Raises
  `GitError` (exit 2) when the ref is unknown or the file does not exist there.
- `read_blobs(repo, ref, paths) -> dict[str, bytes]`: the same for many paths through one
  `git cat-file --batch` process; paths missing at `ref` are left out of the result.
- `list_leaves_at(repo, ref) -> list[str]`: every leaf (qna.yaml under knowledge/,
  compositional_skills/ or foundational_skills/) at `ref`, as sorted taxonomy-relative posix paths;
  `ref` None lists the working tree: tracked and untracked-but-not-ignored files that exist on disk.

`repo` is the taxonomy folder, as for `open_taxonomy`. Paths come from git with `-z`, so spaces,
quotes and non-ASCII names arrive unquoted; they are decoded with `os.fsdecode`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from labtax.diff.repository import GIT_ENV, Taxonomy, open_taxonomy, resolve_commit
from labtax.errors import GitError
from labtax.taxonomy.model import KINDS, LEAF_FILENAME
from labtax.util.git import spawn_git

# ------------------------------------------------------------------ leaves and paths


def is_leaf_path(path: str) -> bool:
    """A taxonomy-relative posix path naming a leaf: a qna.yaml somewhere under one of the kind roots."""
    # Plain string operations: this runs for every changed file (and every file of a full listing).
    top, sep, rest = path.partition("/")
    return bool(sep) and top in KINDS and (rest == LEAF_FILENAME or rest.endswith("/" + LEAF_FILENAME))


def null_sha(sha: str | None) -> bool:
    """git's all-zero object name (a side that is the working tree, or absent)."""
    return not sha or set(sha) == {"0"}


def blob_sha(data: bytes, *, length: int = 40) -> str:
    """The object name git gives `data` as a blob (SHA-1, or SHA-256 in a 64-hex repository)."""
    import hashlib  # only when a working-tree file is compared: most diffs hash nothing

    algo = hashlib.sha256 if length == 64 else hashlib.sha1
    return algo(b"blob %d\0" % len(data) + data).hexdigest()


def split_z(out: bytes) -> list[str]:
    """NUL-separated git output as decoded strings (undecodable bytes kept via surrogateescape)."""
    return [os.fsdecode(item) for item in out.split(b"\0") if item]


# ------------------------------------------------------------------ reading files


class BlobReader:
    """Reads many blobs through ONE `git cat-file --batch` process, started on first use (or `start()`).

    Names are object SHAs or `rev:path`. Requests go in chunks small enough that neither pipe can fill
    while the other is being written, so thousands of reads never deadlock.
    """

    CHUNK_BYTES = 32 * 1024

    def __init__(self, tax: Taxonomy) -> None:
        self.tax = tax
        self._proc: Any = None

    def start(self) -> None:
        """Start the process now, so that its start-up overlaps other git work."""
        if self._proc is None:
            self._proc = spawn_git(["cat-file", "--batch"], self.tax.worktree, env=GIT_ENV, stdin=True)

    def __enter__(self) -> BlobReader:  # noqa: PYI034 (Python 3.10 has no typing.Self)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """End the cat-file process (also done when the reader is garbage-collected)."""
        if self._proc is not None:
            proc, self._proc = self._proc, None
            try:
                proc.stdin.close()
                proc.stdout.read()
                if proc.stderr is not None:
                    proc.stderr.read()
            except (OSError, ValueError):
                pass
            proc.wait()

    def read_many(self, names: Sequence[str]) -> list[bytes | None]:
        """The blob behind each name, in order; None where it does not exist or is not a blob."""
        results: list[bytes | None] = [None] * len(names)
        # cat-file --batch reads one name per line: a name with a newline cannot be asked for.
        todo = [(i, n) for i, n in enumerate(names) if "\n" not in n and n]
        if not todo:
            return results
        self.start()
        stdin, stdout = self._proc.stdin, self._proc.stdout
        pos = 0
        while pos < len(todo):
            chunk: list[int] = []
            size = 0
            while pos < len(todo) and (not chunk or size < self.CHUNK_BYTES):
                line = os.fsencode(todo[pos][1]) + b"\n"
                chunk.append(todo[pos][0])
                size += len(line)
                stdin.write(line)
                pos += 1
            stdin.flush()
            for index in chunk:
                header = stdout.readline()
                parts = header.split()
                if len(parts) != 3 or header.endswith((b" missing\n", b" ambiguous\n")):
                    continue
                data = stdout.read(int(parts[2]))
                stdout.read(1)  # the newline after the content
                if parts[1] == b"blob":
                    results[index] = data
        return results

    BULK = 64  # from this many names on, one buffered one-shot process beats request/response

    def read_bulk(self, names: Sequence[str]) -> list[bytes | None]:
        """Like `read_many`, for thousands of names: one `git cat-file --batch --buffer` fed all names
        at once (output buffered, not flushed per object), parsed from one buffer."""
        results: list[bytes | None] = [None] * len(names)
        todo = [(i, n) for i, n in enumerate(names) if "\n" not in n and n]
        if len(todo) < self.BULK:
            return self.read_many(names)
        proc = spawn_git(["cat-file", "--batch", "--buffer"], self.tax.worktree, env=GIT_ENV, stdin=True)
        out, _err = proc.communicate(b"".join(os.fsencode(n) + b"\n" for _i, n in todo))
        pos = 0
        for index, _name in todo:
            eol = out.find(b"\n", pos)
            if eol < 0:
                break
            parts = out[pos:eol].split()
            pos = eol + 1
            if len(parts) != 3 or parts[-1] in (b"missing", b"ambiguous"):
                continue
            size = int(parts[2])
            if parts[1] == b"blob":
                results[index] = out[pos : pos + size]
            pos += size + 1  # the content and its trailing newline
        return results

    def by_name(self, name: str) -> bytes | None:
        """The blob `name` (a SHA or `rev:path`); None when it does not exist or is not a blob."""
        return self.read_many([name])[0]

    def at_many(self, commit: str | None, repo_paths: Sequence[str]) -> list[bytes | None]:
        """Files at working-tree-relative paths, at `commit` or (None) in the working tree."""
        if commit is None:
            return [_read_file(self.tax.worktree / p) for p in repo_paths]
        # cat-file --batch takes one name per line: a path with a newline is looked up by its blob id.
        names = [self._blob_id(commit, p) if "\n" in p else f"{commit}:{p}" for p in repo_paths]
        return self.read_bulk(names) if len(names) >= self.BULK else self.read_many(names)

    def _blob_id(self, commit: str, repo_path: str) -> str:
        """The blob id of `repo_path` at `commit` ('' when there is none), asked with the path as an
        argument, where a newline is just another character."""
        out = self.tax.git("ls-tree", "-z", "--full-tree", commit, "--", repo_path)
        for item in split_z(out):
            meta, _, path = item.partition("\t")
            parts = meta.split()
            if path == repo_path and len(parts) == 3 and parts[1] == "blob":
                return parts[2]
        return ""

    def at(self, commit: str | None, repo_path: str) -> bytes | None:
        return self.at_many(commit, [repo_path])[0]


def _read_file(path: Path) -> bytes | None:
    try:
        return path.read_bytes() if path.is_file() else None
    except OSError:
        return None


def _ls_tree(tax: Taxonomy, commit: str, under: str) -> list[tuple[str, str]]:
    """(blob SHA, working-tree-relative path) of every file under `under` ("" = all) at `commit`."""
    args = ["ls-tree", "-r", "-z", "--full-tree", commit]
    if under:
        args += ["--", under]
    rows = []
    for item in split_z(tax.git(*args)):
        meta, _, path = item.partition("\t")
        parts = meta.split()
        if len(parts) == 3 and parts[1] == "blob":
            rows.append((parts[2], path))
    return rows


def _ls_worktree(tax: Taxonomy, under: str, untracked: Sequence[str] | None = None) -> list[str]:
    """Working-tree-relative paths of tracked and untracked-not-ignored files under `under` on disk.

    `untracked`: the untracked files, when already known (then only the index is listed: no second
    walk of the folders for untracked files, the slow part in a large tree).
    """
    args = ["ls-files", "-z", "--cached", "--full-name"]
    if untracked is None:
        args += ["--others", "--exclude-standard"]
    if under:
        args += ["--", under]
    listed = split_z(tax.git(*args))
    if untracked is not None:
        listed += [p for p in untracked if not under or p.startswith(under + "/")]
    seen = dict.fromkeys(listed)  # a conflicted file is listed once per stage
    return [p for p in seen if (tax.worktree / p).is_file()]


def leaf_files_at(
    tax: Taxonomy, commit: str | None, kinds: Iterable[str] = KINDS, *, untracked: Sequence[str] | None = None
) -> list[tuple[str | None, str]]:
    """(blob SHA or None in the working tree, taxonomy-relative path) of every leaf of `kinds`.

    `untracked` (working tree only): the untracked-not-ignored files (working-tree-relative) when the
    caller already listed them."""
    found: list[tuple[str | None, str]] = []
    for kind in kinds:
        under = tax.to_repo(kind)
        if commit is None:
            rows: list[tuple[str | None, str]] = [(None, p) for p in _ls_worktree(tax, under, untracked)]
        else:
            rows = list(_ls_tree(tax, commit, under))
        for sha, repo_path in rows:
            rel = tax.from_repo(repo_path)
            if rel is not None and is_leaf_path(rel):
                found.append((sha, rel))
    return sorted(found, key=lambda row: row[1])


def list_leaves_at(repo: str | os.PathLike[str], ref: str | None) -> list[str]:
    """Every leaf's qna.yaml path (taxonomy-relative, posix, sorted) at `ref`; None = working tree."""
    with open_taxonomy(repo) as tax:
        commit = None if ref is None else resolve_commit(tax, ref)
        if commit is None:
            # One ls-files over the taxonomy instead of one per kind.
            paths = [tax.from_repo(p) for p in _ls_worktree(tax, tax.prefix)]
            return sorted(p for p in paths if p is not None and is_leaf_path(p))
        return [path for _sha, path in leaf_files_at(tax, commit)]


def read_blobs(repo: str | os.PathLike[str], ref: str | None, paths: Iterable[str]) -> dict[str, bytes]:
    """The bytes of each taxonomy-relative path at `ref` (None = working tree); missing ones left out."""
    with open_taxonomy(repo) as tax:
        commit = None if ref is None else resolve_commit(tax, ref)
        wanted = list(paths)
        reader = BlobReader(tax)
        try:
            blobs = reader.at_many(commit, [tax.to_repo(p) for p in wanted])
        finally:
            reader.close()
        return {path: data for path, data in zip(wanted, blobs) if data is not None}


def read_blob(repo: str | os.PathLike[str], ref: str | None, path: str) -> bytes:
    """The bytes of a taxonomy-relative path at `ref` (None = working tree); GitError when missing."""
    data = read_blobs(repo, ref, [path]).get(path)
    if data is None:
        where = "the working tree" if ref is None else ref
        raise GitError(f"{path} does not exist in {where}")
    return data
