"""Knowledge document references: which local documents a knowledge leaf points to.

A knowledge qna.yaml names its documents with `document: {repo, commit, patterns}`. `repo` is either
a URL (fetched elsewhere at `commit`; nothing in this repository can change it) or a folder relative to
the TAXONOMY root, never climbing out of it (`..` is refused, as `labtax.sdg` refuses it); `patterns` are globs inside that folder, with `pathlib.Path.glob` semantics (`*`
stays within one path segment, `**` spans folders), the same way `labtax.sdg` reads them.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from typing import Any

from labtax.taxonomy.model import is_url_repo

# Cheap pre-filter for scanning thousands of leaves: the first `repo:` value, without parsing YAML.
_REPO_LINE = re.compile(rb"^[ \t]*repo[ \t]*:[ \t]*['\"]?([^\s'\"#]*)", re.MULTILINE)
# An unquoted YAML alias (`*name`): its value lives elsewhere, so equal text would prove nothing.
_ALIAS = re.compile(rb"(?:^|[\s\[{,:])\*[^\s,\]}]")


# A qna.yaml is a few KB; a huge one is validate's problem and here simply compares by bytes.
MAX_PARSE_BYTES = 1 << 20


def load_yaml(data: bytes) -> Any:
    """The parsed YAML, or None when it does not parse (such a leaf simply compares by bytes)."""
    if len(data) > MAX_PARSE_BYTES:
        return None
    import yaml  # only when a leaf's text changed: most diffs never parse YAML

    try:
        return yaml.load(data, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # plain data only
    except Exception:  # noqa: BLE001 (any parser failure: garbage is validate's business, not ours)
        return None


def document_block(data: bytes | None) -> tuple[bool, Any]:
    """(parsed?, the `document` value) of a qna.yaml's bytes; (False, None) when it doesn't parse."""
    if data is None:
        return False, None
    parsed = load_yaml(data)
    if not isinstance(parsed, dict):
        return False, None
    return True, parsed.get("document")


def _document_text(data: bytes) -> bytes | None:
    """The raw lines of the top-level `document:` block (up to the next top-level line), if any."""
    start = 0 if data.startswith(b"document:") else data.find(b"\ndocument:") + 1
    if start == 0 and not data.startswith(b"document:"):
        return None
    end = start
    while True:
        end = data.find(b"\n", end)
        if end < 0 or end + 1 >= len(data) or data[end + 1 : end + 2] not in (b" ", b"\t", b"\n", b"#", b"-"):
            return data[start:] if end < 0 else data[start : end + 1]
        end += 1


def references_changed(old: bytes | None, new: bytes | None) -> bool:
    """True when both sides parse and their document references (repo, commit, patterns) differ."""
    if old is not None and new is not None:
        # Fast path: the same `document:` block text, without aliases, is the same reference.
        text_old, text_new = _document_text(old), _document_text(new)
        if text_old is not None and text_old == text_new and not _ALIAS.search(text_old):
            return False
    ok_old, doc_old = document_block(old)
    ok_new, doc_new = document_block(new)
    return ok_old and ok_new and doc_old != doc_new


@dataclass(frozen=True)
class LocalDocuments:
    """A knowledge leaf's documents inside this repository: a folder (working-tree-relative) + globs."""

    folder: str  # "" = the working tree root
    patterns: tuple[str, ...]

    def matches(self, path: str) -> bool:
        """Does the working-tree-relative `path` hold one of these documents (or is it the folder)?"""
        if self.folder:
            if path == self.folder:  # a submodule (gitlink) that is the document folder itself
                return True
            if not path.startswith(self.folder + "/"):
                return False
            path = path[len(self.folder) + 1 :]
        return any(_glob_regex(p).fullmatch(path) for p in self.patterns)


def local_documents(data: bytes, taxonomy_prefix: str) -> LocalDocuments | None:
    """The in-repository documents a knowledge qna.yaml points to; None for URLs, none, or garbage."""
    first = data.find(b"repo")
    if first < 0 or b"document" not in data:
        return None
    quick = _REPO_LINE.search(data, data.rfind(b"\n", 0, first) + 1)
    if quick and is_url_repo(quick.group(1).decode("utf-8", "replace")):
        return None  # the common case (a GitHub URL): skip the YAML parse entirely
    ok, doc = document_block(data)
    if not ok or not isinstance(doc, dict):
        return None
    repo = str(doc.get("repo") or "").strip()
    if not repo or is_url_repo(repo) or repo.startswith("/") or ".." in repo.split("/"):
        return None  # a URL, or a folder labtax.sdg refuses (absolute, or climbing out of the taxonomy)
    folder = (
        posixpath.normpath(posixpath.join(taxonomy_prefix, repo))
        if taxonomy_prefix
        else posixpath.normpath(repo)
    )
    if folder == ".":
        folder = ""
    raw = doc.get("patterns") or []
    patterns = [raw] if isinstance(raw, str) else raw if isinstance(raw, list) else []
    return LocalDocuments(folder, tuple(str(p) for p in patterns if p))


_CACHE: dict[str, re.Pattern[str]] = {}


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """A regex for a `Path.glob` pattern matched against a relative posix path."""
    cached = _CACHE.get(pattern)
    if cached is not None:
        return cached
    parts = [p for p in pattern.strip("/").split("/") if p not in ("", ".")]
    out = ""
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if part == "**":
            # Zero or more whole folders; a trailing ** matches folders only, never files (pathlib).
            out += "(?:[^/]+/)*" if not last else "(?!)"
            continue
        out += _segment_regex(part) + ("" if last else "/")
    compiled = re.compile(out or "(?!)")
    _CACHE[pattern] = compiled
    return compiled


def _segment_regex(segment: str) -> str:
    """One path segment of a glob: * and ? never cross '/', [...] classes kept."""
    out, i = "", 0
    while i < len(segment):
        ch = segment[i]
        if ch == "*":
            out += "[^/]*"
        elif ch == "?":
            out += "[^/]"
        elif ch == "[":
            end = segment.find("]", i + 2 if segment[i + 1 : i + 2] in ("!", "]") else i + 1)
            if end < 0:
                out += re.escape(ch)
            else:
                body = segment[i + 1 : end]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out += "[" + body.replace("\\", "\\\\") + "]"
                i = end
        else:
            out += re.escape(ch)
        i += 1
    return out
