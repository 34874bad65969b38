"""Keeping secrets out of every text labtax prints, logs or writes.

A teacher that reads an API key registers it here (`register_secret`). `redact(text)` then replaces
every registered secret, and anything shaped like a credential whatever its source (`Bearer …`,
`Basic …`, `sk-…` tokens, `api_key=…`), with `[REDACTED]`. Teachers redact their error texts before
they raise or return them (a server's 401 body often quotes the key it was sent), and the CLI, the
report writers and the run summaries redact again on the way out, so a text that reaches output by
another path is covered too.

Secrets are matched before any truncation: callers redact the whole text, then cut it, so half a key
can never survive a cut.
"""

from __future__ import annotations

import re
import threading

MARK = "[REDACTED]"
_lock = threading.Lock()
_secrets: set[str] = set()

# Shapes of credentials worth hiding even when labtax never saw them (a proxy's own token, a key in
# a URL a server echoes back). Conservative: each needs a recognisable prefix.
_SHAPES = re.compile(
    # a digit in the value: "token budget" is prose, "token ghp_1a2b..." a credential
    r"(?i)\b(?:bearer|basic|token)\s+(?=[A-Za-z0-9._~+/=-]*\d)[A-Za-z0-9._~+/=-]{6,}"
    r"|\b(?:sk|pk|rk)-[A-Za-z0-9_-]{6,}"
    r"|\b(?:api[_-]?key|access[_-]?token|password|secret)([\"']?\s*[=:]\s*)[\"']?[^\s\"'&,;}]{4,}"
)


def register_secret(value: str | None) -> None:
    """Remember a secret (an API key) so that `redact` hides it from every later text."""
    if value:
        with _lock:
            _secrets.add(value)
            # A key may also appear percent- or JSON-escaped in a quoted body.
            _secrets.add(value.replace("/", "\\/"))


def redact(text: str) -> str:
    """`text` with every registered secret and every credential-shaped token replaced by [REDACTED]."""
    if not text:
        return text
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)  # longest first: no half-replaced key
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MARK)
    return _SHAPES.sub(_shape_mark, text)


def _shape_mark(match: re.Match[str]) -> str:
    sep = match.group(1)
    if sep is not None:  # keep the name ("api_key="), hide the value
        name = match.group(0)[: match.start(1) - match.start(0)]
        return f"{name}{sep}{MARK}"
    word = match.group(0).split(None, 1)
    return f"{word[0]} {MARK}" if len(word) == 2 else MARK


def redact_obj(value: object) -> object:
    """Every string inside a JSON-like value redacted (for reports written to disk)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_obj(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_obj(v) for v in value]
    return value
