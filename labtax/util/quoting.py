"""Paths in text output, quoted the way git quotes them (`core.quotePath=false`: names in any script
stay readable, as labtax always printed them).

A leaf folder may be named anything a file system allows, newlines included. Printed raw, a name
such as `x\\n::warning file=README.md::…\\n/leaf` would become a line GitHub Actions reads as a
workflow command, or forge a line of labtax's own report. A path with a control character, a double
quote, a backslash or DEL is therefore printed in double quotes with C escapes (`\\n`, `\\t`, `\\"`,
`\\\\`, octal `\\177` for the others), exactly as `git -c core.quotePath=false diff --name-only` prints
it. Bidirectional-control characters (U+202A-U+202E, U+2066-U+2069, U+200E/F, U+061C) are quoted
too, as the octal escapes of their UTF-8 bytes, as git's default (core.quotePath=true) prints them:
`knowledge/\\342\\200\\256x`. Every other path, non-ASCII included, is printed as it is. JSON output
needs none of this (JSON escapes).
"""

from __future__ import annotations

_NAMED = {"\a": "\\a", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\v": "\\v", "\f": "\\f", "\r": "\\r",
          '"': '\\"', "\\": "\\\\"}


# Bidirectional controls (Trojan Source, CVE-2021-42574): printed raw, U+202E makes a terminal or a
# GitHub annotation show the rest of a name backwards (`knowledge/<U+202E>lmth.exe` reads as
# `knowledge/exe.html`). Quoted like the control characters, each as the octal escapes of its UTF-8
# bytes, as git prints any non-ASCII byte under core.quotePath=true.
BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _needs(ch: str) -> bool:
    return ch < " " or ch in ('"', "\\", "\x7f") or ch in BIDI


def _escape(ch: str) -> str:
    if ch in _NAMED:
        return _NAMED[ch]
    if not _needs(ch):
        return ch
    return "".join(f"\\{b:03o}" for b in ch.encode("utf-8"))


def quote_path(path: str) -> str:
    """`path` as git prints it: unchanged when plain, else quoted with C escapes (bidirectional
    controls as their UTF-8 bytes in octal)."""
    if not any(_needs(ch) for ch in path):
        return path
    return '"' + "".join(_escape(ch) for ch in path) + '"'


def one_line(text: str) -> str:
    """Free text (an error message that may quote a path) kept on one line: CR and LF escaped, and
    bidirectional controls escaped as in quote_path."""
    return escape_bidi(text.replace("\r", "\\r").replace("\n", "\\n"))


def escape_bidi(text: str) -> str:
    """`text` with every bidirectional control as the octal escapes of its UTF-8 bytes."""
    if not any(ch in BIDI for ch in text):
        return text
    return "".join(_escape(ch) if ch in BIDI else ch for ch in text)
