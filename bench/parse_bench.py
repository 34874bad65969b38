"""Teacher-reply parsers are linear: CPU time of `parse_pairs` on hostile replies (N "Question:" lines,
no "Answer:") at N and 4N lines, against the single DOTALL regex with a look-ahead it replaced (the
baseline, measured in the same run). Prints seconds and the growth ratio of each (4 = linear, 16 =
quadratic) and the speed-up at the largest size. Usage: python bench/parse_bench.py [N]"""

from __future__ import annotations

import re
import sys
import time

from labtax.sdg.pipelines.parse import parse_pairs

# The parser before issue 12, kept here only as the baseline.
_OLD = re.compile(
    r"(?:^|\n)\s*(?:\*\*)?(?:question|q)\s*\d*\s*[:.]\s*(?:\*\*)?\s*(?P<q>.+?)\s*\n\s*(?:\*\*)?(?:answer|a)\s*\d*"
    r"\s*[:.]\s*(?:\*\*)?\s*(?P<a>.+?)(?=\n\s*(?:\*\*)?(?:question|q)\s*\d*\s*[:.]|\Z)",
    re.IGNORECASE | re.DOTALL,
)


def old_parse(text: str) -> list[tuple[str, str]]:
    return [(m.group("q"), m.group("a")) for m in _OLD.finditer(text.strip())]


def cpu(fn: object, text: str) -> float:
    start = time.process_time()
    fn(text)  # type: ignore[operator]
    return time.process_time() - start


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 250
    small, large = "Question: what is this thing about\n" * n, "Question: what is this thing about\n" * (4 * n)
    new_s, new_l = cpu(parse_pairs, small), cpu(parse_pairs, large)
    old_s, old_l = cpu(old_parse, small), cpu(old_parse, large)
    print(f"lines {n} -> {4 * n}")
    print(f"baseline regex: {old_s:.3f} s -> {old_l:.3f} s (growth x{old_l / max(old_s, 1e-9):.1f})")
    print(f"parse_pairs:    {new_s:.4f} s -> {new_l:.4f} s (growth x{new_l / max(new_s, 1e-9):.1f})")
    print(f"speed-up at {4 * n} lines: x{old_l / max(new_l, 1e-9):.0f}")


if __name__ == "__main__":
    main()
