"""The one text normaliser: generation's dedup (`labtax.sdg.dedup`) and the taxonomy-wide one
(`xdedup`) compare texts in this form."""

from __future__ import annotations

import re
import unicodedata

_PUNCT = re.compile(r"[^\w\s]", re.UNICODE)


def normalize(text: str) -> str:
    """Unicode NFKC, lower case, punctuation dropped, whitespace collapsed."""
    text = unicodedata.normalize("NFKC", text).lower()
    return " ".join(_PUNCT.sub(" ", text).split())
