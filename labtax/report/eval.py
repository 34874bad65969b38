"""`labtax eval`'s renderers (registry names `eval/text`, `eval/json`, `eval/markdown`): text
(terminal), json (stable, documented), markdown (PR comment or GitHub job summary). They read only
the `EvalReport` that `labtax.eval.report.build_report` returns, by attribute, and return a string."""

from __future__ import annotations

import json

from labtax.eval.record import Accuracy, ClosedBook, EvalReport, Interval, LeafRow

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


def render_json(report: EvalReport) -> str:
    return json.dumps(report.to_json(), indent=2, sort_keys=False, ensure_ascii=False) + "\n"


def _headline(report: EvalReport) -> str:
    s = report.summary
    return f"{s.leaves} leaves ({s.changed} changed, {s.unchanged} unchanged), {s.examples} held-out examples"


def _tolerance(report: EvalReport) -> str:
    """'5%', or under a noise floor '5% beyond the seed noise' (eval/noise.py)."""
    tail = " beyond the seed noise" if report.thresholds.noise_floor else ""
    return f"{report.thresholds.fail_on_regression_pct:g}%{tail}"


def _regressed_phrase(report: EvalReport) -> str:
    rows = [r for r in report.leaves if r.status == "regressed"]
    by_likelihood = all(r.evidence == "likelihood" for r in rows)
    tail = f" by more than {_tolerance(report)}" if by_likelihood else ""
    return f"{len(rows)} unchanged leaf(s) regressed{tail}"


def _verdict_line(report: EvalReport) -> str:
    s = report.summary
    if report.verdict == "nothing-changed":
        return (f"NOTHING CHANGED: no changed leaf to check for learning; {s.unchanged} unchanged leaf(s) "
                "checked for forgetting, none regressed")
    if report.verdict == "pass":
        return f"PASS: every changed leaf improved, no unchanged leaf regressed by more than {_tolerance(report)}"
    parts = []
    if s.not_improved:
        parts.append(f"{s.not_improved} changed leaf(s) did not improve")
    if s.regressed:
        parts.append(_regressed_phrase(report))
    return "FAIL: " + "; ".join(parts)


def _ci(iv: Interval | None, unit: str = "%", scale: float = 1.0) -> str:
    """'-8.9% [-12.1, -5.3]' (a point without an interval prints alone)."""
    if iv is None or iv.estimate is None:
        return "n/a"
    est = f"{iv.estimate * scale:+.1f}{unit}"
    if iv.low is None or iv.high is None:
        return est
    return f"{est} [{iv.low * scale:+.1f}, {iv.high * scale:+.1f}]"


def _accuracy(name: str, c: ClosedBook | Accuracy) -> tuple[str, str, str]:
    return (f"{name} ({c.items})", f"{c.base_accuracy:.0%} -> {c.candidate_accuracy:.0%}", _ci(c.change, " pts", 100.0))


def evidence_cells(r: LeafRow) -> tuple[str, str, str]:
    """(what the verdict rests on, base -> candidate, the change with its interval) of one row."""
    if r.evidence == "closed_book" and r.closed_book:
        return _accuracy("closed book", r.closed_book)
    if r.evidence == "choices" and r.choices:
        return _accuracy("choices", r.choices)
    if r.evidence == "judge" and r.judge and r.judge.interval:
        j = r.judge
        return (f"judge ({j.rated})", f"{j.wins}W {j.ties}T {j.losses}L",
                "win " + _ci(j.interval, "%", 100.0).replace("+", ""))
    lk = r.likelihood
    if r.evidence == "likelihood" and lk:
        scores = f"{_num(r.base)} -> {_num(r.candidate)}"
        if lk.beyond_controls_pct is not None:
            return (f"likelihood vs {lk.controls} control(s)", scores, _ci(lk.beyond_controls_pct))
        noise = f"; seed noise {lk.seed_noise_pct:+.1f}%" if lk.seed_noise_pct is not None else ""
        return ("likelihood", scores, _ci(lk.change_pct) + noise)
    return ("none", "n/a", "n/a")


def render_text(report: EvalReport) -> str:
    rows = report.leaves
    header = ["leaf", "kind", "base", "candidate", "change", "evidence", "measure", "change [95% CI]", "status"]
    table = [header]
    for r in rows:
        table.append([
            r.leaf, "changed" if r.changed else "unchanged",
            _num(r.base), _num(r.candidate), _pct(r.change_pct), *evidence_cells(r), r.status,
        ])
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    out = [
        f"labtax eval: base {report.base.model} -> candidate {report.candidate.model}: "
        + _headline(report),
        "",
    ]
    left = {0, 1, 5, 6, len(header) - 1}
    for k, row in enumerate(table):
        cells = [c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))]
        out.append("  ".join(cells).rstrip())
        if k == 0:
            out.append("  ".join("-" * w for w in widths))
    out.append("")
    out.append("score: mean per-token log-likelihood of the reference answer (nats, higher is better);")
    out.append("change: relative change of the per-token NLL, candidate vs base (negative is better);")
    out.append("the interval is a 95% paired bootstrap; likelihood evidence is the change beyond the controls'.")
    if report.thresholds.noise_floor:
        out.append(f"seed noise: the base against its retrain with another seed ({report.thresholds.noise_floor}); "
                   "an unchanged leaf regresses only when also worse than that retrain by more than "
                   f"{report.thresholds.fail_on_regression_pct:g}%.")
    if (j := report.judge) is not None:
        out.append(f"judge: pairwise by {j.model} (both orders, against the reference); {j.malformed} malformed and "
                   f"{j.failed} failed replies of {j.requests} (left out).")
    out.extend(_held_out_lines(report))
    out.extend(recall_lines(report))
    if not report.same_tokenization:
        out.append(TOKENIZER_NOTE)
    out.append(_verdict_line(report))
    return "\n".join(out) + "\n"


