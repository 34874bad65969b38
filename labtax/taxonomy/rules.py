"""Rules beyond the schema: checks on meaning that JSON Schema cannot express.

Policy (issue 2): where labtax is stricter than the public InstructLab schema package, the extra rule is
a warning, unless the file would break a later stage (then an error). Every function here is defensive
about types: it runs on documents that may also have failed the schema.
"""

from __future__ import annotations

import re
from typing import Any

from labtax.taxonomy.model import Finding

CONTEXT_WORDS = 500
QA_WORDS = 250
SKILL_SEED_WORDS = 2300

_SHA = re.compile(r"[0-9a-fA-F]{40}|[0-9a-fA-F]{64}")
_URL = re.compile(r"(?:https|ssh|git|file)://[^\s]+", re.IGNORECASE)
_SCP = re.compile(r"[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^\s]+")  # git@github.com:org/repo.git


class Ctx:
    """What a rule needs: the file, its kind and version, positions, and a place to put findings."""

    def __init__(self, file: str, kind: str, version: int, positions: dict[str, tuple[int, int]],
                 key_positions: dict[str, tuple[int, int]]) -> None:
        self.file, self.kind, self.version = file, kind, version
        self.positions, self.key_positions = positions, key_positions
        self.findings: list[Finding] = []

    def add(self, rule: str, severity: str, path: str, message: str, hint: str | None = None,
            *, at_key: bool = False) -> None:
        pos = (self.key_positions.get(path) if at_key else None) or self.positions.get(path) or (1, 1)
        self.findings.append(Finding(rule, severity, self.file, pos[0], pos[1], message, path, hint))  # type: ignore[arg-type]


def _words(text: Any) -> int:
    return len(text.split()) if isinstance(text, str) else 0


def _norm(text: str) -> str:
    return " ".join(text.split()).casefold()


def _pairs(data: dict[str, Any], kind: str) -> list[tuple[str, Any, Any]]:
    """(yaml path, question, answer) for every Q&A of the leaf, whatever its kind."""
    seeds = data.get("seed_examples")
    out: list[tuple[str, Any, Any]] = []
    if not isinstance(seeds, list):
        return out
    for i, seed in enumerate(seeds):
        if not isinstance(seed, dict):
            continue
        if kind == "knowledge":
            qas = seed.get("questions_and_answers")
            if isinstance(qas, list):
                for j, qa in enumerate(qas):
                    if isinstance(qa, dict):
                        out.append((f"seed_examples[{i}].questions_and_answers[{j}]", qa.get("question"), qa.get("answer")))
        else:
            out.append((f"seed_examples[{i}]", seed.get("question"), seed.get("answer")))
    return out


def duplicate_questions(ctx: Ctx, data: dict[str, Any]) -> None:
    """The same question with two different answers teaches the model two things at once."""
    first: dict[str, tuple[str, str]] = {}
    for path, question, answer in _pairs(data, ctx.kind):
        if not isinstance(question, str) or not isinstance(answer, str):
            continue
        key = _norm(question)
        if key in first and _norm(first[key][1]) != _norm(answer):
            ctx.add("duplicate-question", "warning", f"{path}.question",
                    f"the same question is asked in {first[key][0]} with a different answer",
                    "merge the two answers or make the questions differ")
        first.setdefault(key, (path, answer))


def grounded_context(ctx: Ctx, data: dict[str, Any]) -> None:
    """A grounded skill gives every example a context; a freeform one gives none."""
    seeds = data.get("seed_examples")
    if ctx.kind == "knowledge" or not isinstance(seeds, list):
        return
    with_ctx = [i for i, s in enumerate(seeds) if isinstance(s, dict) and "context" in s]
    if with_ctx and len(with_ctx) < len(seeds):
        missing = [i for i, s in enumerate(seeds) if isinstance(s, dict) and "context" not in s]
        for i in missing:
            ctx.add("grounded-context", "warning", f"seed_examples[{i}]",
                    f"this example has no context, but {len(with_ctx)} of {len(seeds)} examples do",
                    "give every example a context (grounded skill) or none (freeform skill)")


def word_limits(ctx: Ctx, data: dict[str, Any]) -> None:
    """The documented soft limits: they keep seeds inside the teacher's prompt budget.

    Words are only counted when the text is long enough to exceed a limit (n words need at least
    2n-1 characters), so clean leaves cost a few len() calls.
    """
    seeds = data.get("seed_examples")
    if not isinstance(seeds, list):
        return
    total_chars = 0
    for i, seed in enumerate(seeds):
        if not isinstance(seed, dict):
            continue
        context = seed.get("context")
        if isinstance(context, str):
            total_chars += len(context)
            if len(context) >= 2 * CONTEXT_WORDS - 1 and _words(context) > CONTEXT_WORDS:
                ctx.add("word-limit", "warning", f"seed_examples[{i}].context",
                        f"context has {_words(context)} words; the limit is {CONTEXT_WORDS}", "shorten the passage")
    for path, question, answer in _pairs(data, ctx.kind):
        chars = (len(question) if isinstance(question, str) else 0) + (len(answer) if isinstance(answer, str) else 0)
        total_chars += chars
        if chars >= 2 * QA_WORDS - 1:
            words = _words(question) + _words(answer)
            if words > QA_WORDS:
                ctx.add("word-limit", "warning", path,
                        f"question and answer have {words} words together; the limit is {QA_WORDS}")
    if ctx.kind != "knowledge" and total_chars >= 2 * SKILL_SEED_WORDS - 1:
        total = sum(
            _words(s.get("context")) + _words(s.get("question")) + _words(s.get("answer"))
            for s in seeds if isinstance(s, dict)
        )
        if total > SKILL_SEED_WORDS:
            ctx.add("word-limit", "warning", "seed_examples",
                    f"the seed examples have {total} words in all; the limit is about {SKILL_SEED_WORDS}")


