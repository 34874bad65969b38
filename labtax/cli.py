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


# ---------------------------------------------------------------- generate, diff-generate, gc (sdg/)


# ---------------------------------------------------------------- train (train/)


# ---------------------------------------------------------------- eval (eval/)


# ---------------------------------------------------------------- init, install-hooks (hooks, CI)


def main() -> None:
    cli(prog_name="labtax")
