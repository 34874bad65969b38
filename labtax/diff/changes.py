"""Which FILES changed: the base/head range and one `git diff --raw -z -M` between them.

Cost model (the budget: one git invocation per diff, plus rev-parse, never one per commit):
- `git diff base...head` (or `git diff --merge-base base` against the working tree) computes the
  merge-base itself, so it starts at once and runs IN PARALLEL with the `git rev-parse base...head`
  that reports the SHAs and any error (an unknown ref, no merge-base in a shallow clone); when
  rev-parse fails, the speculative diff is killed. `git ls-files --others` (untracked files) starts
  at the same moment. Wall time is about one plain diff.
- History length never matters: git diffs two trees, it does not walk the commits in between.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from labtax.diff.contents import blob_sha, is_leaf_path, null_sha, split_z
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
    head_is_detached,
    is_shallow,
    merge_base_range,
    resolve_commit,
    try_merge_base_range,
)
from labtax.errors import GitError

# ------------------------------------------------------------------ the range


@dataclass(frozen=True)
class Range:
    """What to compare: `base` (merge-base SHA or the empty tree) against `head` (None = working tree)."""

    base: str
    head: str | None


def resolve_range(tax: Taxonomy, base: str | None, head: str | None) -> Range:
    """Pick the base (explicit, origin/main, main or empty) and compute the merge-base with the head."""
    if head is None and not head_is_born(tax):
        if base == EMPTY:
            return Range(empty_tree(tax), None)  # the first commit is being prepared: all is new
        check_repository_usable(tax)  # an unborn HEAD is also what a repository git refuses looks like
        raise GitError(
            "the repository has no commits yet (HEAD is unborn)",
            hint="commit something first, or pass --base empty to count every leaf as added",
        )
    head_expr = head if head is not None else "HEAD"
    if base == EMPTY:
        return Range(empty_tree(tax), resolve_commit(tax, head) if head is not None else None)
    if base is not None:
        return _range_from(tax, base, head_expr, merge_base_range(tax, base, head_expr), head is not None)
    for candidate in DEFAULT_BASES:
        # One rev-parse per candidate: it resolves the candidate, the head and their merge-base at once.
        found = try_merge_base_range(tax, candidate, head_expr)
        if found is not None:
            return _range_from(tax, candidate, head_expr, found, head is not None)
    resolve_commit(tax, head_expr)  # an unknown --head is the real problem, if it is one
    detached = head is None and head_is_detached(tax)
    what = "HEAD is detached and neither" if detached else "neither"
    hint = "pass --base REF (a branch, tag or SHA), or --base empty to count every leaf as added"
    if is_shallow(tax):
        hint = "this shallow clone has no main branch: git fetch --depth=50 origin main, or " + hint
    raise GitError(f"no base to compare with: {what} origin/main nor main exists", hint=hint)


def _range_from(tax: Taxonomy, base: str, head_expr: str, found: RevRange, explicit_head: bool) -> Range:
    head_sha, merge_base = found.head, found.merge_base
    base = base.removeprefix("refs/remotes/").removeprefix("refs/heads/")  # as the user would write it
    if merge_base is None:
        if is_shallow(tax):
            raise GitError(
                f"this shallow clone's history does not reach the merge-base of {base} and {head_expr}",
                hint="fetch more history: git fetch --deepen=200 (repeat as needed) or git fetch --unshallow;"
                " in GitHub Actions use actions/checkout with fetch-depth: 0",
            )
        raise GitError(
            f"{base} and {head_expr} have no common history",
            hint="pass another --base, or --base empty to count every leaf as added",
        )
    return Range(merge_base, head_sha if explicit_head else None)


# ------------------------------------------------------------------ changed files


@dataclass
class FileChange:
    """One changed file, paths relative to the working tree root. A `new_sha` of None = read the disk."""

    status: str  # A, D, M or R (git's T and U count as M, C as A)
    old_path: str | None
    new_path: str | None
    old_sha: str | None = None
    new_sha: str | None = None
    score: int = 100  # rename similarity, 100 = same bytes

    def paths(self) -> list[str]:
        return [p for p in (self.old_path, self.new_path) if p is not None]

    def same_bytes(self) -> bool:
        """Known identical content on both sides (a mode-only change, or a 100% rename)."""
        if self.status == "R":
            return self.score >= 100
        return not null_sha(self.old_sha) and not null_sha(self.new_sha) and self.old_sha == self.new_sha


def parse_raw(out: bytes) -> list[FileChange]:
    """Parse `git diff --raw -z --no-abbrev` output."""
    items = out.split(b"\0")
    changes: list[FileChange] = []
    i = 0
    while i < len(items):
        meta = items[i]
        i += 1
        if not meta.startswith(b":"):
            continue
        fields = meta[1:].decode().split()
        old_sha, new_sha, code = fields[2], fields[3], fields[4]
        letter, score = code[0], int(code[1:] or 100)
        old_sha_v = None if null_sha(old_sha) else old_sha
        new_sha_v = None if null_sha(new_sha) else new_sha
        if letter in "RC":
            src, dst = os.fsdecode(items[i]), os.fsdecode(items[i + 1])
            i += 2
            if letter == "R":
                changes.append(FileChange("R", src, dst, old_sha_v, new_sha_v, score))
            else:  # a copy leaves the source in place: only the destination is new
                changes.append(FileChange("A", None, dst, None, new_sha_v))
            continue
        path = os.fsdecode(items[i])
        i += 1
        if letter == "A":
            changes.append(FileChange("A", None, path, None, new_sha_v))
        elif letter == "D":
            changes.append(FileChange("D", path, None, old_sha_v, None))
        else:  # M, T (type change), U (unmerged), X: the file is there on both sides
            changes.append(FileChange("M", path, path, old_sha_v, new_sha_v))
    return changes


_DIFF_ARGS = ("diff", "--raw", "-z", "--no-abbrev", "-M", "--no-color", "--no-ext-diff", "--no-textconv")


_UNTRACKED_ARGS = ("ls-files", "-z", "--others", "--exclude-standard", "--full-name")


def _within(tax: Taxonomy) -> tuple[str, ...]:
    """The pathspec limiting git to the taxonomy folder: leaves, attributions and local documents all
    live inside it (document.repo may not climb out), so nothing outside can change a leaf."""
    return (tax.prefix,) if tax.prefix else ()


def spawn_untracked(tax: Taxonomy) -> Job:
    return tax.spawn(*_UNTRACKED_ARGS, "--", *_within(tax))


def changed_files(tax: Taxonomy, rng: Range, untracked_job: Job | None = None) -> list[FileChange]:
    """Every changed file between the range's base and head (or the working tree, untracked included).

    `untracked_job`: `git ls-files --others` already started in the background (it needs no ref, so it
    can run while rev-parse and diff do); started here when not given.
    """
    if rng.head is not None:
        return parse_raw(tax.git(*_DIFF_ARGS, rng.base, rng.head, "--", *_within(tax)))
    job = untracked_job or spawn_untracked(tax)
    files = parse_raw(tax.git(*_DIFF_ARGS, rng.base, "--", *_within(tax)))
    return _add_untracked(tax, files, split_z(job.result()))


def range_and_files(
    tax: Taxonomy, base: str | None, head: str | None, untracked_job: Job | None = None
) -> tuple[Range, list[FileChange]]:
    """`resolve_range` and `changed_files` in one, with the diff running WHILE rev-parse runs.

    `git diff base...head` (or `git diff --merge-base base` for the working tree) finds the merge-base
    itself, so it can start at once, in parallel with the `git rev-parse base...head` that reports the
    SHAs and the errors; on a failure the speculative diff is simply killed. The wall time is then
    about that of one plain `git diff`.
    """
    if base == EMPTY or (head is None and not head_is_born(tax)):
        rng = resolve_range(tax, base, head)
        return rng, changed_files(tax, rng, untracked_job)
    head_expr = head if head is not None else "HEAD"
    for candidate in [base] if base is not None else list(DEFAULT_BASES):
        check_ref_syntax(candidate)
        check_ref_syntax(head_expr)
        if head is not None:
            job = tax.spawn(*_DIFF_ARGS, f"{candidate}^{{commit}}...{head}^{{commit}}", "--", *_within(tax))
        else:
            job = tax.spawn(*_DIFF_ARGS, "--merge-base", f"{candidate}^{{commit}}", "--", *_within(tax))
        try:
            found = (
                merge_base_range(tax, candidate, head_expr)
                if base is not None
                else try_merge_base_range(tax, candidate, head_expr)
            )
            if found is None:
                continue  # this default base does not exist here: try the next
            rng = _range_from(tax, candidate, head_expr, found, head is not None)
            if len(found.merge_bases) > 1:
                # Criss-cross history: diff from exactly the merge-base reported, not git diff's pick.
                job.cancel()
                return rng, changed_files(tax, rng, untracked_job)
            files = parse_raw(job.result())
        finally:
            job.cancel()
        if head is not None:
            return rng, files
        return rng, _add_untracked(tax, files, split_z((untracked_job or spawn_untracked(tax)).result()))
    return resolve_range(tax, base, head), []  # raises: no default base (or an unknown --head)


def _add_untracked(tax: Taxonomy, files: list[FileChange], untracked: list[str]) -> list[FileChange]:
    """Untracked-but-not-ignored files count as added (or, if tracked at base, as modified)."""
    if not untracked:
        return files
    deleted = {fc.old_path: fc for fc in files if fc.status == "D"}
    for path in untracked:
        gone = deleted.pop(path, None)
        if gone is None:
            files.append(FileChange("A", None, path))
            continue
        # Untracked but present at base (e.g. `git rm --cached`): a modification, or nothing at all.
        files.remove(gone)
        data = (tax.worktree / path).read_bytes() if (tax.worktree / path).is_file() else b""
        if gone.old_sha and blob_sha(data, length=len(gone.old_sha)) != gone.old_sha:
            files.append(FileChange("M", path, path, gone.old_sha, None))
    return _pair_untracked_renames(tax, files)


def _pair_untracked_renames(tax: Taxonomy, files: list[FileChange]) -> list[FileChange]:
    """A leaf moved with plain `mv` (not yet `git add`ed) is a rename when the bytes are identical."""
    gone = {fc.old_sha: fc for fc in files if fc.status == "D" and fc.old_sha and _is_leaf(tax, fc.old_path)}
    if not gone:
        return files
    length = len(next(iter(gone)))
    sources: set[int] = set()
    out: list[FileChange] = []
    for fc in files:
        if fc.status == "A" and fc.new_sha is None and fc.new_path and _is_leaf(tax, fc.new_path):
            path = tax.worktree / fc.new_path
            source = gone.pop(blob_sha(path.read_bytes(), length=length), None) if path.is_file() else None
            if source is not None:
                out.append(FileChange("R", source.old_path, fc.new_path, source.old_sha, None, 100))
                sources.add(id(source))
                continue
        out.append(fc)
    return [fc for fc in out if id(fc) not in sources]


def _is_leaf(tax: Taxonomy, repo_path: str | None) -> bool:
    rel = tax.from_repo(repo_path) if repo_path is not None else None
    return rel is not None and is_leaf_path(rel)
