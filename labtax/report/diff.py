"""`labtax diff`'s renderers (registry names `diff/text`, `diff/json`) of a `DiffResult`."""

from __future__ import annotations

import json
from typing import Any

from labtax.util.quoting import quote_path


def render_text(result: Any) -> str:
    """One line per leaf, sorted by path: `A|M|D path`, `R old -> new` (a path holding a control
    character is quoted as git quotes it: a newline in a name must not forge a line)."""
    return "".join(
        f"{c.letter} {quote_path(c.old_path)} -> {quote_path(c.path)}\n" if c.old_path
        else f"{c.letter} {quote_path(c.path)}\n"
        for c in result.changes
    )


def render_json(result: Any) -> str:
    """The stable JSON document {base, head, changes}."""
    return json.dumps(result.to_dict(), indent=2, ensure_ascii=False) + "\n"
