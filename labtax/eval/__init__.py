"""Per-leaf evaluation of a candidate checkpoint against its base (`labtax eval`).

  data.py    read test.jsonl and manifest.json, choose the leaves (changed + a seeded sample)
  scorer.py  batched mean per-token log-likelihood of the reference answers; `score_checkpoint`
  judge.py   optional 1-10 ratings of greedy answers by an OpenAI-compatible judge
  gate.py    the regression definition and the per-leaf pass/fail decision
  run.py     end to end, returning the stable JSON-ready report dict
  (the text, json and markdown renderings of that dict are labtax/report/eval.py)

Importing this package imports nothing: the command line imports `eval.plot` for every command,
and the scorer (numpy, the data contract) only when a command scores.
"""
