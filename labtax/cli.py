"""The labtax command line: click commands only.

Each command parses its options, calls the core, picks a reporter and returns an exit code. Core
modules are imported inside each command so that `labtax validate` never imports torch.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from typing import Any

import click

from labtax import __version__
from labtax.errors import LabtaxError, exit_code_for


def _guarded(func: Callable[..., int]) -> Callable[..., None]:
    """Run a command body; map domain errors to one line on stderr and the documented exit code."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            code = func(*args, **kwargs)
        except KeyboardInterrupt:
            click.echo("labtax: interrupted", err=True)
            sys.exit(130)
        except (LabtaxError, OSError) as exc:
            click.echo(f"labtax: error: {exc}", err=True)
            sys.exit(exit_code_for(exc))
        sys.exit(code or 0)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="labtax")
def cli() -> None:
    """labtax: validate, diff, generate and train on a LAB taxonomy of qna.yaml files.

    Exit codes: 0 ok, 1 findings or a failed gate, 2 usage or I/O error, 3 teacher failure,
    4 output directory locked by another run.
    """


# ---------------------------------------------------------------- validate (taxonomy/, report/)


# ---------------------------------------------------------------- diff (diff/)


@cli.command("diff")
@click.option(
    "--taxonomy",
    "taxonomy",
    default=".",
    show_default=True,
    type=click.Path(file_okay=False, path_type=str),
    help="Taxonomy root folder (may be a subfolder of the git working tree).",
)
@click.option("--base", default=None, help="Base ref; default origin/main, else main. 'empty': every leaf is added.")
@click.option("--head", default=None, help="Head ref; default: the working tree (staged, unstaged, untracked).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@_guarded
def diff_command(taxonomy: str, base: str | None, head: str | None, fmt: str) -> int:
    """List the changed leaves since the merge-base of BASE and HEAD: `A|M|D path`, `R old -> new`."""
    import json

    from labtax.diff import diff_taxonomy

    result = diff_taxonomy(taxonomy, base, head)
    if fmt == "json":
        click.echo(json.dumps(result.to_dict(), indent=2, ensure_ascii=False))
    else:
        for change in result.changes:
            target = f"{change.old_path} -> {change.path}" if change.old_path else change.path
            click.echo(f"{change.letter} {target}")
    if not result.changes:
        click.echo("no changed leaves", err=True)
    return 0


# ---------------------------------------------------------------- generate, diff-generate, gc (sdg/)


# ---------------------------------------------------------------- train (train/)


# ---------------------------------------------------------------- eval (eval/)


# ---------------------------------------------------------------- init, install-hooks (hooks, CI)


def main() -> None:
    cli(prog_name="labtax")
