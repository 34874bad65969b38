"""Run the public `instructlab-schema` validator (TaxonomyParser) on files: the benchmark's baseline and
the reference for tests/taxonomy/test_taxonomy_public_agreement.py.

Runs in its own interpreter with PYTHONPATH pointing at a `pip install --target` directory, so that
labtax never depends on it. Input: file paths (argv, or one per line on stdin with "-").
Output: one JSON object {path: {"errors": n, "warnings": n, "exception": str|null}} and the elapsed
seconds of the parse loop under "_seconds".
"""

from __future__ import annotations

import json
import logging
import sys
import time


def main() -> None:
    from instructlab.schema.taxonomy import TaxonomyParser

    logging.disable(logging.CRITICAL)
    files = sys.stdin.read().split("\n") if sys.argv[1:] == ["-"] else sys.argv[1:]
    # schema_version=0: each file is checked against the version it declares (what `ilab` does).
    parser = TaxonomyParser(schema_version=0, message_format="logging")
    results: dict[str, object] = {}
    start = time.perf_counter()
    for path in filter(None, files):
        try:
            taxonomy = parser.parse(path)
            results[path] = {"errors": taxonomy.errors, "warnings": taxonomy.warnings, "exception": None}
        except Exception as exc:  # noqa: BLE001 -- the public parser raises on YAML it cannot load: that is a rejection
            results[path] = {"errors": 1, "warnings": 0, "exception": type(exc).__name__}
    results["_seconds"] = time.perf_counter() - start
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
