"""`labtax install-hooks`: plain git hooks for contributors who do not use the pre-commit framework.

One script, `hooks/labtax-hook.sh`, is installed under each hook's name; it dispatches on the name it
was run as. A hook file that labtax did not write is never replaced without `force`.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from labtax.scaffold.files import Outcome, PlannedFile, Written, read_template, write_planned
from labtax.scaffold.gitdirs import hooks_dir

HOOK_NAMES: tuple[str, ...] = ("pre-commit", "pre-push")
MARKER = "# labtax-hook"  # first-lines marker: a hook containing it is ours to update


def hook_script() -> str:
    return read_template("hooks", "labtax-hook.sh")


def current_labtax_command() -> str | None:
    """The absolute path of the `labtax` executable next to this interpreter, if there is one: the
    hooks fall back to it when `labtax` is not on PATH (an IDE committing outside the venv)."""
    candidate = Path(sys.executable).parent / "labtax"
    if candidate.is_file():
        return str(candidate)
    import shutil  # ~5 ms with its compression modules: install-hooks only, not every command line

    found = shutil.which("labtax")
    return str(Path(found).resolve()) if found else None


def _ours(path: Path) -> bool:
    try:
        return MARKER in path.read_text(encoding="utf-8", errors="replace")[:2000]
    except OSError:
        return False


def install_hooks(
    cwd: Path, names: tuple[str, ...] = HOOK_NAMES, *, force: bool = False
) -> list[Written]:
    """Install the hooks; an older labtax hook is updated, a foreign one is kept unless `force`."""
    target = hooks_dir(cwd)
    script = hook_script()
    results: list[Written] = []
    for name in names:
        path = target / name
        replace = force or (path.is_file() and _ours(path))
        results.extend(
            write_planned(target, [PlannedFile(name, script, executable=True)], force=replace)
        )
    command = current_labtax_command()
    if command and any(r.outcome is not Outcome.SKIPPED for r in results):
        # Recorded per repository; the hook reads it with `git config labtax.command`.
        subprocess.run(
            ["git", "config", "--local", "labtax.command", command], cwd=cwd, check=False
        )
    return results
