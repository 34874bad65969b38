"""Where the suite's CPU goes: read one or two LABTAX_TEST_CPU files (tests/conftest.py writes a line
`nodeid phase cpu_seconds wall_seconds` per test phase) and print totals and the most expensive files
and tests; with two files, before -> after per file.

    LABTAX_TEST_CPU=/tmp/cpu.txt .venv/bin/python -m pytest -q -p no:cacheprovider tests
    python scripts/test_cpu.py /tmp/cpu.txt [AFTER] [--top N]
"""

from __future__ import annotations

import argparse
import signal
from collections import Counter
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Phase:
    nodeid: str
    phase: str
    cpu: float
    wall: float

    @property
    def file(self) -> str:
        return self.nodeid.split("::")[0]


def read(path: Path) -> list[Phase]:
    # A parametrized id may hold spaces: the three last fields are split off from the right.
    rows = [line.rsplit(None, 3) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [Phase(n, p, float(c), float(w)) for n, p, c, w in rows]


def by_file(phases: list[Phase]) -> Counter[str]:
    files: Counter[str] = Counter()
    for p in phases:
        files[p.file] += p.cpu
    return files


def totals(phases: list[Phase]) -> str:
    cpu = sum(p.cpu for p in phases)
    tests = len({p.nodeid for p in phases})
    return f"{tests} tests, {cpu:.0f} CPU-s ({cpu / 60:.1f} CPU-min), {sum(p.wall for p in phases):.0f} s wall"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path, nargs="?")
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    before = read(args.before)
    if args.after is None:
        print(totals(before))
        for name, cpu in by_file(before).most_common(args.top):
            print(f"{cpu:8.1f}  {name}")
        tests: Counter[str] = Counter()
        for p in before:
            tests[f"{p.nodeid} ({p.phase})"] += p.cpu
        print()
        for name, cpu in tests.most_common(args.top):
            print(f"{cpu:8.1f}  {name}")
        return
    after = read(args.after)
    print(f"before: {totals(before)}\nafter:  {totals(after)}\n")
    old, new = by_file(before), by_file(after)
    print("| file | before CPU-s | after CPU-s |\n|---|---:|---:|")
    for name, cpu in old.most_common(args.top):
        print(f"| `{name}` | {cpu:.1f} | {new.get(name, 0.0):.1f} |")


if __name__ == "__main__":
    # A reader that stops early (`| head`) closes the pipe: end quietly, as other filters do.
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    main()
