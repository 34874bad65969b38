"""Does phase 1 store facts? Closed-book accuracy before -> after on a made-up subject, per recipe.

Run: flock /tmp/labtax-heavy.lock .venv/bin/python bench/learning_bench.py [--recipes before,default]
     [--facts bench/recall/lighthouses.yaml] [--model embedded-small] [--out DIR]

The facts file (bench/recall/lighthouses.yaml: a fictional lighthouse service, 20 facts, nothing a
base model can know) gives per fact three training wordings and one held-out question worded
differently from all of them. Per recipe the bench
  1. mixes the training wordings as knowledge-pipeline samples through labtax's mixer
     (mix.mix.build_sets: open-book, closed-book and document rows as the recipe's MixSettings say;
     the hand-written held-out questions are the test set: closed book, never trained on),
  2. trains phase 1 on them (train.phases.run_training: the recipe's settings over defaults.yaml),
  3. evaluates with labtax eval (eval.run.run_eval: closed-book answers scored by key facts),
and prints closed-book accuracy base -> trained, the steps, wall minutes, CPU-seconds (process) and
CPU-seconds per step, with the CPU flags and load average. The first recipe is the baseline: every
later one prints its accuracy gain next to the baseline's, measured in the same run.

Recipes (RECIPES below): `before` is the demo's recipe before issue 20 (open-book rows only, lr 1e-4,
one epoch, at most 8 steps of 4); `default` is labtax's defaults (mixer and defaults.yaml) with no
override but the resumable state off; the others vary one thing of `default`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from labtax.data import PHASE1, PHASE2, TEST
from labtax.mix.knowledge_replay import system_first
from labtax.mix.mix import MixLeaf, MixSettings, build_sets, write_sets

LEAF = "knowledge/maritime/quillon_lighthouses/qna.yaml"
NO_STATE = {"save_state": False}
# name -> (mixer settings, training overrides over defaults.yaml)
RECIPES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "before": ({"closed_book_rows": 0, "document_rows": 0},
               {**NO_STATE, "lr": 1e-4, "epochs": 1, "warmup_steps": 1, "schedule": "constant",
                "effective_batch": 4, "max_steps": 8}),
    "default": ({}, NO_STATE),
    "closed-only": ({"open_book_rows": 0, "document_rows": 0}, NO_STATE),
    "lr-5e-5": ({}, {**NO_STATE, "lr": 5e-5}),
    "lr-2e-4": ({}, {**NO_STATE, "lr": 2e-4}),
    "exposures-12": ({}, {**NO_STATE, "exposures": 12}),
    "exposures-48": ({}, {**NO_STATE, "exposures": 48}),
    # One trained wording a fact: what the pipeline's default (two wordings, one held out) trains.
    "one-wording": ({"wordings": 1}, NO_STATE),
    # Two trained wordings a fact: what three generated wordings, one held out, train.
    "two-wording": ({"wordings": 2}, NO_STATE),
}


def cpu_flags() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown"
    return " ".join(sorted(set(re.findall(r"\b(amx_bf16|avx512_bf16|avx2)\b", text)))) or "none of amx_bf16/avx512_bf16/avx2"


def load_facts(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def samples(facts: dict[str, Any], wordings: int = 3) -> list[dict[str, Any]]:
    """The first `wordings` training wordings of each fact as the knowledge pipeline stores them
    (chunk, document, fact)."""
    out = []
    for n, fact in enumerate(facts["facts"]):
        chunk = facts["passages"][fact["passage"]].strip()
        for q, a in fact["train"][:wordings]:
            out.append({"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}],
                        "metadata": {"question": q, "context": chunk, "document": facts["document"],
                                     "chunk": fact["passage"], "fact": f"{facts['document']}#{fact['passage']}/{n}"},
                        "unmask": False})
    return out


def held_out_rows(facts: dict[str, Any], system: str) -> list[dict[str, Any]]:
    rows = []
    for n, fact in enumerate(facts["facts"]):
        q, a = fact["held_out"]
        row = {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": str(a)}],
               "metadata": {"leaf": LEAF, "kind": "knowledge", "source": "held_out", "closed_book": True,
                            "fact": f"{facts['document']}#{fact['passage']}/{n}"}, "unmask": False}
        rows.append(system_first(row, system))
    return rows


def make_sets(facts: dict[str, Any], mix: dict[str, Any], out: Path) -> dict[str, int]:
    mix = dict(mix)
    wordings = mix.pop("wordings", 3)
    settings = MixSettings(**{**mix, "hold_out": False})  # the held-out questions are the hand-written ones
    sets = build_sets([MixLeaf.from_samples(LEAF, "knowledge", "bench", samples(facts, wordings))], settings)
    out.mkdir(parents=True, exist_ok=True)
    write_sets(out, sets)
    test = held_out_rows(facts, settings.system_prompt)
    (out / TEST).write_text("".join(json.dumps(r) + "\n" for r in test), encoding="utf-8")
    (out / PHASE2).write_text("", encoding="utf-8")
    (out / "manifest.json").write_text(json.dumps({"base": "0" * 40, "head": None, "leaves": [
        {"path": LEAF, "key": "bench", "status": "generated", "changed": True}]}), encoding="utf-8")
    return {"phase1_rows": sets.samples[PHASE1], "held_out": len(test)}


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def run_recipe(name: str, facts: dict[str, Any], model: str, root: Path) -> dict[str, Any]:
    from labtax.eval.run import EvalOptions, run_eval
    from labtax.train.config import load_config
    from labtax.train.phases import run_training

    mix, overrides = RECIPES[name]
    data = root / name / "data"
    counts = make_sets(facts, mix, data)
    t0, c0 = time.time(), cpu_seconds()
    summary = run_training(data, model, root / name / "run", ["knowledge"], load_config(overrides=overrides),
                           select="last", log=lambda line: print(f"   {line}", flush=True))
    phase = summary["phases"]["knowledge"]
    train_wall, train_cpu = time.time() - t0, cpu_seconds() - c0
    # The report's JSON document: the row's cells go into this bench's own JSON output as they are.
    report = run_eval(EvalOptions(base=model, candidate=phase["selected"]["path"], data_dir=data,
                                  device="cpu")).to_json()
    row = next(r for r in report["leaves"] if r["changed"])
    cb = row["closed_book"] or {}
    shutil.rmtree(root / name / "run" / "knowledge" / "checkpoints", ignore_errors=True)  # 0.5 GB each
    return {"recipe": name, **counts, "steps": phase["steps"], "epochs": phase["schedule"]["epochs"],
            "schedule": phase["schedule"], "train_wall_min": train_wall / 60, "train_cpu_s": train_cpu,
            "cpu_s_per_step": train_cpu / max(1, phase["steps"]), "items": cb.get("items"),
            "before": cb.get("base_accuracy"), "after": cb.get("candidate_accuracy"),
            "interval": (cb.get("change") or {}), "verdict": row["verdict"], "evidence": row["evidence"],
            "mix": mix, "overrides": overrides}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipes", default="before,default", help=f"comma-separated, first = baseline: {', '.join(RECIPES)}")
    parser.add_argument("--facts", type=Path, default=REPO / "bench" / "recall" / "lighthouses.yaml")
    parser.add_argument("--model", default="embedded-small")
    parser.add_argument("--out", type=Path, default=REPO / "out" / "learning_bench")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)
    import torch

    names = [n.strip() for n in args.recipes.split(",") if n.strip()]
    unknown = [n for n in names if n not in RECIPES]
    if unknown:
        parser.error(f"unknown recipe(s): {', '.join(unknown)}")
    facts = load_facts(args.facts)
    print(f"learning bench: {args.facts.name} ({len(facts['facts'])} facts), student {args.model}; "
          f"CPU flags: {cpu_flags()}; torch threads {torch.get_num_threads()}; "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    results = []
    for name in names:
        print(f"== {name}", flush=True)
        results.append(run_recipe(name, facts, args.model, args.out))
        r = results[-1]
        print(f"   {name}: closed book {r['before']:.0%} -> {r['after']:.0%} of {r['items']} held-out questions "
              f"({r['verdict']}); {r['phase1_rows']} phase-1 rows, {r['steps']} steps ({r['epochs']} epochs), "
              f"{r['train_wall_min']:.1f} min, {r['train_cpu_s']:.0f} CPU-s, {r['cpu_s_per_step']:.1f} CPU-s/step; "
              f"load {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    base = results[0]
    print("\nrecipe          rows  steps  epochs  before -> after   gain vs baseline  CPU-s/step  min")
    for r in results:
        gain = (r["after"] - r["before"]) - (base["after"] - base["before"])
        print(f"{r['recipe']:<14} {r['phase1_rows']:>5} {r['steps']:>6} {r['epochs']:>7}  {r['before']:>5.0%} -> "
              f"{r['after']:<5.0%}  {gain * 100:>+10.0f} pts  {r['cpu_s_per_step']:>10.1f}  {r['train_wall_min']:.1f}")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
