"""What a teacher may send back, checked at the one boundary every reply crosses.

A reply is untrusted input. `clean_reply` makes any backend's response safe to store, replay and mix,
and says what it had to repair or refuse, so each fault costs its own row and is counted:

  - text that is not a string, or holds lone surrogates (`"\\ud800"` in the JSON: no UTF-8 encoder
    accepts it): surrogates become U+FFFD ("invalid unicode");
  - NUL and other C0 control characters (but tab, newline, carriage return) are removed: labtax's
    internal markers are built from NUL, so no teacher text can ever equal one ("control characters");
  - token counts that are not finite non-negative integers (a list for `usage`, `1e999`): 0 ("bad usage");
  - text far longer than the request's max_tokens allows (a 10 MB answer): the text is dropped and
    the reply marked `finish_reason="overlong"`; its row is dropped by the pipeline ("overlong").
"""

from __future__ import annotations

import math
import re
from dataclasses import replace

from labtax.teachers.base import TeacherRequest, TeacherResponse

# A token of any tokenizer labtax meets is far below this many characters on average; the bound only
# catches replies that cannot have come from a max_tokens-bounded generation.
MAX_CHARS_PER_TOKEN = 16
MIN_CHAR_BUDGET = 4096
OVERLONG = "overlong"
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def char_budget(max_tokens: int) -> int:
    return max(MIN_CHAR_BUDGET, max_tokens * MAX_CHARS_PER_TOKEN)


def clean_count(value: object) -> int | None:
    """A token count as an int, or None when it is not a finite non-negative integer."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, float) and math.isfinite(value) and value >= 0 and value.is_integer():
        return int(value)
    return None


def clean_text(text: object) -> tuple[str, list[str]]:
    """The text safe to encode, store and mix, and the repairs it needed."""
    faults: list[str] = []
    if not isinstance(text, str):
        return "", ["text not a string"]
    if _SURROGATE.search(text):
        text = _SURROGATE.sub("\ufffd", text)
        faults.append("invalid unicode")
    if _CONTROL.search(text):
        text = _CONTROL.sub("", text)
        faults.append("control characters")
    return text, faults


def clean_fields(response: TeacherResponse) -> tuple[str, dict[str, int], list[str]]:
    """The reply's text made encodable and its token counts plain integers, and what was repaired."""
    text, faults = clean_text(response.text)
    counts = {}
    for name in ("prompt_tokens", "completion_tokens"):
        value = clean_count(getattr(response, name))
        if value is None:
            faults.append("bad usage")
        counts[name] = value or 0
    return text, counts, faults


def clean_reply(request: TeacherRequest, response: TeacherResponse) -> tuple[TeacherResponse, list[str]]:
    """`response` made safe (see the module docstring), and the faults found in it."""
    if not response.ok:
        return response, []
    text, counts, faults = clean_fields(response)
    finish = response.finish_reason if isinstance(response.finish_reason, str) else None
    if len(text) > char_budget(request.max_tokens):
        text, finish = "", OVERLONG
        faults.append(OVERLONG)
    if not faults:
        return response, []
    cleaned = replace(response, text=text, finish_reason=finish, prompt_tokens=counts["prompt_tokens"],
                      completion_tokens=counts["completion_tokens"])
    return cleaned, sorted(set(faults))
