#!/usr/bin/env python3
"""The demo's last lines: the new leaf's closed-book accuracy before -> after, every other leaf's
verdict, and one line saying whether the method worked (the new leaf improved, no leaf regressed).
When the eval had a noise floor (`DEMO_NOISE=1`: the old student against its own phase 2 retrained
with another data order; `labtax eval --noise-floor`), each unchanged leaf's line adds that chance
change beside its own: the gate counted a regression only beyond both.

Usage: python scripts/demo_summary.py EVAL_JSON NEW_LEAF   (`labtax eval --format json`)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def _ci(change: dict[str, Any] | None) -> str:
    if not change or change.get("estimate") is None:
        return "n/a"
    est = f"{change['estimate'] * 100:+.0f} pts"
    if change.get("low") is None or change.get("high") is None:
        return est
    return f"{est}, 95% CI [{change['low'] * 100:+.0f}, {change['high'] * 100:+.0f}]"


def _change_pct(row: dict[str, Any] | None) -> float | None:
    """A leaf's relative likelihood change (%), where the report has one."""
    if not row:
        return None
    value = ((row.get("likelihood") or {}).get("change_pct") or {}).get("estimate", row.get("change_pct"))
    return None if value is None else float(value)


def summary(report: dict[str, Any], new_leaf: str) -> list[str]:
    rows = {r["leaf"]: r for r in report["leaves"]}
    new = rows.get(new_leaf.rstrip("/"))
    out = []
    if new is None:
        out.append(f"new leaf {new_leaf}: not in the eval (no held-out items)")
    else:
        cb, mc = new.get("closed_book"), new.get("choices")
        if cb:
            out.append(f"new leaf {new_leaf}: closed-book accuracy {cb['base_accuracy']:.0%} -> "
                       f"{cb['candidate_accuracy']:.0%} on {cb['items']} held-out questions ({_ci(cb['change'])})")
        if mc:
            out.append(f"{'':9}multiple choice {mc['base_accuracy']:.0%} -> {mc['candidate_accuracy']:.0%} "
                       f"on {mc['items']} items ({_ci(mc['change'])})")
        if not cb and not mc:
            out.append(f"new leaf {new_leaf}: {new['verdict']} on its {new['evidence']}")
    for leaf, r in rows.items():
        if leaf != new_leaf.rstrip("/"):
            line = f"{'changed' if r['changed'] else 'unchanged'} leaf {leaf}: {r['verdict']} (on its {r['evidence']}"
            own, by_chance = _change_pct(r), (r.get("likelihood") or {}).get("seed_noise_pct")
            if own is not None and by_chance is not None:
                line += f"; likelihood {own:+.1f} %, another seed alone {by_chance:+.1f} %"
            out.append(line + ")")
    regressed = [leaf for leaf, r in rows.items() if r["verdict"] == "regressed"]
    learned = new is not None and new["verdict"] == "improved"
    if learned and not regressed:
        out.append("the method worked: the student learned the new leaf and no leaf regressed")
    else:
        why = ([] if learned else [f"the new leaf is {new['verdict'] if new else 'not evaluated'}"]) + \
              ([f"{len(regressed)} leaf(s) regressed: {', '.join(regressed)}"] if regressed else [])
        out.append("the method did not work this time: " + "; ".join(why))
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    report = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    print("\n".join(summary(report, argv[1])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
