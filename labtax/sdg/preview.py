"""A pull request's preview: a few generated samples per changed leaf, with their verdicts, as the
Markdown of a job summary. A contributor sees what their leaf would teach before it merges.

    python -m labtax.sdg.preview OUTPUT_DIR [--max-chars N]

reads what `labtax generate` wrote to OUTPUT_DIR (generate-report.json and one JSONL per leaf) and
prints, per leaf: the counts (generated, kept, dropped by reason), each judge's per-leaf calibration
(status, AUC, threshold), then every kept sample's question and answer and its verdicts (P(yes) or
the expected score against the cut). Text from the teacher is shown inside code fences (with the
fence made longer than any run of backticks inside), so it cannot inject Markdown into the summary.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any


def _fence(text: str, limit: int) -> str:
    text = text if len(text) <= limit else text[:limit].rstrip() + " …"
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{text}\n{fence}"


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _calibration_table(calibration: dict[str, Any]) -> list[str]:
    if not calibration:
        return []
    lines = ["| judge | calibration | AUC (seeds vs broken copies) | threshold |", "|---|---|---|---|"]
    for stage, cal in sorted(calibration.items()):
        auc = "" if cal.get("auc") is None else f"{cal['auc']:.2f}"
        cut = "" if cal.get("threshold") is None else f"{cal['threshold']:.3f}"
        lines.append(f"| {_cell(stage)} | {_cell(cal.get('status'))} | {auc} | {cut} |")
    return lines + [""]


def _verdicts(meta: dict[str, Any]) -> str:
    parts = []
    for stage, v in (meta.get("verdicts") or {}).items():
        cut = "" if v.get("threshold") is None else f" (cut {v['threshold']:.3f})"
        parts.append(f"{stage}: {v.get('verdict')} p={v.get('p')}{cut}")
    if not parts:  # text verdicts (a teacher without probabilities)
        parts = [f"{stage}: {value}" for stage, value in (meta.get("scores") or {}).items()]
    return "; ".join(parts) or "no verdicts"


def render(output: Path, max_chars: int = 600) -> str:
    report_path = output / "generate-report.json"
    if not report_path.is_file():
        return "## labtax preview\n\nNo changed leaf to preview.\n"
    report = json.loads(report_path.read_text(encoding="utf-8"))
    lines = ["## labtax preview: what the changed leaves would teach", ""]
    for leaf, stats in sorted(report.items()):
        lines.append(f"### `{_cell(leaf)}`")
        lines.append("")
        if "error" in stats:
            lines += [f"Generation failed: {_cell(stats['error'])}", ""]
            continue
        dropped = ", ".join(f"{k} {v}" for k, v in sorted((stats.get("dropped") or {}).items())) or "none"
        counts = (f"Teacher `{_cell(stats.get('teacher'))}`: {stats.get('generated', 0)} candidates, "
                  f"{stats.get('kept', 0)} kept; dropped: {dropped}.")
        lines += [counts, ""]
        lines += _calibration_table(stats.get("calibration") or {})
        path = Path(stats.get("output") or "")
        rows = []
        if path.is_file():
            rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        if not rows:
            lines += ["No sample was kept: see the counts above.", ""]
        for i, row in enumerate(rows, 1):
            meta = row.get("metadata") or {}
            lines += [f"**Sample {i}**: {_cell(_verdicts(meta))}", "", "Question:", "",
                      _fence(str(meta.get("question") or ""), max_chars), "", "Answer:", "",
                      _fence(str(meta.get("answer") or ""), max_chars), ""]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path)
    parser.add_argument("--max-chars", type=int, default=600)
    args = parser.parse_args(argv)
    sys.stdout.write(render(args.output, args.max_chars))
    return 0


if __name__ == "__main__":
    sys.exit(main())