def unknown_qa_keys(ctx: Ctx, data: dict[str, Any]) -> None:
    """The public schema tolerates extra keys in a knowledge Q&A; labtax ignores them, and says so."""
    if ctx.kind != "knowledge":
        return
    seeds = data.get("seed_examples")
    for i, seed in enumerate(seeds if isinstance(seeds, list) else []):
        qas = seed.get("questions_and_answers") if isinstance(seed, dict) else None
        for j, qa in enumerate(qas if isinstance(qas, list) else []):
            if isinstance(qa, dict):
                for key in qa:
                    if key not in ("question", "answer"):
                        ctx.add("unknown-key", "warning", f"seed_examples[{i}].questions_and_answers[{j}].{key}",
                                f"unknown key {str(key)!r} in a question and answer; it is ignored",
                                "allowed keys here: question, answer", at_key=True)


def _escapes(path: str) -> bool:
    """True when a relative posix path climbs out of its starting directory."""
    depth = 0
    for part in path.replace("\\", "/").split("/"):
        if part == "..":
            depth -= 1
            if depth < 0:
                return True
        elif part not in ("", ".", "**"):  # `**` may match no directory at all
            depth += 1
    return False


def _in_git_dir(path: str) -> bool:
    """A component `.git` or `<name>.git` (a bare repository), in any case (case-insensitive disks)."""
    return any(p.lower().endswith(".git") for p in re.split(r"[\\/]+", path) if p not in ("", "."))


def document_reference(ctx: Ctx, data: dict[str, Any]) -> None:
    """Knowledge `document`: safe patterns (error), a usable repo and a pinned commit (warnings)."""
    document = data.get("document")
    if ctx.kind != "knowledge" or not isinstance(document, dict):
        return
    patterns = document.get("patterns")
    for i, pattern in enumerate(patterns if isinstance(patterns, list) else []):
        if not isinstance(pattern, str):
            continue
        path = f"document.patterns[{i}]"
        bad = (
            pattern.startswith(("/", "\\", "~"))
            or re.match(r"[A-Za-z]:", pattern) is not None
            or "://" in pattern
            or _escapes(pattern)
        )
        if _in_git_dir(pattern):
            ctx.add("document-git-dir", "error", path,
                    f"pattern {pattern!r} reaches into a .git directory",
                    "match the document files themselves, e.g. docs/*.md")
        elif bad:
            ctx.add("document-pattern", "error", path,
                    f"pattern {pattern!r} must be a relative glob inside the document repository",
                    "write a path relative to the repository root, e.g. docs/*.md, without '..'")
    repo = document.get("repo")
    if isinstance(repo, str) and repo:
        is_url = _URL.fullmatch(repo) is not None or _SCP.fullmatch(repo) is not None
        is_local = "://" not in repo and not repo.startswith(("/", "~")) and not _escapes(repo)
        if is_local and _in_git_dir(repo):
            ctx.add("document-git-dir", "error", "document.repo",
                    f"repo {repo!r} is inside a git directory (its config and credentials are no document)",
                    "point document.repo at a folder of documents, or a repository URL")
        elif not (is_url or is_local):
            ctx.add("document-repo", "warning", "document.repo",
                    f"repo {repo!r} is not an https, ssh, git or file URL, nor a path inside this repository",
                    "use https://host/org/repo.git, or a path relative to the taxonomy root")
    commit = document.get("commit")
    if isinstance(commit, str) and commit and _SHA.fullmatch(commit) is None:
        ctx.add("document-commit", "warning", "document.commit",
                f"commit {commit!r} is not a full 40-character SHA",
                "pin the full SHA (git rev-parse <ref>); short SHAs and branch names can move or clash")


ALL_RULES = (duplicate_questions, grounded_context, word_limits, unknown_qa_keys, document_reference)


def check_rules(file: str, kind: str, version: int, data: dict[str, Any],
                positions: dict[str, tuple[int, int]], key_positions: dict[str, tuple[int, int]]) -> list[Finding]:
    ctx = Ctx(file, kind, version, positions, key_positions)
    for rule in ALL_RULES:
        rule(ctx, data)
    return ctx.findings
