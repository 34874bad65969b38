"""Exactly the seed examples a generation prompt rendered are flagged `shown_to_teacher`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from openai_server import OpenAIServer, lab_responder
from sdgleaves import PLANETS_MD, freeform_leaf, grounded_leaf, knowledge_data, make_leaf, run

from labtax.mix.held_out import seed_test_samples
from labtax.sdg.pipelines import generate_leaf
from labtax.sdg.pipelines.runner import LeafResult
from labtax.sdg.settings import GenerationSettings
from labtax.taxonomy.model import Leaf
from labtax.teachers import make_teacher
from labtax.teachers.base import TeacherRequest

GENERATION_STAGES = {"knowledge_qa", "questions", "answer", "contexts"}  # the judges only judge


def _generate(server: OpenAIServer, leaf: Leaf, settings: GenerationSettings,
              root: Path = Path(".")) -> tuple[LeafResult, list[TeacherRequest]]:
    teacher = make_teacher("openai", endpoints=[server.base_url], model="test-model")
    sent: list[TeacherRequest] = []
    inner = teacher.complete

    async def complete(requests: Any) -> Any:
        sent.extend(requests)
        return await inner(requests)

    teacher.complete = complete  # type: ignore[method-assign]

    async def go() -> LeafResult:
        try:
            return await generate_leaf(leaf, teacher, settings, taxonomy_root=root)
        finally:
            await teacher.aclose()

    return run(go()), sent


def _rendered(row: dict[str, Any], prompts: list[str], grounded: bool) -> bool:
    """Whether a seed row's question or answer (a grounded skill: its context or answer) is in a prompt."""
    meta = row["metadata"]
    texts = [meta["context"] if grounded else meta["question"], row["messages"][-1]["content"]]
    return any(text in prompt for text in texts for prompt in prompts)


def _check(result: LeafResult, sent: list[TeacherRequest], leaf: Leaf) -> list[bool]:
    prompts = ["\n".join(content for _, content in r.messages) for r in sent if r.tag in GENERATION_STAGES]
    rows = seed_test_samples(leaf, result.shown)
    flags = [row["metadata"]["shown_to_teacher"] for row in rows]
    assert flags == [_rendered(row, prompts, leaf.grounded) for row in rows]
    # Without a record every seed counts as shown (the upper bound of rows written before it).
    assert all(row["metadata"]["shown_to_teacher"] for row in seed_test_samples(leaf))
    return flags


def test_knowledge_flags_only_the_pairs_its_requests_showed(tmp_path: Path, openai_server: OpenAIServer) -> None:
    openai_server.responder = lab_responder()
    docs = tmp_path / "tax" / ".documents" / "planets"
    docs.mkdir(parents=True)
    (docs / "planets.md").write_text(PLANETS_MD, encoding="utf-8")
    leaf = make_leaf("knowledge/astronomy/planets/qna.yaml", knowledge_data(".documents/planets", "", ["*.md"]))
    # Two requests, one pair each: 2 of the 5 seed examples' 15 pairs are shown.
    settings = GenerationSettings(samples_per_leaf=2, chunk_tokens=60, seed=3, qa_per_request=1,
                                  wordings_per_fact=1, max_requests_per_leaf=2, mc_per_leaf=0)
    result, sent = _generate(openai_server, leaf, settings, root=tmp_path / "tax")
    flags = _check(result, sent, leaf)
    assert len(flags) == 15 and sum(flags) == 2


def test_skills_flag_only_the_seeds_their_requests_showed(openai_server: OpenAIServer) -> None:
    openai_server.responder = lab_responder()
    for leaf in (freeform_leaf(), grounded_leaf()):
        # One request per stage, one seed (one context) shown in it.
        settings = GenerationSettings(samples_per_leaf=2, seed=5, max_requests_per_leaf=1, icl_examples=1)
        result, sent = _generate(openai_server, leaf, settings)
        flags = _check(result, sent, leaf)
        assert flags[0] and not all(flags), (leaf.path, flags)
