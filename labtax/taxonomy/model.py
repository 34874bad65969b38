"""The taxonomy's data types: a leaf (one qna.yaml) and a validation finding."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any, Literal

Kind = Literal["knowledge", "compositional_skills", "foundational_skills"]
Severity = Literal["error", "warning"]

KINDS: tuple[Kind, ...] = ("knowledge", "compositional_skills", "foundational_skills")
LEAF_FILENAME = "qna.yaml"
ATTRIBUTION_FILENAME = "attribution.txt"


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

    @property
    def grounded(self) -> bool:
        """A compositional skill whose seed examples carry a context."""
        seeds = self.data.get("seed_examples") or []
        return self.kind != "knowledge" and any(isinstance(s, dict) and s.get("context") for s in seeds)
