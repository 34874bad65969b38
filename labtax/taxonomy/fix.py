"""`labtax validate --fix`: repair the mechanical findings of a qna.yaml in place.

Fixed: trailing whitespace, a missing final newline, tabs in indentation and Windows line endings.
The edits are made on the text, line by line, so every comment, quote style and blank line stays
byte for byte; a ruamel.yaml round-trip load of the result then checks that the file is still the
same YAML document (same keys, same values up to the removed trailing whitespace, comments kept)
and that a tab replacement did not change its structure. A fix that fails that check is not
written. Like pre-commit's own fixers, the caller exits 1 when a file was changed.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labtax.util.atomic import atomic_write_bytes

TAB_WIDTH = 2  # the InstructLab taxonomy's indentation step
_LEADING = re.compile(r"^[ \t]+")
_BLANKS = re.compile(r"[ \t]+")


@dataclass
class FixResult:
    """What --fix did to one file: the rules it repaired, or why it left the file alone."""

    path: str
    fixed: list[str] = field(default_factory=list)
    skipped: str | None = None

    @property
    def changed(self) -> bool:
        return bool(self.fixed)


def _rt_load(text: str) -> Any:
    """The round-trip (comment-keeping) parse of `text`; raises on invalid YAML."""
    from ruamel.yaml import YAML

    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = True  # duplicates are reported by validate, not our business here
    return yaml.load(io.StringIO(text))


def _normalized(value: Any) -> Any:
    """Plain data without what the fixes may change: the fixes remove blanks at the end of a source
    line, which a loaded string holds at the end of one of its lines (a literal `|` block) or, once
    a folded scalar (`>`, `>-`) joined the lines, as blanks before the space the folding put in their
    place. So every run of blanks counts as one space and blanks at a line's end as nothing; any
    other change (a word, a line break, the structure) still fails the check."""
    if isinstance(value, dict):
        return {str(k): _normalized(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalized(v) for v in value]
    if isinstance(value, str):
        return "\n".join(_BLANKS.sub(" ", line).rstrip(" ") for line in value.split("\n")).rstrip("\n")
    return value


def _comments(text: str) -> list[str]:
    """The comment texts the round-trip loader attached to the document (compared before/after)."""
    from ruamel.yaml import YAML

    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = True
    out = io.StringIO()
    yaml.dump(_rt_load(text), out)
    return [line.strip() for line in re.findall(r"#[^\n]*", out.getvalue())]


def fix_text(text: str, tabs: bool = True) -> tuple[str, list[str]]:
    """The fixed text and the rule ids repaired (empty when nothing changed). Pure text edits;
    `tabs=False` leaves tabs in indentation as they are."""
    fixed: list[str] = []
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        fixed.append("yaml-newline")
    lines = text.split("\n")
    stripped = [line.rstrip(" \t") for line in lines]
    if stripped != lines:
        fixed.append("yaml-trailing-space")
    detabbed = stripped
    if tabs:
        detabbed = [_LEADING.sub(lambda m: m.group(0).expandtabs(TAB_WIDTH), line) for line in stripped]
    if detabbed != stripped:
        fixed.append("yaml-tab")
    text = "\n".join(detabbed)
    if text and not text.endswith("\n"):
        text += "\n"
        fixed.append("yaml-final-newline")
    return text, fixed


def check_fix(before: str, after: str) -> str | None:
    """None when `after` is the same document as `before`; else why the fix is unsafe."""
    from ruamel.yaml.error import YAMLError

    try:
        new = _rt_load(after)
    except (YAMLError, ValueError) as exc:
        return f"the fixed file would not parse ({type(exc).__name__})"
    try:
        old = _rt_load(before)
    except (YAMLError, ValueError):
        # Tabs in indentation make the original unparsable; the fixed one parses, which is the point.
        return None
    if _normalized(old) != _normalized(new):
        return "the fix would change the document's data"
    if _comments(before) != _comments(after):
        return "the fix would move or drop a comment"
    return None


def fix_file(root: Path, rel: str) -> FixResult:
    """Fix `root/rel` in place (atomically: a temporary file renamed over it)."""
    result = FixResult(rel)
    full = Path(root) / rel
    if full.is_symlink() or not full.is_file():
        result.skipped = "not a regular file"
        return result
    raw = full.read_bytes()
    try:
        before = raw.decode("utf-8")
    except UnicodeDecodeError:
        result.skipped = "not UTF-8"
        return result
    after, rules = fix_text(before)
    if not rules:
        return result
    problem = check_fix(before, after)
    if problem and "yaml-tab" in rules:
        # A tab inside a block scalar's text is data, not indentation: fix the rest without it.
        after, rules = fix_text(before, tabs=False)
        problem = check_fix(before, after) if rules else problem
    if problem or not rules:
        result.skipped = problem
        return result
    atomic_write_bytes(full, after.encode("utf-8"), mode=full.stat().st_mode & 0o7777)
    result.fixed = rules
    return result


def fix_targets(root: Path, targets: list[str]) -> list[FixResult]:
    """Fix every qna.yaml among `targets` (root-relative); attribution.txt is left alone."""
    return [fix_file(root, rel) for rel in targets if rel.endswith((".yaml", ".yml"))]


def fix_and_report(root: Path, targets: list[str], echo: Callable[[str], None]) -> int:
    """Fix `targets`, one line per file changed or left alone; returns how many were changed."""
    changed = 0
    for result in fix_targets(root, targets):
        if result.changed:
            changed += 1
            echo(f"labtax validate --fix: {result.path}: fixed {', '.join(result.fixed)}")
        elif result.skipped:
            echo(f"labtax validate --fix: {result.path}: not fixed: {result.skipped}")
    return changed
