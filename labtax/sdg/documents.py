"""Knowledge documents: find a leaf's documents, read them, and cut them into token-budget chunks.

Where the documents come from (`document.repo` in a knowledge qna.yaml):
  - a URL (`https://…`, `ssh://…`, `git@…`, `file://…`): the one pinned commit is fetched into the
    cache, `cache_dir()/documents/<commit>` (`git init; git fetch --depth 1 <repo> <sha>; git
    checkout FETCH_HEAD`), once; a commit names its content, so the commit alone is the cache key;
  - a path RELATIVE TO THE TAXONOMY ROOT (`.documents/<name>`): a git repository there is fetched the
    same way at `document.commit`; a plain folder (not a repository) is read as it is.
Absolute paths and paths leaving the taxonomy root are refused, and so are `patterns` that are
absolute or climb out (`../x`) of the document root, including through a symlink.

Reading: sdg/readers.py (`--document-reader`): Markdown and text as UTF-8; HTML, DOCX and PDF
through docling when installed (a PDF only with its layout models on disk; tables as Markdown), else
the builtin readers (HTML and DOCX tables as Markdown, PDF through pypdf). Each Document says which
reader read it.
Chunking: paragraphs (blank-line separated) are packed into chunks of at most `budget` tokens of the
teacher's tokenizer; a paragraph over the budget is split by sentences, then by words. Without a
local tokenizer (the openai teacher) tokens are estimated as words × 1.3, rounded up.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from labtax.errors import UsageError
from labtax.models import cache_dir
from labtax.sdg.readers import extract
from labtax.taxonomy.model import Leaf, is_url_repo
from labtax.teachers.base import estimate_tokens
from labtax.util.git import run_git

SHA_RE = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")


@dataclass(frozen=True)
class Document:
    """One document file: `path` relative to the document root (posix), `text` its extracted text."""

    path: str
    text: str
    reader: str = "text"  # which reader made `text` (readers.extract): docling, pypdf, builtin-html, ...


@dataclass(frozen=True)
class Chunk:
    document: str
    index: int  # position of the chunk within its document
    text: str
    tokens: int


def _git(args: list[str], cwd: Path) -> str:
    code, out, err = run_git(args, cwd, env={"GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_NOSYSTEM": "1"})
    if code != 0:
        raise UsageError(f"git {args[0]} failed in document checkout: {err.strip()[:300]}")
    return out.decode("utf-8", "replace").strip()


class DocumentFetchError(UsageError):
    """The leaf's document repository could not be fetched (offline, DNS, no such commit): an error
    of that leaf, not of the taxonomy or the teacher."""


class NotFetched(UsageError):
    """A dry run needs a document that is not in the cache: it does not fetch (no network, no writes)."""


# Set (`no_fetch()`) for a dry run: reading the cache is allowed, filling it is not.
_NO_FETCH: contextvars.ContextVar[bool] = contextvars.ContextVar("labtax_no_fetch", default=False)


@contextlib.contextmanager
def no_fetch() -> Iterator[None]:
    token = _NO_FETCH.set(True)
    try:
        yield
    finally:
        _NO_FETCH.reset(token)


def _fetch_commit(source: str, commit: str) -> Path:
    """The pinned commit of `source` checked out in the cache (fetched only once; atomic rename)."""
    target = cache_dir() / "documents" / commit
    if (target / ".labtax-complete").exists():
        return target
    if _NO_FETCH.get():
        raise NotFetched(f"documents at {commit[:12]} are not fetched yet (a dry run does not fetch)")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f"{commit}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        _git(["init", "-q"], tmp)
        try:
            _git(["fetch", "-q", "--depth", "1", source, commit], tmp)
        except UsageError as exc:
            raise DocumentFetchError(f"cannot fetch the documents: {exc}") from None
        _git(["-c", "advice.detachedHead=false", "checkout", "-q", "FETCH_HEAD"], tmp)
        head = _git(["rev-parse", "HEAD"], tmp)
        if head != commit:
            raise UsageError(f"document commit {commit} fetched as {head}")
        (tmp / ".labtax-complete").write_text(source + "\n", encoding="utf-8")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    try:
        os.replace(tmp, target)
    except OSError:
        # Another run finished the same commit first; its checkout is identical.
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


def _looks_like_git_dir(path: Path) -> bool:
    return (path / "HEAD").is_file() and (path / "objects").is_dir() and (path / "refs").is_dir()


def _in_git_dir(local: Path, rel: PurePosixPath, taxonomy_root: Path) -> bool:
    """`local` is (inside) a git directory: a `.git`/`x.git` component, or a folder on the way down
    from the taxonomy root that holds HEAD, objects/ and refs/ (also reached through a symlink)."""
    if any(part.lower().endswith(".git") for part in rel.parts):
        return True
    try:
        resolved, root = local.resolve(), taxonomy_root.resolve()
    except OSError:
        return False
    for folder in (resolved, *resolved.parents):
        if folder == root or folder == folder.parent:
            break
        if folder.name.lower().endswith(".git") or _looks_like_git_dir(folder):
            return True
    return False


def document_root(leaf: Leaf, taxonomy_root: Path) -> Path:
    """The folder the leaf's `patterns` apply to (a cached checkout, or a folder in the taxonomy)."""
    doc = leaf.spec.document
    repo, commit = (doc.repo, doc.commit) if doc else ("", "")
    if not repo:
        raise UsageError(f"{leaf.path}: knowledge leaf has no document.repo")
    if is_url_repo(repo):
        if not SHA_RE.match(commit):
            raise UsageError(f"{leaf.path}: document.commit must be a full commit SHA, got {commit!r}")
        return _fetch_commit(repo, commit)
    rel = PurePosixPath(repo)
    if rel.is_absolute() or Path(repo).is_absolute() or ".." in rel.parts:
        raise UsageError(
            f"{leaf.path}: document.repo {repo!r} leaves the taxonomy",
            hint="use a path relative to the taxonomy root, or a URL (file://, https://)",
        )
    local = taxonomy_root / repo
    if _in_git_dir(local, rel, taxonomy_root):
        raise UsageError(f"{leaf.path}: document.repo {repo!r} is inside a git directory",
                         hint="its config and credentials are no document: point at a folder of documents")
    if not _inside(local, taxonomy_root):
        raise UsageError(f"{leaf.path}: document.repo {repo!r} leaves the taxonomy (through a symlink)")
    if not local.is_dir():
        raise UsageError(f"{leaf.path}: document.repo {repo!r} is not a folder in the taxonomy")
    if (local / ".git").exists():
        if not SHA_RE.match(commit):
            raise UsageError(f"{leaf.path}: document.commit must be a full commit SHA, got {commit!r}")
        return _fetch_commit(str(local.resolve()), commit)
    return local


