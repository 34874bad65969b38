"""`labtax init`: the files a taxonomy repository needs to use labtax in pre-commit and CI."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from labtax import __version__
from labtax.scaffold.files import PlannedFile, Written, read_template, render, write_planned
from labtax.scaffold.gitdirs import worktree_root

DEFAULT_REPOSITORY = "labtax/labtax"
DEFAULT_REF = f"v{__version__}"

# (template under templates/, path written in the taxonomy repository); the pre-commit config's
# template depends on InitOptions.remote_hook.
TEMPLATES: tuple[tuple[str, str], ...] = (
    ("pre-commit-config.yaml", ".pre-commit-config.yaml"),
    ("workflows/labtax-validate.yml", ".github/workflows/labtax-validate.yml"),
    ("workflows/labtax-generate.yml", ".github/workflows/labtax-generate.yml"),
    ("labtax.yaml", ".labtax.yaml"),
)


@dataclass(frozen=True)
class InitOptions:
    repository: str = DEFAULT_REPOSITORY  # owner/name of labtax on GitHub, used in `uses:`/`repo:`
    ref: str = DEFAULT_REF  # tag or SHA of labtax those lines pin
    force: bool = False
    # The pre-commit hook: False, a `local` hook running the installed labtax (works offline); True,
    # the remote form pinning `repository` at `ref` (pre-commit installs labtax from it, online).
    remote_hook: bool = False


def planned_files(options: InitOptions) -> list[PlannedFile]:
    """The rendered files, in a fixed order (also used to keep examples/ in sync with templates)."""
    values = {"LABTAX_REPOSITORY": options.repository, "LABTAX_REF": options.ref}
    remote = {"pre-commit-config.yaml": "pre-commit-config-remote.yaml"} if options.remote_hook else {}
    return [
        PlannedFile(target, render(read_template("templates", *remote.get(name, name).split("/")), values))
        for name, target in TEMPLATES
    ]


def init_repository(cwd: Path, options: InitOptions) -> list[Written]:
    """Write the scaffold at the top of the work tree containing `cwd`."""
    root = worktree_root(cwd)
    return write_planned(root, planned_files(options), force=options.force)
