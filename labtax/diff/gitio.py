"""Reading a taxonomy out of git: repository discovery, ref resolution, the one `git diff` call, blobs.

The public helpers, for stages that rebuild data from the leaves at some revision:

- `read_blob(repo, ref, path) -> bytes`: the bytes of `path` (posix, relative to the TAXONOMY root)
  at `ref` (any revision git understands), or in the working tree when `ref` is None. Raises
  `GitError` (exit 2) when the ref is unknown or the file does not exist there.
- `read_blobs(repo, ref, paths) -> dict[str, bytes]`: the same for many paths through one
  `git cat-file --batch` process; paths missing at `ref` are left out of the result.
- `list_leaves_at(repo, ref) -> list[str]`: every leaf (qna.yaml under knowledge/,
  compositional_skills/ or foundational_skills/) at `ref`, as sorted taxonomy-relative posix paths;
  `ref` None lists the working tree: tracked and untracked-but-not-ignored files that exist on disk.

`repo` is always the taxonomy folder (str or Path); it may be a subfolder of the git working tree,
and it may be inside a linked worktree (`git worktree add`). Paths come from git with `-z`, so spaces,
quotes and non-ASCII names arrive unquoted; they are decoded with `os.fsdecode`.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from labtax.errors import GitError, UsageError
from labtax.taxonomy.model import KINDS, LEAF_FILENAME

# `--base empty` compares against the empty tree: every leaf counts as added.
EMPTY = "empty"
# Defaults tried in order when no --base is given (full names, so a tag called "main" cannot shadow).
DEFAULT_BASES: tuple[str, ...] = ("refs/remotes/origin/main", "refs/heads/main")

# No optional locks: a diff must never take index.lock (a concurrent `git commit` would fail).
# Literal pathspecs: a taxonomy folder named `a*b` means exactly that folder.
_GIT_ENV = {"GIT_OPTIONAL_LOCKS": "0", "GIT_LITERAL_PATHSPECS": "1", "LC_ALL": "C"}


@dataclass
class Taxonomy:
    """An open git repository plus where the taxonomy lies inside its working tree."""

    repo: git.Repo  # type: ignore[name-defined]
    worktree: Path
    prefix: str  # posix path of the taxonomy root inside the working tree; "" at the root

    def to_repo(self, path: str) -> str:
        """A taxonomy-relative path as a path relative to the working tree root."""
        return f"{self.prefix}/{path}" if self.prefix else path

    def from_repo(self, path: str) -> str | None:
        """A working-tree-relative path as a taxonomy-relative one; None when outside the taxonomy."""
        if not self.prefix:
            return path
        head = self.prefix + "/"
        return path[len(head) :] if path.startswith(head) else None

    def git(self, *args: str, ok: tuple[int, ...] = (0,)) -> bytes:
        """Run one git command at the working tree root; raw stdout, GitError on an unexpected exit."""
        code, out, err = self.git_status(*args)
        if code not in ok:
            raise GitError(f"git {args[0]} failed: {_first_line(err) or f'exit {code}'}")
        return out

    def git_status(self, *args: str) -> tuple[int, bytes, str]:
        """Run one git command through GitPython; (exit code, raw stdout, stderr text), never raising."""
        code, out, err = self.repo.git.execute(
            ["git", *args],
            with_extended_output=True,
            with_exceptions=False,
            stdout_as_string=False,
            strip_newline_in_stdout=False,  # -z output may legitimately end in a newline-named path
            env=_GIT_ENV,
        )
        text = err.decode("utf-8", "replace") if isinstance(err, bytes) else str(err or "")
        return int(code or 0), out if isinstance(out, bytes) else bytes(out or b""), text

    def spawn(self, *args: str) -> Job:
        """Start one git command in the background (it runs while other git commands run)."""
        handle = self.repo.git.execute(["git", *args], as_process=True, env=_GIT_ENV)
        return Job(handle, args[0])

    def close(self) -> None:
        self.repo.close()


class Job:
    """A git command running in the background; `result()` waits for its stdout."""

    def __init__(self, handle: Any, name: str) -> None:
        # GitPython's AutoInterrupt handle kills the process when collected: keep it for our lifetime,
        # and talk to the plain Popen inside it.
        self.handle = handle
        self.proc = handle.proc
        self.name = name
        self._out: bytes | None = None

    def result(self) -> bytes:
        if self._out is not None:
            return self._out
        out, err = self.proc.communicate()
        if self.proc.returncode != 0:
            text = err.decode("utf-8", "replace") if isinstance(err, bytes) else str(err)
            raise GitError(f"git {self.name} failed: {_first_line(text) or f'exit {self.proc.returncode}'}")
        self._out = bytes(out)
        return self._out

    def cancel(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
            self.proc.communicate()


def _first_line(text: str) -> str:
    for line in text.splitlines():
        line = line.strip()
        if line:
            return line.removeprefix("fatal: ").removeprefix("error: ")
    return ""


@contextmanager
def open_taxonomy(path: str | os.PathLike[str]) -> Iterator[Taxonomy]:
    """Find the git repository holding the taxonomy folder `path` (searching parent folders)."""
    try:
        import git  # GitPython: imported here so that `import labtax.diff` stays cheap
    except ImportError as exc:  # GitPython refuses to import without a working git executable
        raise GitError(
            f"git is not usable: {str(exc).splitlines()[0]}", hint="install git and put it on PATH"
        ) from None

    folder = Path(path)
    if not folder.exists():
        raise UsageError(f"taxonomy folder does not exist: {folder}")
    if not folder.is_dir():
        raise UsageError(f"taxonomy path is not a folder: {folder}")
    try:
        repo = git.Repo(folder, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise GitError(
            f"not a git repository: {folder}",
            hint="run labtax inside a git checkout of the taxonomy, or pass --taxonomy DIR",
        ) from None
    try:
        if repo.working_tree_dir is None:
            raise GitError(f"{folder} is in a bare repository (no working tree)")
        worktree = Path(repo.working_tree_dir).resolve()
        try:
            prefix = folder.resolve().relative_to(worktree).as_posix()
        except ValueError:
            raise GitError(f"taxonomy folder {folder} is not inside the working tree {worktree}") from None
        tax = Taxonomy(repo=repo, worktree=worktree, prefix="" if prefix == "." else prefix)
        yield tax
    finally:
        repo.close()


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
    algo = hashlib.sha256 if length == 64 else hashlib.sha1
    return algo(b"blob %d\0" % len(data) + data).hexdigest()


def split_z(out: bytes) -> list[str]:
    """NUL-separated git output as decoded strings (undecodable bytes kept via surrogateescape)."""
    return [os.fsdecode(item) for item in out.split(b"\0") if item]


# ------------------------------------------------------------------ refs


def is_shallow(tax: Taxonomy) -> bool:
    return (Path(tax.repo.common_dir) / "shallow").exists()


def head_is_born(tax: Taxonomy) -> bool:
    """False in an empty repository (or on an orphan branch before its first commit)."""
    return tax.repo.head.is_valid()


def check_ref_syntax(ref: str) -> None:
    # A ref starting with "-" would be read as an option by git.
    if not ref or ref.startswith("-") or "\0" in ref or "\n" in ref:
        raise GitError(f"unknown ref: {ref!r}")


def resolve_commit(tax: Taxonomy, ref: str) -> str:
    """The full SHA of the commit `ref` names, or GitError "unknown ref"."""
    check_ref_syntax(ref)
    code, out, _ = tax.git_status("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    if code != 0:
        check_repository_usable(tax)
        raise GitError(f"unknown ref: {ref}", hint=_unknown_ref_hint(tax, ref))
    return out.decode().strip()


def check_repository_usable(tax: Taxonomy) -> None:
    """On an error path only: when git itself refuses the repository (dubious ownership, a broken
    config), say what git says instead of blaming the ref."""
    code, _, err = tax.git_status("rev-parse", "--git-dir")
    if code != 0:
        raise GitError(
            f"git cannot use the repository at {tax.worktree}: {_first_line(err) or f'exit {code}'}"
        )


def _unknown_ref_hint(tax: Taxonomy, ref: str) -> str:
    if is_shallow(tax):
        return "this is a shallow clone; fetch the ref or more history (git fetch --unshallow)"
    if ref.startswith(("origin/", "refs/remotes/")):
        return "fetch it first (git fetch origin), or pass another --base"
    return "pass a branch, tag or SHA that exists here"


def empty_tree(tax: Taxonomy) -> str:
    """The empty tree's object name in this repository's hash (git knows it without storing it)."""
    return tax.git("hash-object", "-t", "tree", "/dev/null").decode().strip()


class RevRange(NamedTuple):
    """What `git rev-parse base...head` says: both SHAs and every merge-base (best first)."""

    base: str
    head: str
    merge_bases: tuple[str, ...]

    @property
    def merge_base(self) -> str | None:
        return self.merge_bases[0] if self.merge_bases else None


def try_merge_base_range(tax: Taxonomy, base: str, head: str) -> RevRange | None:
    """Both SHAs and the merge-bases from ONE `git rev-parse base...head`; None if a ref does not
    resolve to a commit.

    rev-parse prints the right side, the left side, then `^<sha>` per merge-base (the first is the one
    `git diff base...head` uses).
    """
    check_ref_syntax(base)
    check_ref_syntax(head)
    code, out, _ = tax.git_status("rev-parse", f"{base}^{{commit}}...{head}^{{commit}}")
    if code != 0:
        return None
    lines = out.decode().split()
    return RevRange(lines[1], lines[0], tuple(line[1:] for line in lines[2:] if line.startswith("^")))


def merge_base_range(tax: Taxonomy, base: str, head: str) -> RevRange:
    """Like `try_merge_base_range`, but an unknown ref is a GitError naming it."""
    found = try_merge_base_range(tax, base, head)
    if found is None:
        # Only on failure: find out which side is unknown, for a precise message.
        resolve_commit(tax, head)
        resolve_commit(tax, base)
        raise GitError(f"cannot compare {base} with {head}")
    return found


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
        self._handle: Any = None

    def start(self) -> None:
        """Start the process now, so that its start-up overlaps other git work."""
        if self._proc is None:
            import subprocess

            self._handle = self.tax.repo.git.execute(
                ["git", "cat-file", "--batch"], as_process=True, istream=subprocess.PIPE, env=_GIT_ENV
            )
            self._proc = self._handle.proc  # the Popen inside GitPython's handle

    def __enter__(self) -> BlobReader:  # noqa: PYI034 (Python 3.10 has no typing.Self)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """End the cat-file process (also done when the reader is garbage-collected)."""
        if self._proc is not None:
            proc, self._proc, self._handle = self._proc, None, None
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
        import subprocess

        results: list[bytes | None] = [None] * len(names)
        todo = [(i, n) for i, n in enumerate(names) if "\n" not in n and n]
        if len(todo) < self.BULK:
            return self.read_many(names)
        handle = self.tax.repo.git.execute(
            ["git", "cat-file", "--batch", "--buffer"], as_process=True, istream=subprocess.PIPE, env=_GIT_ENV
        )
        out, _err = handle.proc.communicate(b"".join(os.fsencode(n) + b"\n" for _i, n in todo))
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
        names = [f"{commit}:{p}" for p in repo_paths]
        return self.read_bulk(names) if len(names) >= self.BULK else self.read_many(names)

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
