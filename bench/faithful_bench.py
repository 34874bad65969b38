"""How well are wrong knowledge pairs caught? Planted wrong pairs against the extractive check and the
calibrated `faithful` judge (issue 20).

Run: .venv/bin/python bench/faithful_bench.py [--leaf DIR] [--document FILE] [--teacher-model embedded|embedded-small]
     (without --teacher-model: the extractive check alone, no model loaded)

From a knowledge leaf (default bench/heldout's made-up railway, a document no model has seen) the bench
takes its seed Q&A as the correct pairs, each shown with the chunk of the document that holds it
(knowledge.home_chunk, as the pipeline now shows its calibration examples), and plants wrong ones by
replacing the first number or name of each answer with another of the same kind taken from
  - `other chunk`: a different chunk of the same document (a fact the teacher mixed up across chunks),
  - `same chunk`:  the same chunk (a fact of the right passage in the wrong place: "the furnace was
                   lit in 1883" when 1883 is the railway's year, the case the extractive check
                   cannot see),
  - `made up`:     a value the document does not hold.
It prints, per kind, how many wrong pairs each gate lets through, and how many correct ones it drops:
the extractive check (labtax.data.facts.unsupported_facts) and, with a teacher, the faithful judge
calibrated per leaf (calibrate.py) in two ways: on the seed contexts (before issue 20's change) and on
the chunks that hold them (now). Precision = correct kept / all kept, with the planted pairs as the
only wrong ones. The calibration examples are the seeds themselves, so the correct pairs' keep rate
is optimistic for the judge (it is what the cut was placed on); the wrong pairs are never seen by it.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from labtax.data.facts import _facts_with_spans, unsupported_facts
from labtax.sdg.documents import Document, chunk_documents
from labtax.sdg.pipelines.calibrate import calibrate, verdict_value
from labtax.sdg.pipelines.filters import Row
from labtax.sdg.pipelines.knowledge import calibration_examples, home_chunk, knowledge_seeds
from labtax.sdg.pipelines.runner import Runner, load_pipeline
from labtax.sdg.settings import GenerationSettings
from labtax.taxonomy.leaves import parse_leaf

LEAF = REPO / "bench/heldout/taxonomy/knowledge/transport/railways/kessary_salt_railway"
DOCUMENT = REPO / "bench/heldout/documents/kessary_railway/kessary_railway.md"
MADE_UP = {"number": "7,777", "name": "Zanzibar Quell", "date": "1 January 1777"}


def fails(row: Row, document: str) -> bool:
    """The pipeline's extractive check (knowledge.extractive_step): the answer against its chunk, the
    question against the whole document."""
    return bool(unsupported_facts(row.answer or "", row.context or "") or unsupported_facts(row.question, document))


def surfaces(text: str) -> list[tuple[int, int, str, str]]:
    """(start, end, kind, surface text) of the key facts of `text`."""
    return [(s, e, kind, text[s:e]) for s, e, kind, _ in _facts_with_spans(text)]


def plant(question: str, answer: str, chunk: str, chunks: list[str]) -> dict[str, str]:
    """Wrong copies of `answer`: its first fact replaced by another of the same kind (see the docstring)."""
    facts = surfaces(answer)
    if not facts:
        return {}
    s, e, kind, _ = facts[0]
    out: dict[str, str] = {}
    held = {f[3].lower() for f in facts}
    same = [f[3] for f in surfaces(chunk) if f[2] == kind and f[3].lower() not in held
            and f[3].lower() not in question.lower()]
    other = [f[3] for c in chunks if c != chunk for f in surfaces(c) if f[2] == kind
             and unsupported_facts(f[3], chunk)]
    if same:
        out["same chunk"] = answer[:s] + same[0] + answer[e:]
    if other:
        out["other chunk"] = answer[:s] + other[len(question) % len(other)] + answer[e:]
    out["made up"] = answer[:s] + MADE_UP[kind] + answer[e:]
    return out


async def judge(runner: Runner, good: list[Row], broken: list[Row], rows: list[Row]) -> tuple[float, list[float]]:
    def make(i: int, row: Row) -> Any:
        return runner.request("faithful", i, chunk=row.context or "", question=row.question, answer=row.answer or "")

    cal = await calibrate(runner, "faithful", good, broken, make, "yes", 0.5)
    responses = await runner.run("faithful", [make(i, r) for i, r in enumerate(rows)])
    values = [verdict_value(r, "yes") or 0.0 for r in responses]
    # An unusable judge (AUC under judge_min_auc) keeps every row unjudged, as the pipeline does.
    cut = float("-inf") if not cal.usable else cal.threshold if cal.threshold is not None else 0.5
    print(f"  calibration {cal.status}, AUC {cal.auc}, cut {cut:.3f}; good {cal.good}, broken {cal.broken}")
    return cut, values


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--leaf", type=Path, default=LEAF)
    parser.add_argument("--document", type=Path, default=DOCUMENT)
    parser.add_argument("--teacher-model", default=None, help="embedded | embedded-small (default: no judge)")
    parser.add_argument("--chunk-tokens", type=int, default=128)
    parser.add_argument("--calibration-examples", type=int, default=3)
    args = parser.parse_args()
    text = re.sub(r"(?m)^#.*$", "", args.document.read_text(encoding="utf-8"))
    leaf = parse_leaf("knowledge/bench/qna.yaml", (args.leaf / "qna.yaml").read_bytes())
    seeds = knowledge_seeds(leaf)
    settings = GenerationSettings(chunk_tokens=args.chunk_tokens, calibration_examples=args.calibration_examples)
    teacher = None
    count = lambda t: round(len(t.split()) * 1.3)
    if args.teacher_model:
        from labtax.teachers import make_teacher

        teacher = make_teacher("embedded", model=args.teacher_model, batch_size=16)
        count = teacher.count_tokens
    chunks = [c.text for c in chunk_documents([Document(args.document.name, text)], args.chunk_tokens, count)]
    correct = [Row(q, home_chunk(s["context"], a, chunks), a) for s in seeds for q, a in s["pairs"]]
    wrong: list[tuple[str, Row]] = []
    for row in correct:
        for kind, answer in plant(row.question, row.answer or "", row.context or "", chunks).items():
            wrong.append((kind, Row(row.question, row.context, answer)))
    kinds = Counter(k for k, _ in wrong)
    print(f"{args.document.name}: {len(chunks)} chunks, {len(correct)} correct pairs, {len(wrong)} planted wrong "
          f"({', '.join(f'{k} {n}' for k, n in sorted(kinds.items()))})")
    caught = Counter(k for k, r in wrong if fails(r, text))
    dropped_ok = sum(1 for r in correct if fails(r, text))
    print("extractive check: wrong caught " + ", ".join(f"{k} {caught[k]}/{kinds[k]}" for k in sorted(kinds))
          + f"; correct dropped {dropped_ok}/{len(correct)}")
    if teacher is None:
        return 0
    pipeline = load_pipeline("knowledge")
    rows = correct + [r for _, r in wrong]
    for mode, shown in (("seed contexts (before)", ()), ("chunks (now)", chunks)):
        examples = calibration_examples(seeds, str(leaf.data.get("domain") or ""), list(shown))
        runner = Runner(leaf, teacher, settings, pipeline)
        t0 = time.time()
        print(f"faithful judge calibrated on the {mode}:")
        cut, values = asyncio.run(judge(runner, *examples["faithful"], rows))
        kept_ok = sum(v >= cut for v in values[: len(correct)])
        through = Counter(k for (k, _), v in zip(wrong, values[len(correct):]) if v >= cut)
        both = Counter(k for (k, r), v in zip(wrong, values[len(correct):])
                       if v >= cut and not fails(r, text))
        kept_wrong = sum(both.values())
        print(f"  judge alone: correct kept {kept_ok}/{len(correct)}; wrong let through "
              + ", ".join(f"{k} {through[k]}/{kinds[k]}" for k in sorted(kinds)))
        print("  extractive check + judge: wrong let through " + ", ".join(f"{k} {both[k]}/{kinds[k]}" for k in sorted(kinds))
              + f"; precision {kept_ok}/{kept_ok + kept_wrong} = {kept_ok / max(1, kept_ok + kept_wrong):.2f}"
              + f" ({time.time() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
