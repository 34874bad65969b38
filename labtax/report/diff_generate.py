"""`labtax diff-generate`'s renderers (registry names `diff-generate/text`, `diff-generate/json`) of a
plan (--dry-run) or a run."""

from __future__ import annotations

import json
from typing import Any

from labtax.compute import estimate_seconds
from labtax.data import GenerationStats, LeafEntry
from labtax.data.manifest import coverage_text
from labtax.data.names import funnel_in_order
from labtax.mix.mix import dedup_warnings
from labtax.progress import clock
from labtax.sdg.planning import LeafPlan, Plan
from labtax.sdg.running import RunResult
from labtax.util.quoting import one_line, quote_path


def _short(sha: str | None) -> str:
    return sha[:12] if sha else "working tree"


def _leaf_line(lp: LeafPlan) -> str | None:
    """One line per leaf worth showing: everything but unchanged reused leaves (those are counted)."""
    if lp.action == "reuse" and not lp.changed:
        return None
    extra = ""
    if lp.old_path:
        extra += f" (from {quote_path(lp.old_path)})"
    if lp.action == "generate":
        extra += f": {lp.reason}, <= {lp.estimated_requests} requests"
        if lp.knowledge:
            k = lp.knowledge
            extra += (f"; budget buys {k['requests']} Q&A requests (<= {k['completion_tokens']} completion "
                      f"tokens): {k['facts_asked']}/{k['facts']} facts asked, {k['wordings']} wordings each, "
                      f"{k['chunks_asked']}/{k['chunks']} chunks")
        if lp.recorded_requests:
            extra += f", {lp.recorded_requests} already answered (resume)"
    elif lp.action == "invalid":
        extra += f": {lp.error}"
    else:
        extra += f": {lp.reason}"
    return f"{lp.action:<9} {quote_path(lp.path)}{one_line(extra)}"


def funnel_line(entry: LeafEntry) -> str | None:
    """A generated leaf's funnel (asked -> parsed -> ... -> kept -> in the sets), and the request bound
    when it bound; None for other leaves."""
    gen = entry.generation
    if entry.status != "generated" or gen is None or not gen.funnel:
        return None
    steps = " -> ".join(f"{k} {v}" for k, v in funnel_in_order(dict(gen.funnel)).items())
    if "train" in entry.counts:
        steps += f" -> in sets {entry.counts['train']}"
    limit = gen.request_limit if gen.request_limit is not None else ""
    bound = (f" (request limit {limit} bound: {gen.requests_wanted} requests wanted)"
             if gen.max_requests_bound else "")
    return f"funnel    {quote_path(entry.path)}: {steps}{coverage_text(gen)}{bound}{_drops(gen)}"


def _drops(gen: GenerationStats) -> str:
    """'; dropped facts_not_in_chunk 2, unfaithful 1; multiple choice kept 3 of 9 (dropped ...)' ('' when none)."""
    out = ""
    if gen.dropped:
        out += "; dropped " + ", ".join(f"{k} {v}" for k, v in gen.dropped.items())
    mc = gen.mc
    if mc is not None and mc.generated:
        out += f"; multiple choice kept {mc.kept} of {mc.generated}"
        if mc.dropped:
            out += " (dropped " + ", ".join(f"{k} {v}" for k, v in mc.dropped.items()) + ")"
    return out



def plan_lines(plan: Plan) -> list[str]:
    lines = [f"plan: {_short(plan.base)}..{_short(plan.head)}, teacher {plan.model_id}"]
    lines += [line for lp in plan.leaves if (line := _leaf_line(lp))]
    n = {a: len(plan.of(a)) for a in ("generate", "reuse", "drop", "invalid")}
    lines.append(
        f"plan: {n['generate']} to generate, {n['reuse']} to reuse, {n['drop']} to drop"
        + (f", {n['invalid']} invalid" if n["invalid"] else "")
        + f"; estimated <= {plan.estimated_requests} requests, <= {plan.estimated_tokens} completion tokens"
    )
    if plan.estimated_requests:
        lines.append(time_estimate(plan))
    return lines


def time_estimate(plan: Plan) -> str:
    """The planned requests' time on this teacher, from what earlier runs measured on this machine."""
    found = estimate_seconds(plan.model_id, plan.estimated_requests, plan.estimated_tokens)
    if found is None:
        return ("plan: no time estimate: this teacher was not measured on this machine yet "
                "(a first run measures it)")
    return f"plan: estimated time <= {clock(found[0])} at {found[1]}"


def as_text(outcome: Plan | RunResult) -> list[str]:
    if isinstance(outcome, Plan):
        return plan_lines(outcome)
    plan, m = outcome.plan, outcome.manifest
    assert m is not None  # a finished run has written its manifest
    lines = [line for lp in plan.leaves if lp.action in ("drop", "invalid") and (line := _leaf_line(lp))]
    if plan.nothing_to_generate:
        lines.append("nothing to generate")
    lines += [line for e in m.leaves if (line := funnel_line(e))]
    lines += dedup_warnings({e.path: e.counts for e in m.leaves})
    statuses = [e.status for e in m.leaves]
    lines.append(
        f"generated {statuses.count('generated')} leaves ({outcome.requests_sent} requests sent, "
        f"{outcome.requests_replayed} replayed from the ledger, {outcome.tokens} tokens), "
        f"reused {statuses.count('reused')}, dropped {statuses.count('dropped')}"
        + (f", failed {statuses.count('failed')}" if "failed" in statuses else "")
        + (f", invalid {statuses.count('invalid')}" if "invalid" in statuses else "")
    )
    sets = ", ".join(f"{name} {info.samples}" for name, info in sorted(m.sets.items()))
    lines.append(f"sets {'rebuilt' if outcome.sets_rebuilt else 'unchanged'}: {sets} -> {outcome.output}")
    lines += fault_lines(outcome)
    if outcome.failed:
        lines.append(f"{len(outcome.failed)} leaves failed; run again to retry only their missing requests")
    return lines


def fault_lines(outcome: RunResult) -> list[str]:
    """One line saying how many requests were retried, failed or unreadable, and why; none if clean."""
    f = outcome.fault_summary()
    if f.clean:
        return []
    why = ", ".join(f"{reason} {n}" for reason, n in f.reasons.items())
    return [f"teacher faults: {f.retried} retried, {f.failed} failed, {f.unreadable} unreadable"
            + (f" ({why})" if why else "")]


def as_json(outcome: Plan | RunResult) -> dict[str, Any]:
    if isinstance(outcome, Plan):
        return {"dry_run": True, **outcome.to_dict()}
    return {"dry_run": False, "nothing_to_generate": outcome.plan.nothing_to_generate,
            "sets_rebuilt": outcome.sets_rebuilt,
            "manifest": outcome.manifest.to_json() if outcome.manifest is not None else None}


def render_text(outcome: Plan | RunResult) -> str:
    return "".join(line + "\n" for line in as_text(outcome))


def render_json(outcome: Plan | RunResult) -> str:
    return json.dumps(as_json(outcome), indent=2, sort_keys=True) + "\n"
