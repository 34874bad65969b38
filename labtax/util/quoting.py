"""Paths in text output, quoted the way git quotes them (`core.quotePath=false`: names in any script
stay readable, as labtax always printed them).

A leaf folder may be named anything a file system allows, newlines included. Printed raw, a name
such as `x\\n::warning file=README.md::…\\n/leaf` would become a line GitHub Actions reads as a
workflow command, or forge a line of labtax's own report. A path with a control character, a double
quote, a backslash or DEL is therefore printed in double quotes with C escapes (`\\n`, `\\t`, `\\"`,
`\\\\`, octal `\\177` for the others), exactly as `git -c core.quotePath=false diff --name-only` prints
it; every other path, non-ASCII included, is printed as it is. JSON output needs none of this (JSON escapes).
"""

from __future__ import annotations

_NAMED = {"\a": "\\a", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\v": "\\v", "\f": "\\f", "\r": "\\r",
          '"': '\\"', "\\": "\\\\"}


def _needs(ch: str) -> bool:
    return ch < " " or ch in ('"', "\\", "\x7f")


def quote_path(path: str) -> str:
    """`path` as git prints it: unchanged when plain, else quoted with C escapes."""
    if not any(_needs(ch) for ch in path):
        return path
    return '"' + "".join(_NAMED.get(ch) or (f"\\{ord(ch):03o}" if _needs(ch) else ch) for ch in path) + '"'


def one_line(text: str) -> str:
    """Free text (an error message that may quote a path) kept on one line: CR and LF escaped."""
    return text.replace("\r", "\\r").replace("\n", "\\n")
