"""Writing scaffold files: never overwrite a file that differs unless forced, always atomically."""

from __future__ import annotations

import enum
import stat
from dataclasses import dataclass
from pathlib import Path

from labtax.util.atomic import atomic_write_text


class Outcome(enum.Enum):
    """What happened to one file; `value` is the word printed for it."""

    CREATED = "created"
    UNCHANGED = "unchanged"
    OVERWRITTEN = "overwritten"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class PlannedFile:
    """A file to write, relative to a target directory."""

    relpath: str
    content: str
    executable: bool = False


@dataclass(frozen=True)
class Written:
    path: Path
    outcome: Outcome


def written_lines(results: list[Written], root: Path) -> tuple[list[str], int]:
    """One line per file (relative to `root` where it lies below it), and how many were skipped
    because they exist and differ."""
    lines: list[str] = []
    skipped = 0
    for result in results:
        try:
            shown = result.path.relative_to(root)
        except ValueError:
            shown = result.path
        if result.outcome is Outcome.SKIPPED:
            skipped += 1
            lines.append(f"skipped      {shown} (exists and differs; --force overwrites it)")
        else:
            lines.append(f"{result.outcome.value:<12} {shown}")
    return lines, skipped


def read_template(*parts: str) -> str:
    """The text of a data file shipped in `labtax/scaffold/` (works from a wheel or a checkout)."""
    from importlib import resources  # ~5 ms: for init and install-hooks, not every command line

    node = resources.files("labtax.scaffold")
    for part in parts:
        node = node.joinpath(part)
    return node.read_text(encoding="utf-8")


def render(text: str, values: dict[str, str]) -> str:
    """Replace `__NAME__` placeholders. Not str.format/Template: workflow files are full of `${{ }}`
    and shell `$VAR`, which must pass through untouched."""
    for name, value in values.items():
        text = text.replace(f"__{name}__", value)
    return text


def write_atomic(path: Path, content: str, *, executable: bool = False) -> None:
    """Write through a temporary file and a rename so a reader never sees half a file."""
    atomic_write_text(path, content, mode=0o755 if executable else 0o644)


def _is_executable(path: Path) -> bool:
    return bool(path.stat().st_mode & stat.S_IXUSR)


def write_planned(root: Path, planned: list[PlannedFile], *, force: bool) -> list[Written]:
    """Write each planned file under `root`. An existing file with the same content is left alone
    (re-running is a no-op); one with other content is skipped unless `force`."""
    results: list[Written] = []
    for item in planned:
        path = root / item.relpath
        if path.is_symlink() or path.exists():
            if not path.is_file():
                results.append(Written(path, Outcome.SKIPPED))
                continue
            same = path.read_bytes() == item.content.encode("utf-8")
            if same and (not item.executable or _is_executable(path)):
                results.append(Written(path, Outcome.UNCHANGED))
                continue
            if not force:
                results.append(Written(path, Outcome.SKIPPED))
                continue
            if path.is_symlink():
                path.unlink()
            write_atomic(path, item.content, executable=item.executable)
            results.append(Written(path, Outcome.OVERWRITTEN))
            continue
        write_atomic(path, item.content, executable=item.executable)
        results.append(Written(path, Outcome.CREATED))
    return results
