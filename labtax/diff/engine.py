"""Which leaves changed: one `git diff --raw -z -M` from the merge-base to the head, then rules.

Cost model (the budget: one git invocation per diff, plus rev-parse, never one per commit):
- `git diff base...head` (or `git diff --merge-base base` against the working tree) computes the
  merge-base itself, so it starts at once and runs IN PARALLEL with the `git rev-parse base...head`
  that reports the SHAs and any error (an unknown ref, no merge-base in a shallow clone); when
  rev-parse fails, the speculative diff is killed. `git ls-files --others` (untracked files) starts
  at the same moment. Wall time is about one plain diff.
- History length never matters: git diffs two trees, it does not walk the commits in between.
- Blobs are read only for edited knowledge qna.yaml files (to compare their document references)
  and, when a non-leaf file inside the taxonomy changed (it may be a document), to find the knowledge
  leaves whose documents it is: all through one `git cat-file --batch`, started on first need.
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass, field

from labtax.diff import documents
from labtax.diff.gitio import (
    DEFAULT_BASES,
    EMPTY,
    BlobReader,
    Job,
    RevRange,
    Taxonomy,
    blob_sha,
    check_ref_syntax,
    check_repository_usable,
    empty_tree,
    head_is_born,
    is_leaf_path,
    is_shallow,
    leaf_files_at,
    merge_base_range,
    null_sha,
    open_taxonomy,
    resolve_commit,
    split_z,
    try_merge_base_range,
)
from labtax.diff.model import REASONS, DiffResult, LeafChange, Reason, Status
from labtax.errors import GitError
from labtax.taxonomy.model import ATTRIBUTION_FILENAME, kind_of

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
        check_repository_usable(tax)  # GitPython also says "unborn" for a repository git refuses
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
    detached = head is None and tax.repo.head.is_detached
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


def _spawn_untracked(tax: Taxonomy) -> Job:
    return tax.spawn(*_UNTRACKED_ARGS, "--", *_within(tax))


def changed_files(tax: Taxonomy, rng: Range, untracked_job: Job | None = None) -> list[FileChange]:
    """Every changed file between the range's base and head (or the working tree, untracked included).

    `untracked_job`: `git ls-files --others` already started in the background (it needs no ref, so it
    can run while rev-parse and diff do); started here when not given.
    """
    if rng.head is not None:
        return parse_raw(tax.git(*_DIFF_ARGS, rng.base, rng.head, "--", *_within(tax)))
    job = untracked_job or _spawn_untracked(tax)
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
        return rng, _add_untracked(tax, files, split_z((untracked_job or _spawn_untracked(tax)).result()))
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


# ------------------------------------------------------------------ from files to leaves


@dataclass
class _Acc:
    """A leaf change being assembled (mutable until it becomes a LeafChange)."""

    status: Status
    path: str
    old_path: str | None = None
    reasons: set[Reason] = field(default_factory=set)
    qna: FileChange | None = None  # the qna.yaml's own file change, if any

    def freeze(self) -> LeafChange:
        kind = kind_of(self.path)
        assert kind is not None  # only paths under a kind root become leaves
        reasons = tuple(r for r in REASONS if r in self.reasons)
        return LeafChange(
            self.status, self.path, self.old_path if self.status == "renamed" else None, kind, reasons
        )


def _attribution_leaf(tax: Taxonomy, repo_path: str | None) -> str | None:
    """The taxonomy-relative qna.yaml beside an attribution.txt under a kind root, if it is one."""
    rel = tax.from_repo(repo_path) if repo_path is not None else None
    if rel is None or posixpath.basename(rel) != ATTRIBUTION_FILENAME or kind_of(rel) is None:
        return None
    leaf = posixpath.join(posixpath.dirname(rel), "qna.yaml")
    return leaf if is_leaf_path(leaf) else None


class _Classifier:
    def __init__(self, tax: Taxonomy, rng: Range, files: list[FileChange], reader: BlobReader) -> None:
        self.tax = tax
        self.rng = rng
        self.files = files
        self.reader = reader
        # Keyed by (deleted?, path): a deleted leaf and a new one may share a path in odd histories.
        self.leaves: dict[tuple[bool, str], _Acc] = {}
        self.renamed_from: dict[str, str] = {}  # old leaf path -> new leaf path

    def run(self) -> list[LeafChange]:
        self._leaf_files()
        self._attributions()
        self._document_references()
        self._documents()
        return sorted((acc.freeze() for acc in self.leaves.values()), key=LeafChange.sort_key)

    # -- qna.yaml files
    def _leaf_files(self) -> None:
        for fc in self.files:
            old = self._leaf(fc.old_path)
            new = self._leaf(fc.new_path)
            if fc.status == "R" and old and new:
                reasons: set[Reason] = set() if fc.same_bytes() else {"qna"}
                self._put(_Acc("renamed", new, old, reasons, fc))
                self.renamed_from[old] = new
                continue
            if fc.status == "M" and new:
                if not fc.same_bytes():  # a mode-only change of a qna.yaml changes nothing
                    self._put(_Acc("modified", new, None, {"qna"}, fc))
                continue
            if old and fc.status in ("D", "R"):
                self._put(_Acc("deleted", old, None, {"qna"}, fc))
            if new and fc.status in ("A", "R"):
                self._put(_Acc("added", new, None, {"qna"}, fc))

    def _leaf(self, repo_path: str | None) -> str | None:
        rel = self.tax.from_repo(repo_path) if repo_path is not None else None
        return rel if rel is not None and is_leaf_path(rel) else None

    def _put(self, acc: _Acc) -> None:
        self.leaves[(acc.status == "deleted", acc.path)] = acc

    # -- attribution.txt beside a leaf
    def _attributions(self) -> None:
        touched: set[tuple[bool, str]] = set()
        for fc in self.files:
            old = _attribution_leaf(self.tax, fc.old_path)
            new = _attribution_leaf(self.tax, fc.new_path)
            if fc.status == "R" and old and new and fc.same_bytes() and self.renamed_from.get(old) == new:
                continue  # moved along with its leaf, unchanged
            if fc.status == "M" and fc.same_bytes():
                continue
            if new:
                touched.add((False, new))
            if old and fc.status != "M":
                touched.add(self._head_key(old))
        for key in touched:
            if key in self.leaves:
                self.leaves[key].reasons.add("attribution")
        # An attribution changed beside a leaf whose qna.yaml did not: is there a leaf at head?
        unchanged = sorted(
            path for deleted, path in touched if not deleted and (False, path) not in self.leaves
        )
        found = self.reader.at_many(self.rng.head, [self.tax.to_repo(p) for p in unchanged])
        for path, data in zip(unchanged, found):
            if data is not None:
                self._put(_Acc("modified", path, None, {"attribution"}))

    def _head_key(self, old_leaf: str) -> tuple[bool, str]:
        """Where a base-side leaf path lives in the result: renamed, deleted, or unchanged."""
        if old_leaf in self.renamed_from:
            return (False, self.renamed_from[old_leaf])
        if (True, old_leaf) in self.leaves:
            return (True, old_leaf)
        return (False, old_leaf)

    # -- knowledge: the document reference inside a changed qna.yaml
    def _document_references(self) -> None:
        edited = [
            acc
            for acc in self.leaves.values()
            if acc.status in ("modified", "renamed")
            and "qna" in acc.reasons
            and acc.qna is not None
            and "knowledge" in (kind_of(acc.path), kind_of(acc.old_path or ""))
        ]
        if not edited:
            return
        # Both sides of every edited knowledge qna.yaml in one batch: SHAs from git, else the disk.
        names = [n for acc in edited for n in (acc.qna.old_sha or "", acc.qna.new_sha or "")]  # type: ignore[union-attr]
        blobs = self.reader.read_many(names)
        for i, acc in enumerate(edited):
            fc = acc.qna
            assert fc is not None
            old, new = blobs[2 * i], blobs[2 * i + 1]
            if fc.new_sha is None and fc.new_path is not None:
                new = self.reader.at(None, fc.new_path)
            if documents.references_changed(old, new):
                acc.reasons.add("document")

    # -- knowledge: a document inside the repository changed
    def _documents(self) -> None:
        candidates = sorted(
            {
                p
                for fc in self.files
                for p in fc.paths()
                # Documents live inside the taxonomy root (document.repo may not climb out of it).
                if self.tax.from_repo(p) is not None
                and not self._leaf(p)
                and not _attribution_leaf(self.tax, p)
            }
        )
        if not candidates:
            return  # the usual case: only leaves changed, no scan at all
        leaves = leaf_files_at(self.tax, self.rng.head, kinds=("knowledge",))
        if self.rng.head is None:
            blobs = self.reader.at_many(None, [self.tax.to_repo(leaf) for _sha, leaf in leaves])
        else:
            blobs = self.reader.read_bulk([sha or "" for sha, _leaf in leaves])
        for (_sha, leaf), data in zip(leaves, blobs):
            docs = documents.local_documents(data or b"", self.tax.prefix)
            if docs is None or not any(docs.matches(p) for p in candidates):
                continue
            acc = self.leaves.get((False, leaf))
            if acc is None:
                self._put(_Acc("modified", leaf, None, {"document"}))
            else:
                acc.reasons.add("document")


# ------------------------------------------------------------------ the API


def diff_taxonomy(
    repo: str | os.PathLike[str], base: str | None = None, head: str | None = None
) -> DiffResult:
    """The changed leaves of the taxonomy folder `repo` from the merge-base of `base` and `head`.

    `base`: a ref (branch, tag, SHA, `HEAD~3`, `origin/main`), `"empty"` (every leaf is added), or None
    (origin/main, else main). `head`: a ref, or None for the working tree (staged, unstaged and
    untracked-but-not-ignored files). Raises `GitError` (exit 2) for a folder outside git, an unknown
    ref, an empty repository, a shallow clone missing the merge-base, or no base to default to.
    """
    with open_taxonomy(repo) as tax:
        # Work that needs no ref starts first and runs while rev-parse and diff do.
        untracked = _spawn_untracked(tax) if head is None else None
        # cat-file starts only when needed: started eagerly it measured slower (one more process
        # competing for the CPU while rev-parse and diff run).
        reader = BlobReader(tax)
        try:
            rng, files = range_and_files(tax, base, head, untracked)
            changes = _Classifier(tax, rng, files, reader).run()
        finally:
            if untracked is not None:
                untracked.cancel()
            reader.close()
        return DiffResult(rng.base, rng.head, changes)


def changed_leaves(
    repo: str | os.PathLike[str], base: str | None = None, head: str | None = None
) -> list[LeafChange]:
    """The changes of `diff_taxonomy(repo, base, head)`, sorted by path."""
    return diff_taxonomy(repo, base, head).changes


__all__ = [
    "FileChange",
    "Range",
    "changed_files",
    "changed_leaves",
    "diff_taxonomy",
    "range_and_files",
    "resolve_range",
]
