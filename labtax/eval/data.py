"""Reading the held-out test set and the run manifest, and choosing which leaves to evaluate.

`test.jsonl` holds one held-out item per line (a `labtax.data.TestRow`): a seed example (the reference
answer is the last assistant turn), or a closed-book multiple-choice item, which carries top-level
`choices` and `answer_index` beside `messages` (its assistant turn is the right option); `manifest.json` says
which leaves changed in the run that produced the data. Both name a leaf by its path
(`.../poem/qna.yaml`); the report shows it by its folder (`compositional_skills/writing/poem`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from labtax.data import TEST, Sample, TestRow, leaf_folder, read_manifest, read_set
from labtax.data.sample import reference_split
from labtax.errors import UsageError

LeafMode = Literal["changed", "all"]
EXCLUDED_STATUSES = frozenset({"dropped", "failed", "invalid"})


@dataclass(frozen=True)
class Example:
    """One held-out example: the conversation up to the reference answer, and that answer."""

    leaf: str
    prompt: tuple[tuple[str, str], ...]  # (role, content) turns before the final assistant turn
    answer: str
    choices: tuple[str, ...] = ()  # a multiple-choice item's options (empty: a reference answer)
    answer_index: int = -1  # the right option of a multiple-choice item
    # Whether the generation pipelines may have shown this item to the teacher as an in-context
    # example (the leaf's seeds are their examples; generated multiple-choice items never are).
    shown_to_teacher: bool = False
    # A held-out wording of a knowledge fact, asked with no context (the mixer's `closed_book: true`
    # rows): answered greedily and scored by its key facts (eval/closed_book.py).
    closed_book: bool = False

    @property
    def is_choice(self) -> bool:
        return bool(self.choices)

    def prompt_messages(self) -> list[dict[str, str]]:
        return [{"role": role, "content": content} for role, content in self.prompt]

    def question(self) -> str:
        """The last user turn (what a judge is shown as the question)."""
        users = [content for role, content in self.prompt if role == "user"]
        return users[-1] if users else ""


@dataclass(frozen=True)
class SelectedLeaf:
    leaf: str
    changed: bool  # True: must improve; False: sampled to catch forgetting, must not regress


@dataclass(frozen=True)
class Selection:
    leaves: list[SelectedLeaf]
    examples: dict[str, list[Example]]  # leaf -> its test examples (empty list: no held-out data)
    mode: LeafMode
    sample_unchanged: int | None
    seed: int
    manifest: bool  # whether a manifest.json was found


def read_test_set(path: Path) -> dict[str, list[Example]]:
    """Group the examples of a test.jsonl by leaf, keeping file order within a leaf."""
    if not path.is_file():
        raise UsageError(f"no test set at {path}", hint="run `labtax diff-generate` first, or pass --data")
    by_leaf: dict[str, list[Example]] = {}
    for example in read_set(path, _example, "test example"):
        by_leaf.setdefault(example.leaf, []).append(example)
    return by_leaf


def _example(row: Sample) -> Example:
    prompt, answer = reference_split(row)
    meta = row.get("metadata") or {}
    leaf = meta.get("leaf")
    if not leaf:
        raise ValueError("metadata.leaf is missing")
    test_row: TestRow = row  # type: ignore[assignment]
    choices, index = test_row.get("choices"), test_row.get("answer_index")
    if choices is None and index is None:
        shown = meta.get("shown_to_teacher")
        # Seeds written before the flag existed were in-context examples all the same.
        seen = bool(shown) if shown is not None else meta.get("source", "seed") == "seed"
        return Example(leaf=leaf_folder(str(leaf)), prompt=prompt, answer=answer, shown_to_teacher=seen,
                       closed_book=bool(meta.get("closed_book", False)))
    if (not isinstance(choices, list) or len(choices) < 2
            or not all(isinstance(c, str) and c.strip() for c in choices) or len(set(choices)) != len(choices)):
        raise ValueError("'choices' must be a list of at least two distinct, non-empty strings")
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(choices):
        raise ValueError("'answer_index' must be the index of one of the choices")
    return Example(leaf=leaf_folder(str(leaf)), prompt=prompt, answer=choices[index], choices=tuple(choices),
                   answer_index=index, shown_to_teacher=bool(meta.get("shown_to_teacher", False)))


def manifest_leaves(path: Path) -> tuple[set[str], set[str]] | None:
    """(changed leaves, excluded leaves) from a manifest.json, or None when there is none.

    A leaf is changed when its entry says `changed: true` and it has data (status `generated` or
    `reused`). Leaves that were dropped (deleted), failed generation or are invalid are excluded:
    the candidate was not trained on them, so neither gate applies.
    """
    manifest = read_manifest(path, strict=True)
    if manifest is None:
        return None
    changed: set[str] = set()
    dropped: set[str] = set()
    for entry in manifest.leaves:
        leaf = leaf_folder(entry.path)
        if entry.status in EXCLUDED_STATUSES:
            dropped.add(leaf)
        elif entry.changed:
            changed.add(leaf)
    return changed, dropped


def select_leaves(
    data_dir: Path,
    *,
    mode: LeafMode = "changed",
    sample_unchanged: int | None = 5,
    seed: int = 0,
) -> Selection:
    """The leaves to evaluate: changed leaves plus a seeded sample of unchanged ones (or all).

    `sample_unchanged=None` with mode "changed" means every unchanged leaf. The sample is drawn
    from the sorted unchanged leaves with `random.Random(seed)`, so it is stable across runs and
    machines.
    """
    if not data_dir.is_dir():
        raise UsageError(f"data directory {data_dir} does not exist")
    examples = read_test_set(data_dir / TEST)
    manifest = manifest_leaves(data_dir)
    changed, dropped = manifest if manifest is not None else (set(), set())
    if mode == "changed" and manifest is None:
        raise UsageError(
            f"no manifest.json in {data_dir}: cannot tell which leaves changed",
            hint="pass --leaves all to evaluate every leaf as unchanged",
        )
    present = sorted(leaf for leaf in examples if leaf not in dropped)
    unchanged = [leaf for leaf in present if leaf not in changed]
    if mode == "all" or sample_unchanged is None or sample_unchanged >= len(unchanged):
        chosen_unchanged = unchanged
    else:
        chosen_unchanged = sorted(random.Random(seed).sample(unchanged, max(0, sample_unchanged)))
    rows = [SelectedLeaf(leaf, True) for leaf in sorted(changed)]
    rows += [SelectedLeaf(leaf, False) for leaf in chosen_unchanged]
    rows.sort(key=lambda r: (not r.changed, r.leaf))
    if not any(examples.get(r.leaf) for r in rows):
        raise UsageError(
            f"no leaves to evaluate in {data_dir}: "
            + ("no changed leaf has held-out examples and no unchanged leaf was sampled"
               if mode == "changed" else "test.jsonl holds no examples")
        )
    return Selection(
        leaves=rows,
        examples={r.leaf: examples.get(r.leaf, []) for r in rows},
        mode=mode,
        sample_unchanged=sample_unchanged,
        seed=seed,
        manifest=manifest is not None,
    )