def _check_pattern(leaf: Leaf, pattern: str) -> None:
    p = PurePosixPath(pattern)
    if not pattern or p.is_absolute() or pattern.startswith(("/", "\\")) or ".." in p.parts or ":" in pattern[:3]:
        raise UsageError(f"{leaf.path}: document pattern {pattern!r} leaves the document repository")


# A Git LFS pointer: what a checkout without `git lfs pull` holds instead of the file (about 130
# bytes: the spec URL, the real file's sha256 and size). Read as text it would be "the document".
_LFS_POINTER = b"version https://git-lfs.github.com/spec/"
_LFS_POINTER_MAX_BYTES = 1024


def is_lfs_pointer(path: Path) -> bool:
    """True when `path` is a Git LFS pointer file rather than the content it points to."""
    try:
        if path.stat().st_size > _LFS_POINTER_MAX_BYTES:
            return False
        with path.open("rb") as f:
            return f.read(len(_LFS_POINTER)) == _LFS_POINTER
    except OSError:
        return False


def read_document(path: Path, reader: str = "auto") -> str:
    """One document's text, as `reader` (auto, docling, builtin) reads it."""
    return extract(path, reader)[0]


def load_documents(leaf: Leaf, taxonomy_root: Path, reader: str = "auto") -> list[Document]:
    """Every document matched by the leaf's `patterns`, sorted by path, each read once."""
    root = document_root(leaf, Path(taxonomy_root))
    found: dict[str, Path] = {}
    patterns = list(leaf.spec.document.patterns) if leaf.spec.document else []
    for pattern in patterns:
        _check_pattern(leaf, pattern)
        for path in root.glob(pattern):
            rel = path.relative_to(root).as_posix()
            parts = PurePosixPath(rel).parts
            if not path.is_file() or any(p.lower() == ".git" for p in parts) or rel == ".labtax-complete":
                continue
            if not _inside(path, root):
                raise UsageError(f"{leaf.path}: document {rel!r} is a link out of the document repository")
            if is_lfs_pointer(path):
                raise UsageError(f"{leaf.path}: document {rel!r} is a Git LFS pointer, not the document",
                                 hint="fetch the content with `git lfs pull` in the document repository")
            found[rel] = path
    if not found:
        raise UsageError(f"{leaf.path}: document patterns {patterns!r} match no file")

    return [Document(rel, *extract(found[rel], reader)) for rel in sorted(found)]


def _split_long(text: str, budget: int, count: Callable[[str], int]) -> list[str]:
    """Split one over-budget paragraph: by sentences, then (for a huge sentence) by words."""
    pieces: list[str] = []
    sentences = re.split(r"(?<=[.!?])\s+", text)
    for sentence in sentences:
        if count(sentence) <= budget:
            pieces.append(sentence)
            continue
        words = sentence.split()
        step = max(1, int(budget / 1.5))  # a word is rarely more than 1.5 tokens
        pieces.extend(" ".join(words[i : i + step]) for i in range(0, len(words), step))
    return pieces


def chunk_text(text: str, budget: int, count: Callable[[str], int] = estimate_tokens) -> list[tuple[str, int]]:
    """Pack paragraphs into chunks of at most `budget` tokens; returns (text, tokens) pairs."""
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
    units: list[tuple[str, int]] = []
    for para in paragraphs:
        n = count(para)
        if n <= budget:
            units.append((para, n))
        else:
            units.extend((piece, count(piece)) for piece in _split_long(para, budget, count) if piece)
    chunks: list[tuple[str, int]] = []
    current: list[str] = []
    used = 0
    for unit, n in units:
        # +1 per paragraph: the blank line joining them costs about a token.
        if current and used + n + 1 > budget:
            chunks.append(("\n\n".join(current), used))
            current, used = [], 0
        current.append(unit)
        used += n + (1 if len(current) > 1 else 0)
    if current:
        chunks.append(("\n\n".join(current), used))
    return chunks


def chunk_documents(
    documents: list[Document], budget: int, count: Callable[[str], int] = estimate_tokens
) -> list[Chunk]:
    chunks: list[Chunk] = []
    for doc in documents:
        for index, (text, tokens) in enumerate(chunk_text(doc.text, budget, count)):
            chunks.append(Chunk(doc.path, index, text, tokens))
    return chunks
