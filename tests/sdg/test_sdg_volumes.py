"""Volumes as the reference recipe: knowledge coverage follows the documents, every seed is shown,
quotas scale with the seeds, --max-requests-per-leaf bounds and says so, and each leaf has a funnel."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from openai_server import OpenAIServer, lab_responder
from sdgleaves import FREEFORM, GROUNDED, generate_with_server, knowledge_data, make_leaf

from labtax.sdg.pipelines import estimate_requests
from labtax.sdg.pipelines.knowledge_mc import plan as mc_plan
from labtax.sdg.pipelines.runner import LeafResult
from labtax.sdg.settings import GenerationSettings

FILLER = ("The survey team recorded the readings carefully, compared them with the archive and wrote "
          "down every deviation it found in the logbook of the station. ")


def _document(paragraphs: int, words_each: int) -> tuple[str, list[str]]:
    """Paragraphs of about `words_each` words, each carrying one distinct marker word."""
    markers = [f"MARKER{i:02d}ZQ" for i in range(paragraphs)]
    filler_words = FILLER.split()
    paras = []
    for m in markers:
        body = " ".join(filler_words[j % len(filler_words)] for j in range(words_each))
        paras.append(f"Section {m}. {body}")
    return "\n\n".join(paras), markers


def _generate(server: OpenAIServer, leaf: Any, settings: GenerationSettings, root: Path) -> LeafResult:
    result: LeafResult = generate_with_server(server.base_url, leaf, settings, root, concurrency=32)
    return result


def _qa_prompts(server: OpenAIServer) -> list[str]:
    return [r.body["messages"][1]["content"] for r in server.requests
            if "STAGE: knowledge_qa" in r.body["messages"][0]["content"]]


def _cheap_knowledge(kind: str, body: dict[str, Any]) -> Any:
    """One pair per Q&A request and every pair judged unfaithful: a default-volume run stays quick
    (the test is about which chunks the Q&A requests carry)."""
    system = body["messages"][0]["content"]
    if "STAGE: faithful" in system:
        return "Verdict: no"
    if "STAGE: knowledge_qa" in system:
        chunk = body["messages"][1]["content"].rsplit("Document:", 1)[-1]
        marker = (re.findall(r"MARKER\d+ZQ", chunk) or ["none"])[0]
        tag = "".join("abcdefghij"[int(d)] for d in str(body["seed"]))  # distinct rows, no number the chunk lacks
        return f"Question: What does section {marker} report as {tag}?\nAnswer: Readings for {marker}."
    return lab_responder()(kind, body)


def test_default_run_covers_the_whole_document(tmp_path: Path, openai_server: OpenAIServer) -> None:
    # 30 paragraphs of ~280 words (~360 estimated tokens): one chunk each at the default 400 tokens.
    text, markers = _document(30, 280)
    docs = tmp_path / ".documents" / "survey"
    docs.mkdir(parents=True)
    (docs / "survey.md").write_text(text, encoding="utf-8")
    leaf = make_leaf("knowledge/survey/qna.yaml", knowledge_data(".documents/survey", "", ["*.md"]))
    openai_server.responder = _cheap_knowledge
    result = _generate(openai_server, leaf, GenerationSettings(), tmp_path)
    st = result.stats
    assert st["chunks"] == 30 and st["chunks_asked"] == 30 and st["seeds_used"] == 5
    # The test server has no /tokenize: the estimate sized the chunks, and the run says so.
    assert st["chunks_sized_by"] == "estimate (words x 1.3)"
    from labtax.sdg.generate import LeafOutcome, summary_line

    assert "chunks sized by the words x 1.3 estimate" in summary_line(LeafOutcome(leaf.path, result))
    prompts = _qa_prompts(openai_server)
    covered = {m for m in markers if any(m in p for p in prompts)}
    assert covered == set(markers)
    # Each chunk holds one key fact (its section's name): one request each, asking for it in the
    # default two wordings; the plan fits the default bound.
    assert st["facts"] == 30 and st["wordings"] == 2
    assert st["max_requests_bound"] is False and st["requests_wanted"] == 30 == st["stages"]["knowledge_qa"]["requests"]
    f = st["funnel"]
    assert f["asked"] == 60 and f["parsed"] == 30 and f["supported"] == 30 and f["judged"] == 0 and f["kept"] == 0


def test_a_small_bound_still_spreads_over_every_chunk(tmp_path: Path, openai_server: OpenAIServer) -> None:
    text, markers = _document(12, 280)
    docs = tmp_path / ".documents" / "s"
    docs.mkdir(parents=True)
    (docs / "s.md").write_text(text, encoding="utf-8")
    leaf = make_leaf("knowledge/s/qna.yaml", knowledge_data(".documents/s", "", ["*.md"]))
    settings = GenerationSettings(samples_per_leaf=4, max_requests_per_leaf=6)
    result = _generate(openai_server, leaf, settings, tmp_path)
    assert result.stats["max_requests_bound"] is True
    prompts = _qa_prompts(openai_server)
    assert len(prompts) == 6
    # Six requests over twelve chunks: two neighbouring chunks a request, every chunk shown.
    hit = sorted(i for i, m in enumerate(markers) if any(m in p for p in prompts))
    assert hit == list(range(12)) and result.stats["chunks_asked"] == 12
    # Q&A, its three judges and a reword of each pair at most (a fact kept in one wording), the
    # judges' calibration on the seeds (each side capped at calibration_examples), plus the held-out multiple-choice stage, its judge and its open-book
    # answer; a chunk count alone (facts unknown) plans the request limit.
    calibration = 3 * 2 * settings.calibration_examples
    assert estimate_requests(leaf, settings, 12) == 6 + 4 * 36 + calibration + sum(mc_plan(settings).values())
    assert result.stats["requests"] <= estimate_requests(leaf, settings, 12)


def test_every_seed_is_shown_and_the_quota_scales_with_seeds(openai_server: OpenAIServer) -> None:
    for data, path in ((FREEFORM, "compositional_skills/poems/qna.yaml"),
                       (GROUNDED, "compositional_skills/email/qna.yaml")):
        many = dict(data)
        many["seed_examples"] = [*data["seed_examples"], *[
            {**s, "question": s["question"].replace("four line", "two line").replace("one sentence", "five words")}
            for s in data["seed_examples"]]]
        leaf = make_leaf(path, many)
        openai_server.reset()
        result = _generate(openai_server, leaf, GenerationSettings(samples_per_leaf=4, overgenerate=1.0,
                                                                   questions_per_request=4), Path("."))
        shown = "\n".join(r.body["messages"][1]["content"] for r in openai_server.requests
                          if "STAGE: questions" in r.body["messages"][0]["content"]
                          or "STAGE: contexts" in r.body["messages"][0]["content"])
        for seed in many["seed_examples"]:
            assert (seed.get("context") or seed["question"]) in shown
        if "context" not in many["seed_examples"][0]:
            # Each question request shows exactly one seed question.
            prompts = [r.body["messages"][1]["content"] for r in openai_server.requests
                       if "STAGE: questions" in r.body["messages"][0]["content"]]
            assert all(sum(s["question"] in p for s in many["seed_examples"]) == 1 for p in prompts)
        # 10 seeds: twice the quota of a 5-seed leaf.
        assert result.stats["quota"] == 8 and result.stats["seeds_used"] == 10
        f = result.stats["funnel"]
        steps = [f[k] for k in ("asked", "parsed", "deduplicated", "judged", "answered", "scored", "kept")]
        assert steps == sorted(steps, reverse=True) and f["kept"] == len(result.samples) > 0


def test_an_edit_to_the_first_seed_changes_the_requests(openai_server: OpenAIServer) -> None:
    edited = dict(GROUNDED)
    edited["seed_examples"] = [dict(s) for s in GROUNDED["seed_examples"]]
    edited["seed_examples"][0]["question"] = "Summarise this email as a haiku."
    keys = []
    for data in (GROUNDED, edited):
        openai_server.reset()
        _generate(openai_server, make_leaf("compositional_skills/email/qna.yaml", data),
                  GenerationSettings(samples_per_leaf=2), Path("."))
        keys.append({r.body["messages"][1]["content"] for r in openai_server.requests})
    assert any("as a haiku" in p for p in keys[1])
    assert keys[0] != keys[1]


def test_a_local_teacher_sizes_chunks_with_its_tokenizer() -> None:
    from labtax.sdg.pipelines.runner import token_counter
    from labtax.teachers.base import TeacherBase
    from labtax.teachers.lazy import LazyTeacher

    class Local(TeacherBase):
        model_id = "local"

        def count_tokens(self, text: str) -> int:
            return len(text)

    class Remote(TeacherBase):
        model_id = "remote"

    assert token_counter(Local()) == "teacher tokenizer"
    assert token_counter(Remote()) == "estimate (words x 1.3)"
    lazy = LazyTeacher(Local, "local")
    assert token_counter(lazy) == "teacher tokenizer"
