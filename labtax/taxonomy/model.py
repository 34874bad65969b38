"""The taxonomy's data types: a leaf (one qna.yaml) and a validation finding."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import PurePosixPath
from typing import Any, Literal

Kind = Literal["knowledge", "compositional_skills", "foundational_skills"]
Severity = Literal["error", "warning"]

KINDS: tuple[Kind, ...] = ("knowledge", "compositional_skills", "foundational_skills")
LEAF_FILENAME = "qna.yaml"
ATTRIBUTION_FILENAME = "attribution.txt"


# A document repository given as one of these is a URL (fetched at its pinned commit); anything else
# is a folder relative to the taxonomy root. Decided here only (`is_url_repo`).
URL_PREFIXES = ("http://", "https://", "ssh://", "git://", "file://", "git@")


def is_url_repo(repo: str) -> bool:
    """Whether a knowledge leaf's `document.repo` is a URL rather than a folder in the taxonomy."""
    return repo.startswith(URL_PREFIXES)


def kind_of(path: str) -> Kind | None:
    """The taxonomy root a repository-relative posix path lies under, if any."""
    top = PurePosixPath(path).parts[:1]
    return top[0] if top and top[0] in KINDS else None  # type: ignore[return-value]


@dataclass(frozen=True)
class Finding:
    """One problem found in a file. Positions are 1-based; line 1 col 1 when there is no better place."""

    rule: str
    severity: Severity
    path: str
    line: int
    col: int
    message: str
    yaml_path: str = ""
    hint: str | None = None

    def sort_key(self) -> tuple[str, int, int, str, str]:
        return (self.path, self.line, self.col, self.rule, self.message)


def _text(value: Any) -> str:
    """A YAML scalar as the pipelines read it: its text when it is set, else ""."""
    return str(value) if value else ""


@dataclass(frozen=True)
class DocumentRef:
    """A knowledge leaf's `document:`: a repository at a commit and the glob patterns of its documents.
    `repo` is a URL (`url`) or a folder of the taxonomy (`folder`); `commit` is lower-cased."""

    repo: str
    commit: str
    patterns: tuple[str, ...]

    @property
    def url(self) -> bool:
        return is_url_repo(self.repo)

    @property
    def folder(self) -> str | None:
        """The taxonomy folder it names (posix, no outer slashes); None for a URL or no repo."""
        return PurePosixPath(self.repo).as_posix().strip("/") if self.repo and not self.url else None

    @classmethod
    def from_yaml(cls, doc: Any) -> DocumentRef | None:
        if not isinstance(doc, dict) or not doc:
            return None
        patterns = doc.get("patterns") or []
        if isinstance(patterns, str):
            patterns = [patterns]
        return cls(str(doc.get("repo") or "").strip(), str(doc.get("commit") or "").strip().lower(),
                   tuple(str(p) for p in patterns))


@dataclass(frozen=True)
class Seed:
    """One seed example (a mapping of `seed_examples`), texts as written ("" when unset). Skills have a
    question, an answer and maybe a context; knowledge a context and `pairs` (j, question, answer):
    its `questions_and_answers` that have both, j their position."""

    index: int  # its position in seed_examples
    question: str
    answer: str
    context: str
    pairs: tuple[tuple[int, str, str], ...]

    @classmethod
    def from_yaml(cls, index: int, seed: dict[str, Any]) -> Seed:
        qas = seed.get("questions_and_answers") or []
        pairs = tuple((j, str(qa["question"]), str(qa["answer"])) for j, qa in enumerate(qas)
                      if isinstance(qa, dict) and qa.get("question") and qa.get("answer"))
        return cls(index, _text(seed.get("question")), _text(seed.get("answer")), _text(seed.get("context")), pairs)


@dataclass(frozen=True)
class LeafSpec:
    """What generation reads of a leaf, parsed once from its YAML (`Leaf.spec`): texts stripped,
    the seeds that are mappings, the document reference."""

    task_description: str  # skills
    domain: str  # knowledge
    document_outline: str  # knowledge
    seeds: tuple[Seed, ...]
    document: DocumentRef | None  # knowledge

    @classmethod
    def from_yaml(cls, data: dict[str, Any]) -> LeafSpec:
        raw = data.get("seed_examples") or []
        seeds = tuple(Seed.from_yaml(i, s) for i, s in enumerate(raw) if isinstance(s, dict)) \
            if isinstance(raw, list) else ()
        return cls(_text(data.get("task_description")).strip(), _text(data.get("domain")).strip(),
                   _text(data.get("document_outline")).strip(), seeds, DocumentRef.from_yaml(data.get("document")))


@dataclass
class Leaf:
    """One parsed qna.yaml. `path` is the posix path of the qna.yaml relative to the taxonomy root."""

    path: str
    kind: Kind
    data: dict[str, Any]
    version: int = 1
    # yaml_path ("seed_examples[2].answer") -> (line, col), 1-based; filled by the position-aware reader.
    positions: dict[str, tuple[int, int]] = field(default_factory=dict)
    # yaml_path -> (line, col) of the KEY that holds the value (for findings about a key itself).
    key_positions: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def leaf_dir(self) -> str:
        return str(PurePosixPath(self.path).parent)

    @cached_property
    def spec(self) -> LeafSpec:
        """The leaf's YAML parsed for generation, once (the YAML is not changed after loading)."""
        return LeafSpec.from_yaml(self.data)

    @property
    def grounded(self) -> bool:
        """A compositional skill whose seed examples carry a context."""
        seeds = self.data.get("seed_examples") or []
        return self.kind != "knowledge" and any(isinstance(s, dict) and s.get("context") for s in seeds)
