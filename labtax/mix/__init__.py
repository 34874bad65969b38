"""Mixing: the training sets, the test and validation sets, from the leaves' generated data.

  mix.py               build_sets / write_sets: phase 1 (knowledge), phase 2 (skills + replay), test,
                       validation; the sets' fingerprint and intactness check; a leaf's data as stored
  held_out.py          the seeds as test rows, the held-out wordings (closed book), document rows
  knowledge_replay.py  the knowledge replay of phase 2 and the system turn
  phase1_steps.py      --phase1 two-step: the short-answer and long-answer step sets
  xdedup.py            near-duplicates across the taxonomy (MinHash bands, then an exact check)
  text.py              the one text normaliser generation's dedup shares
  export.py            `labtax export --format ilab`: the sets in InstructLab's training format

It reads the leaves' data (rows, seeds) and writes through `labtax.data`; it imports nothing of
`labtax.sdg`, which imports it (the engine mixes after it generates).
"""
