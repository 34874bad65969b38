"""The log of an exception labtax did not expect (a bug): its traceback goes to a file whose path the
one-line error names, so that a user sees one line (never a traceback) and a maintainer gets the
whole story (pre-commit does the same with ~/.cache/pre-commit/pre-commit.log).

The folder: $LABTAX_LOG_DIR, else $XDG_CACHE_HOME/labtax (~/.cache/labtax), else the temporary
folder when neither can be written (a read-only home on a CI runner). Secrets are redacted: a
teacher's API key may sit in a request the traceback's message quotes.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path


def _folders() -> list[Path]:
    folders = []
    if os.environ.get("LABTAX_LOG_DIR"):
        folders.append(Path(os.environ["LABTAX_LOG_DIR"]))
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    import tempfile  # with traceback below: the bug path only, not every command line's import

    folders += [Path(cache) / "labtax", Path(tempfile.gettempdir())]
    return folders


def write_bug_log(exc: BaseException, version: str, redact: Callable[[str], str],
                  argv: list[str] | None = None) -> Path | None:
    """Write `exc`'s traceback with labtax's `version`, python and the command line, through `redact`
    (util comes before teachers, so the CLI hands it in); the file's path, or None when no folder
    could be written (the caller still prints its one line)."""
    import traceback

    trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    body = (f"labtax {version}, python {platform.python_version()}, {platform.platform()}\n"
            f"command: {' '.join(argv if argv is not None else sys.argv)}\n"
            f"cwd: {os.getcwd()}\n\n{trace}")
    name = f"labtax-bug-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{os.getpid()}.log"
    for folder in _folders():
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / name
            path.write_text(redact(body), encoding="utf-8")
            return path
        except OSError:
            continue
    return None
