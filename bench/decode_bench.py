"""The in-process teacher's generation loop (labtax/teachers/decode.py) against `model.generate` on a
left-padded batch, same model, same prompts, interleaved in one process: prompts of the demo's mixed
lengths (a short question prompt beside document-sized ones) and rows that end early. Prints the
wall and CPU seconds of each and the ratio, and checks that the greedy texts are equal.

Usage: .venv/bin/python bench/decode_bench.py [--model embedded-small] [--rows 8] [--max-tokens 96] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parents[1]))  # after $PYTHONPATH: PYTHONPATH=<tree> measures it

import torch

from labtax.teachers.base import TeacherRequest
from labtax.teachers.transformers import TransformersTeacher

DOC = ("Honey bees live in colonies of one queen, thousands of female workers and a few hundred male drones. "
       "The queen lays up to 2,000 eggs a day in spring; workers build the comb from wax they secrete. ") * 6
ASKS = ["Write one question a student might ask about this text.", "Answer in one word: what insect is this about?",
        "Summarise the text in three sentences.", "List two facts from the text."]


def requests(rows: int, max_tokens: int) -> list[TeacherRequest]:
    out = []
    for i in range(rows):
        text = DOC[: 120 + (i * 997) % len(DOC)]  # prompt lengths from a sentence to the whole document
        out.append(TeacherRequest(messages=(("user", f"{text}\n\n{ASKS[i % len(ASKS)]}"),), max_tokens=max_tokens,
                                  temperature=0.0))
    return out


def hf_generate(t: TransformersTeacher, reqs: list[TeacherRequest]) -> list[str]:
    enc = t.tokenizer([t.render(r) for r in reqs], return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.inference_mode():
        out = t.model.generate(**enc, max_new_tokens=reqs[0].max_tokens, do_sample=False, temperature=None,
                               top_p=None, top_k=None, pad_token_id=t.tokenizer.pad_token_id)
    width = enc["input_ids"].shape[1]
    texts = []
    for row in out:
        new = row[width:].tolist()
        ends = [i for i, tok in enumerate(new) if tok in t._eos]
        texts.append(str(t.tokenizer.decode(new[: ends[0]] if ends else new, skip_special_tokens=True)).strip())
    return texts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="embedded-small")
    ap.add_argument("--rows", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=96)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    t = TransformersTeacher(args.model, batch_size=args.rows, threads=args.threads)
    reqs = requests(args.rows, args.max_tokens)
    times: dict[str, list[tuple[float, float]]] = {"labtax loop": [], "model.generate": []}
    for _ in range(args.rounds):
        for name, spent in times.items():
            w0, c0 = time.perf_counter(), time.process_time()
            texts = ([r.text for r in asyncio.run(t.complete(reqs))] if name == "labtax loop" else hf_generate(t, reqs))
            spent.append((time.perf_counter() - w0, time.process_time() - c0))
            if name == "labtax loop":
                mine = texts
            else:
                assert texts == mine, "greedy texts differ"
    best = {name: min(v, key=lambda x: x[1]) for name, v in times.items()}
    for name, (wall, cpu) in best.items():
        print(f"{name:15s} wall {wall:6.2f} s  CPU {cpu:6.2f} s (best of {args.rounds})")
    ratio = best["model.generate"][1] / best["labtax loop"][1]
    print(f"model.generate / labtax loop CPU: {ratio:.2f}x; greedy texts equal; {args.rows} rows, "
          f"{args.max_tokens} tokens at most, prompt lengths {min(t.count_tokens(t.render(r)) for r in reqs)}-"
          f"{max(t.count_tokens(t.render(r)) for r in reqs)}")


if __name__ == "__main__":
    main()
