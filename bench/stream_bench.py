"""How full one leaf keeps the teacher (issue 15): requests in flight while a single leaf generates.

The real local OpenAI-protocol server (tests/openai_server.py) answers every labtax stage after
`--delay-ms`; one freeform skills leaf and one knowledge leaf are generated alone at each
`--concurrency`. Printed per run: the server's peak concurrent requests, the time-weighted mean in
flight over the leaf's wall time (what "fills the concurrency" means: a stage's tail waiting on its
last reply shows here, not in the peak), the requests and the wall time. Judges answer with
logprobs (`--logprobs`, default on) so calibration requests are part of the run, as with vLLM.

Budget: each leaf's peak reaches the concurrency (exit 1 when one does not).

Usage: .venv/bin/python bench/stream_bench.py [--delay-ms 100] [--concurrency 16 32] [--samples 10]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.append(str(ROOT))  # after $PYTHONPATH: PYTHONPATH=<other tree> measures that tree
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "sdg"))

from openai_server import OpenAIServer, Reply, lab_responder, verdict_logprobs
from sdgleaves import PLANETS_MD, freeform_leaf, knowledge_data, make_leaf

from labtax.sdg.pipelines import generate_leaf
from labtax.sdg.settings import GenerationSettings
from labtax.teachers import make_teacher


def responder(logprobs: bool) -> Any:
    base = lab_responder()

    def respond(kind: str, body: dict[str, Any]) -> Any:
        answer = base(kind, body)
        if not logprobs or not isinstance(answer, str):
            return answer
        low = answer.lower()
        if "verdict: keep" in low or "verdict: drop" in low:
            return Reply(answer, top_logprobs=verdict_logprobs(0.9 if "keep" in low else 0.1, "keep", "drop"))
        if "verdict: yes" in low or "verdict: no" in low:
            return Reply(answer, top_logprobs=verdict_logprobs(0.9 if "yes" in low else 0.1))
        if "score: " in low:
            return Reply(answer, top_logprobs=[{"3": -0.1, "2": -2.5, "1": -4.0}])
        return answer

    return respond


def mean_in_flight(server: OpenAIServer, began: float, ended: float) -> float:
    """The time-weighted mean of requests in flight between `began` and `ended`."""
    busy = sum(max(0.0, min(r.finished, ended) - max(r.started, began)) for r in server.requests)
    return busy / max(ended - began, 1e-9)


def one(server: OpenAIServer, leaf: Any, settings: GenerationSettings, root: Path, concurrency: int) -> dict[str, Any]:
    teacher = make_teacher("openai", endpoints=[server.base_url], model="test-model", concurrency=concurrency)

    async def go() -> Any:
        try:
            return await generate_leaf(leaf, teacher, settings, taxonomy_root=root)
        finally:
            await teacher.aclose()

    server.reset()
    began = time.monotonic()
    result = asyncio.run(go())
    ended = time.monotonic()
    return {"peak": server.max_in_flight, "mean": round(mean_in_flight(server, began, ended), 1),
            "requests": server.count(), "seconds": round(ended - began, 2), "kept": len(result.samples)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--delay-ms", type=float, default=100.0)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[16, 32])
    ap.add_argument("--samples", type=int, default=10, help="samples_per_leaf")
    ap.add_argument("--no-logprobs", dest="logprobs", action="store_false")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp, OpenAIServer(responder(args.logprobs), delay_ms=args.delay_ms) as server:
        root = Path(tmp)
        docs = root / ".documents" / "planets"
        docs.mkdir(parents=True)
        (docs / "planets.md").write_text(PLANETS_MD, encoding="utf-8")
        knowledge = make_leaf("knowledge/astronomy/planets/qna.yaml", knowledge_data(".documents/planets", "", ["*.md"]))
        leaves = {"skill": (freeform_leaf(), GenerationSettings(samples_per_leaf=args.samples, seed=1)),
                  "knowledge": (knowledge, GenerationSettings(samples_per_leaf=max(1, args.samples // 5), seed=1,
                                                              chunk_tokens=60))}
        missed = []
        for concurrency in args.concurrency:
            for name, (leaf, settings) in leaves.items():
                row = one(server, leaf, settings, root, concurrency)
                if row["peak"] < concurrency:
                    missed.append(f"{name} at {concurrency}: peak {row['peak']}")
                print(f"{name:9s} concurrency {concurrency:3d}: peak in flight {row['peak']:3d}, mean {row['mean']:5.1f}, "
                      f"{row['requests']} requests, {row['seconds']:.2f} s, {row['kept']} kept", flush=True)
    if missed:
        raise SystemExit(f"budget missed (peak in flight below the concurrency): {'; '.join(missed)}")


if __name__ == "__main__":
    main()
