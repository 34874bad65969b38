"""The LAB pipelines against the real test server: stages, filters, determinism, robustness."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from openai_server import Fault, OpenAIServer, Reply, fail_first, lab_responder
from sdgleaves import PLANETS_MD, freeform_leaf, grounded_leaf, knowledge_data, make_leaf, run

from labtax.errors import TeacherError
from labtax.sdg.pipelines import estimate_requests, generate_leaf, pipeline_files, pipeline_name
from labtax.sdg.pipelines.runner import LeafResult
from labtax.sdg.settings import GenerationSettings
from labtax.taxonomy.model import Leaf
from labtax.teachers import make_teacher
from labtax.teachers.base import Teacher, TeacherRequest, TeacherResponse

SETTINGS = GenerationSettings(samples_per_leaf=6, seed=7)


def _h(text: str) -> int:
    """A stable hash to pick which rows a scripted responder spoils."""
    return int(hashlib.sha256(text.encode("utf-8")).hexdigest()[:8], 16)


class Recording:
    """A wrapper that records every request the pipeline sends (what the run ledger would see)."""

    def __init__(self, inner: Teacher) -> None:
        self.inner = inner
        self.model_id = inner.model_id
        self.calls: list[list[TeacherRequest]] = []

    async def complete(self, requests: Sequence[TeacherRequest]) -> list[TeacherResponse]:
        self.calls.append(list(requests))
        return await self.inner.complete(requests)

    def tags(self) -> list[str]:
        """The stages in the order each first sent a request (stages stream: their requests mix)."""
        return list(dict.fromkeys(r.tag for call in self.calls for r in call))

    def sent(self, tag: str) -> list[TeacherRequest]:
        return [r for call in self.calls for r in call if r.tag == tag]

    async def aclose(self) -> None:
        await self.inner.aclose()


def _generate(server: OpenAIServer, leaf: Leaf, settings: GenerationSettings = SETTINGS,
              root: Path = Path("."), **kw: Any) -> tuple[LeafResult, Recording]:
    teacher = make_teacher("openai", endpoints=[server.base_url], model="test-model", **kw)
    teacher.backoff_base = 0.01  # type: ignore[attr-defined]
    recording = Recording(teacher)

    async def go() -> LeafResult:
        try:
            return await generate_leaf(leaf, recording, settings, taxonomy_root=root)
        finally:
            await recording.aclose()

    return run(go()), recording


def _check_accounting(result: LeafResult) -> None:
    st = result.stats
    assert st["kept"] == len(result.samples)
    assert st["kept"] + sum(st["dropped"].values()) == st["generated"]
    assert st["requests"] == sum(s["requests"] for s in st["stages"].values())


def test_freeform_skills_pipeline(openai_server: OpenAIServer) -> None:
    openai_server.responder = lab_responder(drop_every=4, low_score_every=5)
    leaf = freeform_leaf()
    result, rec = _generate(openai_server, leaf)
    assert pipeline_name(leaf) == "freeform_skills"
    assert rec.tags() == ["questions", "judge_question", "answer", "score"]
    assert len(result.samples) == 6
    _check_accounting(result)
    st = result.stats
    assert st["dropped"].get("judge_drop", 0) > 0 and st["failed_requests"] == 0
    assert st["prompt_tokens"] > 0 and st["completion_tokens"] > 0
    assert st["requests"] <= estimate_requests(leaf, SETTINGS)
    sample = result.samples[0]
    assert sample["unmask"] is False
    assert [m["role"] for m in sample["messages"]] == ["user", "assistant"]
    meta = sample["metadata"]
    assert meta["leaf"] == leaf.path and meta["kind"] == "compositional_skills"
    assert meta["pipeline"] == "freeform_skills" and meta["teacher"] == "openai:test-model"
    assert meta["seed"] == 7 and meta["scores"]["score"] >= 2 and meta["scores"]["judge_question"] is True
    assert sample["messages"][0]["content"] == meta["question"]
    assert sample["messages"][1]["content"] == meta["answer"]
    # Each generation prompt is built from this leaf's seeds only.
    question_prompt = rec.sent("questions")[0].messages[1][1]
    assert "natural phenomenon" in question_prompt and "at dawn" in question_prompt


def test_grounded_skills_keep_the_context(openai_server: OpenAIServer) -> None:
    leaf = grounded_leaf()
    result, rec = _generate(openai_server, leaf)
    assert rec.tags() == ["contexts", "questions", "judge_question", "answer", "score"]
    _check_accounting(result)
    assert len(result.samples) == 6
    for sample in result.samples:
        context = sample["metadata"]["context"]
        assert context and "survey" in context
        assert sample["messages"][0]["content"] == f"{context}\n\n{sample['metadata']['question']}"
    answer_prompt = rec.sent("answer")[0].messages[1][1]
    assert "Context:" in answer_prompt


def test_same_inputs_give_same_requests_and_samples(openai_server: OpenAIServer) -> None:
    leaf = freeform_leaf()
    first, rec1 = _generate(openai_server, leaf)
    second, rec2 = _generate(openai_server, leaf, concurrency=3)
    # The same requests whatever order the replies came in (the calls that carried them may differ).
    keys1 = {tag: sorted(r.key() for r in rec1.sent(tag)) for tag in rec1.tags()}
    keys2 = {tag: sorted(r.key() for r in rec2.sent(tag)) for tag in rec2.tags()}
    assert keys1 == keys2
    assert json.dumps(first.samples) == json.dumps(second.samples)
    _other, rec3 = _generate(openai_server, leaf, GenerationSettings(samples_per_leaf=6, seed=8))
    assert rec3.sent("questions")[0].key() != rec1.sent("questions")[0].key()
    # Seeds differ per request within a stage.
    seeds = [r.seed for r in rec1.sent("questions")]
    assert len(set(seeds)) == len(seeds)


def test_garbage_empty_and_truncated_answers_cost_only_their_rows(openai_server: OpenAIServer) -> None:
    base = lab_responder()

    def responder(kind: str, body: dict[str, Any]) -> Any:
        text = body["messages"][0]["content"]
        user = body["messages"][1]["content"]
        h = _h(user)
        if "STAGE: judge_question" in text and h % 5 == 0:
            return "\x00\x01 garbage ~~~ ###"
        if "STAGE: answer" in text and h % 5 == 1:
            return ""
        if "STAGE: answer" in text and h % 5 == 2:
            return Reply("The answer begins but", finish_reason="length")
        if "STAGE: score" in text and h % 5 == 3:
            return "Score: banana"
        # By content, not seed: an unreadable reply is asked again with a new seed (issue 12), and
        # this one must stay unreadable through every attempt.
        if "STAGE: questions" in text and h % 3 == 0:
            return "I cannot help with that"
        return base(kind, body)

    openai_server.responder = responder
    result, _ = _generate(openai_server, freeform_leaf(), GenerationSettings(samples_per_leaf=30, seed=1, questions_per_request=5))
    _check_accounting(result)
    dropped = result.stats["dropped"]
    for reason in ("judge_question_unparsed", "answer_empty", "answer_truncated", "score_unparsed"):
        assert dropped.get(reason, 0) > 0, (reason, dropped)
    assert result.stats["stages"]["questions"]["unusable"] > 0
    assert result.samples  # the rest went through


def test_faults_are_counted_and_no_row_is_lost(openai_server: OpenAIServer) -> None:
    """500s, 429 + Retry-After, malformed JSON and a timeout: the same samples as a clean run."""
    clean, _ = _generate(openai_server, freeform_leaf())
    base = lab_responder()
    responder = fail_first(base, Fault(500), match=lambda k, b: b["seed"] % 5 == 0)
    responder = fail_first(responder, Fault(429, {"Retry-After": "0"}), match=lambda k, b: b["seed"] % 5 == 1)
    responder = fail_first(responder, Fault(200, body="garbage, not JSON"), match=lambda k, b: b["seed"] % 5 == 2)
    responder = fail_first(responder, Fault(sleep=2.5, then="late"), match=lambda k, b: b["seed"] % 23 == 3)
    openai_server.responder = responder
    openai_server.reset()
    teacher = make_teacher("openai", endpoints=[openai_server.base_url], model="test-model", timeout=1.0)
    teacher.backoff_base = 0.01  # type: ignore[attr-defined]

    async def go() -> LeafResult:
        try:
            return await generate_leaf(freeform_leaf(), teacher, SETTINGS, taxonomy_root=Path("."))
        finally:
            await teacher.aclose()

    faulty = run(go())
    assert json.dumps(faulty.samples) == json.dumps(clean.samples)
    assert faulty.stats["failed_requests"] == 0
    faults = teacher.faults  # type: ignore[attr-defined]
    assert faults["status 500"] > 0 and faults["status 429"] > 0 and faults["malformed body"] > 0
    assert openai_server.status_counts[500] == faults["status 500"]


def test_a_teacher_that_always_fails_raises_teacher_error(openai_server: OpenAIServer) -> None:
    openai_server.responder = lambda k, b: Fault(500)
    teacher = make_teacher("openai", endpoints=[openai_server.base_url], model="m")
    teacher.max_retries = 1  # type: ignore[attr-defined]
    teacher.backoff_base = 0.001  # type: ignore[attr-defined]

    async def go() -> None:
        try:
            await generate_leaf(freeform_leaf(), teacher, SETTINGS, taxonomy_root=Path("."))
        finally:
            await teacher.aclose()

    with pytest.raises(TeacherError, match="every questions request failed"):
        run(go())


def test_near_duplicate_questions_are_dropped(openai_server: OpenAIServer) -> None:
    def responder(kind: str, body: dict[str, Any]) -> Any:
        text = body["messages"][0]["content"]
        if "STAGE: questions" in text:
            return ("1. Write a four line poem about the river at dawn.\n"  # a seed: exact duplicate
                    "2. How do glaciers carve valleys over thousands of years, explained simply?\n"
                    "3. How do glaciers carve valleys over thousands of years, explained simply!\n"
                    f"4. Describe the sound of rain number {body['seed']} on a tin roof at night.")
        return lab_responder()(kind, body)

    openai_server.responder = responder
    result, _ = _generate(openai_server, freeform_leaf(), GenerationSettings(samples_per_leaf=3))
    _check_accounting(result)
    assert result.stats["dropped"]["duplicate_exact"] >= 3  # the seed copy in every response + repeats


def test_knowledge_pipeline_from_a_local_document_folder(tmp_path: Path, openai_server: OpenAIServer) -> None:
    docs = tmp_path / "tax" / ".documents" / "planets"
    docs.mkdir(parents=True)
    (docs / "planets.md").write_text(PLANETS_MD, encoding="utf-8")
    leaf = make_leaf("knowledge/astronomy/planets/qna.yaml", knowledge_data(".documents/planets", "", ["*.md"]))
    settings = GenerationSettings(samples_per_leaf=5, chunk_tokens=60, seed=3)
    result, rec = _generate(openai_server, leaf, settings, root=tmp_path / "tax")
    assert pipeline_name(leaf) == "knowledge"
    # The Q&A stages; the multiple-choice test items' own stage (issue 14) needs only the chunks, so
    # its requests go out beside the first Q&A ones; its judge and the open-book answer run once the
    # training rows are final.
    assert rec.tags() == ["knowledge_qa", "mc_items", "faithful", "relevant", "standalone", "mc_faithful",
                          "mc_open_book"]
    _check_accounting(result)
    st = result.stats
    assert st["chunks"] > 1 and st["documents"] == 1
    # Every chunk is asked about and kept rows of every chunk; the pairs asked follow the facts.
    assert st["chunks_asked"] == st["chunks_covered"] == st["chunks"]
    assert st["facts_asked"] == st["facts"] and st["funnel"]["asked"] == st["facts"] * st["wordings"] == 2 * st["facts"]
    # Two wordings per fact: the samples of one fact share its id, "<document>#<chunk>/<n>".
    facts = Counter(s["metadata"]["fact"] for s in result.samples + [v for v in result.held_out
                                                                     if v["metadata"].get("split") == "validation"])
    assert set(facts.values()) == {2} and all(f.startswith("planets.md#") for f in facts)
    assert st["facts_with_wordings"] == len(facts) == st["facts_covered"]
    # The quota (samples_per_leaf per 5 seed example x chunk cells) bounds the training rows.
    assert len(result.samples) <= st["quota"] == 5 * st["chunks"]
    sample = result.samples[0]
    meta = sample["metadata"]
    assert sample["unmask"] is True and meta["kind"] == "knowledge" and meta["pipeline"] == "knowledge"
    assert meta["context"] in PLANETS_MD and meta["document"] == "planets.md"
    assert sample["messages"][0]["content"] == f"{meta['context']}\n\n{meta['question']}"
    qa_prompt = rec.sent("knowledge_qa")[0].messages[1][1]
    assert "astronomy" in qa_prompt and "a planet of the solar system with its own moons" in qa_prompt
    # Requests are spread over the chunks, not all on the first one.
    assert len({r.messages[1][1].split("Document:")[1] for r in rec.sent("knowledge_qa")}) > 1


def test_knowledge_multiple_choice_items_are_held_out(tmp_path: Path, openai_server: OpenAIServer) -> None:
    docs = tmp_path / "tax" / ".documents" / "planets"
    docs.mkdir(parents=True)
    (docs / "planets.md").write_text(PLANETS_MD, encoding="utf-8")
    leaf = make_leaf("knowledge/astronomy/planets/qna.yaml", knowledge_data(".documents/planets", "", ["*.md"]))
    settings = GenerationSettings(samples_per_leaf=5, chunk_tokens=60, seed=3, mc_per_leaf=4)
    result, rec = _generate(openai_server, leaf, settings, root=tmp_path / "tax")
    mc = [r for r in result.held_out if r["metadata"].get("source") == "mc"]
    validation = [r for r in result.held_out if r["metadata"].get("split") == "validation"]
    assert len(mc) == 4 and result.stats["mc"]["kept"] == 4
    assert result.stats["mc"]["generated"] == sum(result.stats["mc"]["dropped"].values()) + 4
    for item in mc:
        assert len(item["choices"]) == 4 and len(set(item["choices"])) == 4
        assert item["choices"][item["answer_index"]] == item["messages"][-1]["content"]
        assert item["messages"][0]["content"] == item["metadata"]["question"]  # closed book: no chunk
        assert item["metadata"]["context"] in PLANETS_MD and item["metadata"]["shown_to_teacher"] is False
    assert len({item["answer_index"] for item in mc}) > 1  # the options are shuffled
    # Never training data: no training question is a test question, validation rows are extra rows.
    train_questions = {s["metadata"]["question"] for s in result.samples}
    assert not train_questions & {item["messages"][0]["content"] for item in mc}
    assert validation and result.stats["dropped"]["held_out_validation"] == len(validation)
    assert not train_questions & {v["metadata"]["question"] for v in validation}
    judged = rec.sent("mc_faithful")
    assert all("Wrong answers:" in r.messages[1][1] and "Document:" in r.messages[1][1] for r in judged)


def test_knowledge_filters_drop_by_reason(tmp_path: Path, openai_server: OpenAIServer) -> None:
    docs = tmp_path / ".documents" / "p"
    docs.mkdir(parents=True)
    (docs / "a.txt").write_text(PLANETS_MD, encoding="utf-8")
    base = lab_responder()

    def responder(kind: str, body: dict[str, Any]) -> Any:
        system = body["messages"][0]["content"]
        h = _h(body["messages"][1]["content"])
        if "STAGE: faithful" in system and h % 4 == 0:
            return "Verdict: no"
        if "STAGE: relevant" in system and h % 4 == 1:
            return "Verdict: no"
        if "STAGE: standalone" in system and h % 4 == 2:
            return "Verdict: no"
        if "STAGE: knowledge_qa" in system and body["seed"] % 2 == 0:
            return Reply(str(base(kind, body)), finish_reason="length")
        return base(kind, body)

    openai_server.responder = responder
    leaf = make_leaf("knowledge/p/qna.yaml", knowledge_data(".documents/p", "", ["*.txt"]))
    result, _ = _generate(openai_server, leaf, GenerationSettings(samples_per_leaf=20, chunk_tokens=80), root=tmp_path)
    _check_accounting(result)
    dropped = result.stats["dropped"]
    for reason in ("unfaithful", "irrelevant", "not_self_contained", "answer_truncated"):
        assert dropped.get(reason, 0) > 0, (reason, dropped)


def test_estimate_and_pipeline_files() -> None:
    files = pipeline_files()
    names = {f.name for f in files}
    assert {"freeform_skills.yaml", "grounded_skills.yaml", "knowledge.yaml", "answer.yaml"} <= names
    assert all(f.is_file() for f in files)
    s = GenerationSettings(samples_per_leaf=10, questions_per_request=5, overgenerate=2.0)
    # At least one question request per seed (5 seeds), each asking for 5 questions; the question
    # judge and the scorer each calibrated on the 5 seeds and 5 broken copies.
    assert estimate_requests(freeform_leaf(), s) == 5 + 3 * 25 + 2 * 10
    assert estimate_requests(grounded_leaf(), s) == 5 + 5 + 3 * 25 + 2 * 10
    assert "batch_requests" not in s.as_dict() and s.as_dict()["seed"] == 42


def test_progress_is_reported_per_stage(openai_server: OpenAIServer) -> None:
    teacher = make_teacher("openai", endpoints=[openai_server.base_url], model="test-model")
    seen: list[tuple[str, int, int]] = []

    async def go() -> LeafResult:
        try:
            return await generate_leaf(freeform_leaf(), teacher, GenerationSettings(samples_per_leaf=4,
                                       batch_requests=3), taxonomy_root=Path("."),
                                       progress=lambda stage, done, total: seen.append((stage, done, total)))
        finally:
            await teacher.aclose()

    result = run(go())
    stages = [s for s, _, _ in seen]
    assert stages[0] == "questions" and "score" in stages
    judge = [(d, t) for s, d, t in seen if s == "judge_question"]
    assert judge[-1][0] == judge[-1][1] == result.stats["stages"]["judge_question"]["requests"]
    assert [d for d, _ in judge] == sorted(d for d, _ in judge) and judge[0][0] == 3  # slices of 3


def test_wrapped_teacher_keeps_the_inner_tokenizer_for_chunking() -> None:
    from labtax.sdg.documents import estimate_tokens
    from labtax.sdg.pipelines.runner import count_tokens_for

    class Inner:
        model_id = "x"

        def count_tokens(self, text: str) -> int:
            return 7

    class Wrapper:
        model_id = "x"

        def __init__(self) -> None:
            self.inner = Inner()

    assert count_tokens_for(Wrapper())("a b c") == 7  # type: ignore[arg-type]
    assert count_tokens_for(object()) is estimate_tokens  # type: ignore[arg-type]


def test_unreadable_verdicts_can_be_kept_and_are_counted(openai_server: OpenAIServer) -> None:
    base = lab_responder()

    def responder(kind: str, body: dict[str, Any]) -> Any:
        system = body["messages"][0]["content"]
        if "STAGE: judge_question" in system or "STAGE: score" in system:
            return "What a lovely question about the weather!"
        return base(kind, body)

    openai_server.responder = responder
    strict, _ = _generate(openai_server, freeform_leaf())
    assert strict.samples == [] and strict.stats["dropped"]["judge_question_unparsed"] > 0
    lenient, _ = _generate(openai_server, freeform_leaf(), SETTINGS.with_(unreadable_verdicts="keep"))
    _check_accounting(lenient)
    assert len(lenient.samples) == 6
    assert all(s["metadata"]["scores"] == {"judge_question": None, "score": None} for s in lenient.samples)
    stages = lenient.stats["stages"]
    assert stages["judge_question"]["unreadable_kept"] == stages["judge_question"]["requests"]
    assert stages["score"]["unreadable_kept"] == stages["score"]["requests"]


def test_advisory_judges_record_verdicts_but_drop_nothing(openai_server: OpenAIServer) -> None:
    base = lab_responder()

    def responder(kind: str, body: dict[str, Any]) -> Any:
        system = body["messages"][0]["content"]
        if "STAGE: judge_question" in system:
            return "no"
        if "STAGE: score" in system:
            return "1"
        return base(kind, body)

    openai_server.responder = responder
    enforced, _ = _generate(openai_server, freeform_leaf())
    assert enforced.samples == [] and sum(enforced.stats["dropped"].values()) == enforced.stats["generated"]
    advisory, _ = _generate(openai_server, freeform_leaf(), SETTINGS.with_(judges="advisory"))
    _check_accounting(advisory)
    assert len(advisory.samples) == 6
    assert all(s["metadata"]["scores"] == {"judge_question": False, "score": 1} for s in advisory.samples)
    stages = advisory.stats["stages"]
    assert stages["judge_question"]["advisory_kept"] == stages["judge_question"]["requests"]
    assert stages["score"]["advisory_kept"] == stages["score"]["requests"]
