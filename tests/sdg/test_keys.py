"""The content key: what changes it and what does not."""

from __future__ import annotations

from pathlib import Path

import yaml

from labtax.sdg.keys import canonical_leaf, content_key, environment_digest, files_digest
from labtax.taxonomy.model import Leaf

SKILL = """\
version: 2
created_by: alice
task_description: Write haiku
seed_examples:
  - question: Write a haiku about rain
    answer: |
      Soft rain on the roof
  - question: Write a haiku about snow
    answer: White silence
"""

# The same content: re-indented, keys reordered, a different quoting style.
SKILL_REFORMATTED = """\
seed_examples:
    -   answer: |
            Soft rain on the roof
        question: "Write a haiku about rain"
    -   answer: 'White silence'
        question: Write a haiku about snow
task_description: Write haiku
version: 2
created_by: alice
"""


def leaf(text: str, path: str = "compositional_skills/poetry/haiku/qna.yaml") -> Leaf:
    kind = path.split("/")[0]
    return Leaf(path=path, kind=kind, data=yaml.safe_load(text))  # type: ignore[arg-type]


ENV = environment_digest(pipeline_digest="p", model_id="m", settings={"seed": 1})


def test_reformatting_does_not_change_the_key() -> None:
    assert canonical_leaf(leaf(SKILL)) == canonical_leaf(leaf(SKILL_REFORMATTED))
    assert content_key(leaf(SKILL), [], ENV) == content_key(leaf(SKILL_REFORMATTED), [], ENV)


def test_path_and_author_are_not_part_of_the_key() -> None:
    moved = leaf(SKILL, "compositional_skills/writing/haiku/qna.yaml")
    assert content_key(moved, [], ENV) == content_key(leaf(SKILL), [], ENV)
    other_author = leaf(SKILL.replace("alice", "bob"))
    assert content_key(other_author, [], ENV) == content_key(leaf(SKILL), [], ENV)


def test_content_documents_kind_and_environment_change_the_key() -> None:
    base = content_key(leaf(SKILL), [], ENV)
    assert content_key(leaf(SKILL.replace("White silence", "White quiet")), [], ENV) != base
    assert content_key(leaf(SKILL, "foundational_skills/haiku/qna.yaml"), [], ENV) != base
    assert content_key(leaf(SKILL), ["a document"], ENV) != base
    assert content_key(leaf(SKILL), ["doc one"], ENV) != content_key(leaf(SKILL), ["doc two"], ENV)
    for env in (
        environment_digest(pipeline_digest="p2", model_id="m", settings={"seed": 1}),
        environment_digest(pipeline_digest="p", model_id="m2", settings={"seed": 1}),
        environment_digest(pipeline_digest="p", model_id="m", settings={"seed": 2}),
    ):
        assert content_key(leaf(SKILL), [], env) != base


def test_files_digest_tracks_content_not_location(tmp_path: Path) -> None:
    for root in ("a", "b"):
        (tmp_path / root / "prompts").mkdir(parents=True)
        (tmp_path / root / "pipe.py").write_text("x = 1\n")
        (tmp_path / root / "prompts" / "q.txt").write_text("Write {n} questions\n")
    files_a = [tmp_path / "a" / "pipe.py", tmp_path / "a" / "prompts" / "q.txt"]
    files_b = [tmp_path / "b" / "prompts" / "q.txt", tmp_path / "b" / "pipe.py"]
    assert files_digest(files_a) == files_digest(files_b)
    (tmp_path / "b" / "prompts" / "q.txt").write_text("Write {n} new questions\n")
    assert files_digest(files_a) != files_digest(files_b)


from hypothesis import given, settings
from hypothesis import strategies as st

_text = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=20)
_seed = st.fixed_dictionaries({"question": _text, "answer": _text}, optional={"context": _text})


@settings(max_examples=40, deadline=None)
@given(seeds=st.lists(_seed, min_size=1, max_size=5), indent=st.integers(2, 8), seed=st.randoms())
def test_any_yaml_layout_of_the_same_content_has_the_same_key(seeds, indent, seed) -> None:  # type: ignore[no-untyped-def]
    data = {"version": 2, "created_by": "x", "task_description": "t", "seed_examples": seeds}

    def shuffled(obj):  # type: ignore[no-untyped-def]
        if isinstance(obj, dict):
            items = list(obj.items())
            seed.shuffle(items)
            return {k: shuffled(v) for k, v in items}
        if isinstance(obj, list):
            return [shuffled(v) for v in obj]
        return obj

    a = yaml.safe_dump(data, sort_keys=True)
    b = yaml.safe_dump(shuffled(data), sort_keys=False, indent=indent, default_style=seed.choice([None, '"']),
                       allow_unicode=seed.choice([True, False]), width=seed.choice([20, 80, 1000]))
    assert content_key(leaf(a), [], ENV) == content_key(leaf(b), [], ENV)