def recall_lines(report: EvalReport) -> list[str]:
    """Per knowledge leaf with closed-book items: closed-book accuracy next to the multiple choice."""
    out = []
    for r in report.leaves:
        c = r.closed_book
        if not c:
            continue
        line = (f"closed book {r.leaf}: {c.base_accuracy:.0%} -> {c.candidate_accuracy:.0%} of "
                f"{c.items} held-out questions ({_ci(c.change, ' pts', 100.0)})")
        if c.unscored:
            line += f", {c.unscored} not scored (no key fact, no judge)"
        m = r.choices
        if m:
            line += (f"; multiple choice {m.base_accuracy:.0%} -> {m.candidate_accuracy:.0%} of {m.items} "
                     f"({_ci(m.change, ' pts', 100.0)})")
        out.append(line)
    return out


def _held_out_lines(report: EvalReport) -> list[str]:
    h = report.held_out
    if not h.shown_to_teacher:
        return []
    return [f"held out: {h.shown_to_teacher} of {h.items} items were shown to the teacher as in-context "
            f"examples ({h.which}): " + ", ".join(h.leaves)]


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("`", "'")


VERDICT_MARK = {"improved": "⬆️", "no-change": "➖", "regressed": "⬇️"}


def render_markdown(report: EvalReport) -> str:
    """A self-contained block: post it as a PR comment or append it to $GITHUB_STEP_SUMMARY."""
    icon = {"pass": "✅", "fail": "❌"}.get(report.verdict, "➖")
    out = [
        f"### {icon} labtax eval: {report.verdict}",
        "",
        (f"Base `{_md_escape(report.base.model)}` → candidate "
         f"`{_md_escape(report.candidate.model)}`: {_headline(report)}."),
        "",
    ]
    out.append("| Leaf | Kind | Base | Candidate | Change | Status |")
    out.append("| :--- | :--- | ---: | ---: | ---: | :--- |")
    for r in report.leaves:
        cells = [
            f"`{_md_escape(r.leaf)}`", "changed" if r.changed else "unchanged",
            _num(r.base), _num(r.candidate), _pct(r.change_pct),
            f"{STATUS_MARK.get(r.status, '')} {r.status.replace('_', ' ')}",
        ]
        out.append("| " + " | ".join(cells) + " |")
    out.append("")
    out.append("| Leaf | Evidence | Base → candidate | Change [95% CI] | Verdict |")
    out.append("| :--- | :--- | :--- | :--- | :--- |")
    for r in report.leaves:
        evidence, measure, change = evidence_cells(r)
        name = f"**`{_md_escape(r.leaf)}`** (changed)" if r.changed else f"`{_md_escape(r.leaf)}`"
        out.append(f"| {name} | {evidence} | {measure} | {change} | {VERDICT_MARK.get(r.verdict, '')} {r.verdict} |")
    out.append("")
    out.extend(f"- {line}" for line in recall_lines(report))
    out.append(f"**{_verdict_line(report)}**")
    out.append("")
    notes = (
        "Score: mean per-token log-likelihood of the held-out reference answers (nats, higher is "
        "better). Change: `100 × (NLL_candidate − NLL_base) / NLL_base` (negative is better). "
        "Each verdict rests on the leaf's strongest evidence: closed-book recall of held-out wordings "
        "(knowledge), closed-book multiple choice, then the "
        "pairwise judge, then the likelihood change beyond the unchanged (control) leaves'; intervals "
        f"are 95% paired bootstraps. An unchanged leaf may not get worse by more than "
        f"{report.thresholds.fail_on_regression_pct:g}%."
    )
    if report.thresholds.noise_floor:
        notes += (" Seed noise: the change the base's retrain with another seed made on the leaf "
                  f"(`{_md_escape(report.thresholds.noise_floor)}`); an unchanged leaf regresses only when "
                  "it is also worse than that retrain by more than the tolerance.")
    if (j := report.judge) is not None:
        notes += (f" Judge: `{_md_escape(j.model)}`, pairwise in both orders; "
                  f"{j.malformed} malformed and {j.failed} failed replies of {j.requests}.")
    held = _held_out_lines(report)
    if held:
        notes += " " + held[0][len("held out: "):].capitalize()
    if not report.same_tokenization:
        notes += " " + TOKENIZER_NOTE[len("note: "):].capitalize()
    out.append(f"<sub>{notes}</sub>")
    return "\n".join(out) + "\n\n"
