"""Renderers of the eval report dict: text (terminal), json (stable, documented), markdown (PR comment
or GitHub job summary). They read only the dict that `labtax.eval.run.build_report` returns."""

from __future__ import annotations

import json
from typing import Any

TOKENIZER_NOTE = ("note: base and candidate tokenize the answers differently, so their per-token "
                  "scores are not strictly comparable.")


STATUS_MARK = {
    "improved": "✅",
    "stable": "✅",
    "no_data": "➖",
    "not_improved": "❌",
    "regressed": "❌",
}


def _num(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.2f}%"


def _judge_cell(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def render_json(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2, sort_keys=False, ensure_ascii=False) + "\n"


def _headline(report: dict[str, Any]) -> str:
    s = report["summary"]
    return (
        f"{s['leaves']} leaves ({s['changed']} changed, {s['unchanged']} unchanged), "
        f"{s['examples']} held-out examples"
    )


def _verdict_line(report: dict[str, Any]) -> str:
    s = report["summary"]
    t = report["thresholds"]
    if report["verdict"] == "pass":
        return f"PASS: every changed leaf improved, no unchanged leaf regressed by more than {t['fail_on_regression_pct']:g}%"
    parts = []
    if s["not_improved"]:
        parts.append(f"{s['not_improved']} changed leaf(s) did not improve")
    if s["regressed"]:
        parts.append(f"{s['regressed']} unchanged leaf(s) regressed by more than {t['fail_on_regression_pct']:g}%")
    return "FAIL: " + "; ".join(parts)


def render_text(report: dict[str, Any]) -> str:
    rows = report["leaves"]
    with_judge = report.get("judge") is not None
    header = ["leaf", "kind", "base", "candidate", "change", "status"]
    if with_judge:
        header[5:5] = ["judge base", "judge cand"]
    table = [header]
    for r in rows:
        line = [
            r["leaf"], "changed" if r["changed"] else "unchanged",
            _num(r["base"]), _num(r["candidate"]), _pct(r["change_pct"]), r["status"],
        ]
        if with_judge:
            j = r["judge"] or {}
            line[5:5] = [_judge_cell(j.get("base")), _judge_cell(j.get("candidate"))]
        table.append(line)
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    out = [
        f"labtax eval: base {report['base']['model']} -> candidate {report['candidate']['model']}: "
        + _headline(report),
        "",
    ]
    for k, row in enumerate(table):
        cells = [c.ljust(w) if i in (0, 1) or i == len(row) - 1 else c.rjust(w)
                 for i, (c, w) in enumerate(zip(row, widths))]
        out.append("  ".join(cells).rstrip())
        if k == 0:
            out.append("  ".join("-" * w for w in widths))
    out.append("")
    out.append("score: mean per-token log-likelihood of the reference answer (nats, higher is better);")
    out.append("change: relative change of the per-token NLL, candidate vs base (negative is better).")
    if with_judge:
        j = report["judge"]
        out.append(f"judge: 1-10 ratings by {j['model']}; {j['malformed']} malformed and {j['failed']} "
                   f"failed replies of {j['requests']} (left out of the means).")
    if not report.get("same_tokenization", True):
        out.append(TOKENIZER_NOTE)
    out.append(_verdict_line(report))
    return "\n".join(out) + "\n"


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("`", "'")


def render_markdown(report: dict[str, Any]) -> str:
    """A self-contained block: post it as a PR comment or append it to $GITHUB_STEP_SUMMARY."""
    with_judge = report.get("judge") is not None
    icon = "✅" if report["verdict"] == "pass" else "❌"
    out = [
        f"### {icon} labtax eval: {report['verdict']}",
        "",
        (f"Base `{_md_escape(report['base']['model'])}` → candidate "
         f"`{_md_escape(report['candidate']['model'])}`: {_headline(report)}."),
        "",
    ]
    header = ["Leaf", "Kind", "Base", "Candidate", "Change", "Status"]
    align = [":---", ":---", "---:", "---:", "---:", ":---"]
    if with_judge:
        header[5:5] = ["Judge base", "Judge candidate"]
        align[5:5] = ["---:", "---:"]
    out.append("| " + " | ".join(header) + " |")
    out.append("| " + " | ".join(align) + " |")
    for r in report["leaves"]:
        cells = [
            f"`{_md_escape(r['leaf'])}`", "changed" if r["changed"] else "unchanged",
            _num(r["base"]), _num(r["candidate"]), _pct(r["change_pct"]),
            f"{STATUS_MARK.get(r['status'], '')} {r['status'].replace('_', ' ')}",
        ]
        if with_judge:
            j = r["judge"] or {}
            cells[5:5] = [_judge_cell(j.get("base")), _judge_cell(j.get("candidate"))]
        out.append("| " + " | ".join(cells) + " |")
    out.append("")
    out.append(f"**{_verdict_line(report)}**")
    out.append("")
    t = report["thresholds"]
    notes = (
        "Score: mean per-token log-likelihood of the held-out reference answers (nats, higher is "
        "better). Change: `100 × (NLL_candidate − NLL_base) / NLL_base` (negative is better). "
        f"A changed leaf must improve by more than {t['min_improvement_pct']:g}%; an unchanged leaf "
        f"may not get worse by more than {t['fail_on_regression_pct']:g}%."
    )
    if with_judge:
        j = report["judge"]
        notes += (f" Judge: 1–10 ratings by `{_md_escape(j['model'])}` of greedy answers; "
                  f"{j['malformed']} malformed and {j['failed']} failed replies of {j['requests']}.")
    if not report.get("same_tokenization", True):
        notes += " " + TOKENIZER_NOTE[len("note: "):].capitalize()
    out.append(f"<sub>{notes}</sub>")
    return "\n".join(out) + "\n\n"


RENDERERS = {"text": render_text, "json": render_json, "markdown": render_markdown}
