"""The openai teacher sizes knowledge chunks with the server's tokenizer when the server has vLLM's
`POST /tokenize` (issue 16), one ask per text; without it, the words x 1.3 estimate, said in the
run's stats. Against the real local OpenAI-protocol server, with and without the endpoint."""

from __future__ import annotations

from pathlib import Path

import pytest
from openai_server import OpenAIServer, lab_responder, server_tokens
from sdgleaves import PLANETS_MD, knowledge_data, make_leaf, run

from labtax.errors import TeacherError
from labtax.sdg.documents import chunk_documents, load_documents
from labtax.sdg.pipelines import generate_leaf
from labtax.sdg.pipelines.runner import token_counter
from labtax.sdg.settings import GenerationSettings
from labtax.teachers import make_teacher
from labtax.teachers.base import estimate_tokens
from labtax.teachers.tokenize import ESTIMATE, SERVER, tokenize_url

TEXT = "Mars holds argon (and helium) at -65 degrees, says the survey's 1965 map."  # 20 tokens, 17 estimated


def test_the_tokenize_url_is_at_the_server_root() -> None:
    assert tokenize_url("http://h:8000/v1") == "http://h:8000/tokenize"
    assert tokenize_url("https://h/openai/v1/") == "https://h/openai/tokenize"


def test_a_server_with_tokenize_counts_each_text_once() -> None:
    with OpenAIServer(lab_responder(), tokenize=True) as server:
        teacher = make_teacher("openai", endpoints=[server.base_url], model="test-model")
        assert teacher.count_tokens(TEXT) == server_tokens(TEXT) != estimate_tokens(TEXT)  # no BOS counted
        assert teacher.count_tokens(TEXT) == server_tokens(TEXT) and server.tokenized == 1  # cached
        assert teacher.token_counter() == token_counter(teacher) == SERVER
        assert teacher.stats().counts["tokenize_requests"] == 1


def test_without_tokenize_the_estimate_is_used_and_said() -> None:
    with OpenAIServer(lab_responder()) as server:
        teacher = make_teacher("openai", endpoints=[server.base_url], model="test-model")
        assert [teacher.count_tokens(t) for t in (TEXT, "one two", TEXT)] == [estimate_tokens(t) for t in (TEXT, "one two", TEXT)]
        assert teacher.token_counter() == ESTIMATE
        assert teacher.stats().counts["tokenize_requests"] == 1  # the 404 is asked once, not per text


def test_knowledge_chunks_are_sized_in_the_servers_tokens(tmp_path: Path) -> None:
    docs = tmp_path / ".documents" / "planets"
    docs.mkdir(parents=True)
    (docs / "planets.md").write_text(PLANETS_MD, encoding="utf-8")
    leaf = make_leaf("knowledge/astronomy/planets/qna.yaml", knowledge_data(".documents/planets", "", ["*.md"]))
    settings = GenerationSettings(samples_per_leaf=1, chunk_tokens=40, seed=2, mc_per_leaf=0)
    expected = chunk_documents(load_documents(leaf, tmp_path), 40, server_tokens)
    with OpenAIServer(lab_responder(), tokenize=True) as server:
        teacher = make_teacher("openai", endpoints=[server.base_url], model="test-model")

        async def go() -> dict[str, object]:
            try:
                return (await generate_leaf(leaf, teacher, settings, taxonomy_root=tmp_path)).stats
            finally:
                await teacher.aclose()

        stats = run(go())
    assert stats["chunks_sized_by"] == SERVER and stats["chunks"] == len(expected)
    assert len(expected) != len(chunk_documents(load_documents(leaf, tmp_path), 40))  # the estimate differs


def test_a_tokenize_that_answered_and_then_fails_fails_the_leaf_rather_than_switching() -> None:
    server = OpenAIServer(lab_responder(), tokenize=True).start()
    teacher = make_teacher("openai", endpoints=[server.base_url], model="test-model")
    teacher.backoff_base = 0.01  # type: ignore[attr-defined]
    assert teacher.count_tokens(TEXT) == server_tokens(TEXT)
    server.stop()
    assert teacher.count_tokens(TEXT) == server_tokens(TEXT)  # cached: no ask
    with pytest.raises(TeacherError, match="could not size a document chunk"):
        teacher.count_tokens("a text not asked before")
