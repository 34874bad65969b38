"""Property: whatever happens to the leaves, the diff equals the difference of the two snapshots.

Random edits, deletions, stagings and commits on a branch; the expected answer is computed from the
files themselves (the leaves at main versus the leaves on disk, or at HEAD), never from git.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from diff_helpers import skill
from gitrepo import GitRepo
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labtax.diff import LeafChange, changed_leaves, list_leaves_at, read_blob

PATHS = [
    "compositional_skills/a/qna.yaml",
    "compositional_skills/b/c/qna.yaml",
    "foundational_skills/d/qna.yaml",
    "knowledge/e/qna.yaml",
    "knowledge/f g/qna.yaml",
    "foundational_skills/ü/qna.yaml",
]

ops = st.lists(
    st.tuples(
        st.sampled_from(["write", "delete", "stage", "commit"]),
        st.integers(0, len(PATHS) - 1),
        st.integers(0, 3),
    ),
    max_size=10,
)


def snapshot(root: Path) -> dict[str, bytes]:
    return {p: (root / p).read_bytes() for p in PATHS if (root / p).is_file()}


def check(changes: list[LeafChange], before: dict[str, bytes], after: dict[str, bytes]) -> None:
    removed = {c.path for c in changes if c.status == "deleted"} | {c.old_path for c in changes if c.old_path}
    added = {c.path for c in changes if c.status in ("added", "renamed")}
    modified = {c.path for c in changes if c.status == "modified"}
    assert removed == before.keys() - after.keys()
    assert added == after.keys() - before.keys()
    assert modified == {p for p in before.keys() & after.keys() if before[p] != after[p]}
    for c in changes:
        if c.status == "renamed":
            assert c.old_path is not None
            assert (c.reasons == ()) == (before[c.old_path] == after[c.path])
    assert [c.path for c in changes] == sorted(c.path for c in changes)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(initial=st.sets(st.integers(0, len(PATHS) - 1), min_size=1), steps=ops)
def test_diff_matches_snapshots(initial: set[int], steps: list[tuple[str, int, int]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        repo = GitRepo(Path(tmp) / "repo")
        for i in initial:
            repo.write(PATHS[i], skill(f"topic {i}"))
        repo.commit("base")
        repo.git("checkout", "-q", "-b", "feature")
        before = snapshot(repo.root)
        for op, i, variant in steps:
            path = PATHS[i]
            if op == "write":
                repo.write(path, skill(f"topic {i % 3}", extra=f" variant {variant}"))
            elif op == "delete" and (repo.root / path).exists():
                repo.remove(path)
            elif op == "stage":
                repo.git("add", "-A", "--", ".")
            elif op == "commit":
                repo.commit("step")
        now = snapshot(repo.root)
        check(changed_leaves(repo.root, "main"), before, now)
        assert list_leaves_at(repo.root, None) == sorted(now)
        repo.commit("everything")
        check(changed_leaves(repo.root, "main", "HEAD"), before, now)
        assert list_leaves_at(repo.root, "HEAD") == sorted(now)
        assert list_leaves_at(repo.root, "main") == sorted(before)
        for path, data in before.items():
            assert read_blob(repo.root, "main", path) == data
