"""Verdicts read from probabilities, calibrated per leaf: the openai teacher reads `logprobs` from the
real local test server; a judge that separates a leaf's seeds from broken copies filters, one that
does not is reported unusable and its rows are kept unjudged."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any

from openai_server import OpenAIServer, Reply, lab_responder, verdict_logprobs
from sdgleaves import FREEFORM, freeform_leaf, run

from labtax.sdg.pipelines import estimate_requests, generate_leaf, stage_plan
from labtax.sdg.pipelines.calibrate import auc, best_threshold, fit, off_topic_questions
from labtax.sdg.pipelines.runner import LeafResult
from labtax.sdg.settings import GenerationSettings
from labtax.teachers import make_teacher
from labtax.teachers.base import TeacherRequest

SETTINGS = GenerationSettings(samples_per_leaf=6, seed=7)
SEED_QUESTIONS = {s["question"] for s in FREEFORM["seed_examples"]}
SEED_PAIRS = {(s["question"], s["answer"]) for s in FREEFORM["seed_examples"]}


def _h(text: str) -> int:
    return int(hashlib.sha256(text.encode("utf-8")).hexdigest()[:8], 16)


def _field(text: str, label: str) -> str:
    """The text after `label` up to the next blank line (a prompt's Question:/Answer: block)."""
    return text.rsplit(label, 1)[-1].strip().split("\n\n")[0].strip()


def judging_responder(*, separates: bool) -> Any:
    """lab_responder for generation; the question judge and the scorer answer with logprobs. When
    `separates`, P(keep) is low for off-topic questions and the score low for a seed question paired
    with another seed's answer (what a capable judge does); every third generated question is judged
    doubtful. Otherwise the probabilities are a hash: noise that says nothing about the row."""
    base = lab_responder()
    off_topic = set(off_topic_questions())

    def respond(kind: str, body: dict[str, Any]) -> Any:
        system, user = body["messages"][0]["content"], body["messages"][1]["content"]
        question = _field(user.split("Should this question")[0], "Question:")
        noise = (_h(user) % 1000) / 1000
        if "STAGE: judge_question" in system:
            if not separates:
                p = noise
            elif question in off_topic:
                p = 0.15
            else:
                p = 0.4 if (question not in SEED_QUESTIONS and _h(question) % 3 == 0) else 0.9
            return Reply("keep" if p >= 0.5 else "drop", top_logprobs=verdict_logprobs(p, "keep", "drop"))
        if "STAGE: score" in system:
            answer = _field(user.split("Grade the answer")[0], "Answer:")
            question = _field(user.split("Answer:")[0], "Question:")
            if not separates:
                good = noise > 0.5
            else:
                good = (question, answer) in SEED_PAIRS or (question not in SEED_QUESTIONS)
            probs = {"1": 0.05, "2": 0.15, "3": 0.8} if good else {"1": 0.7, "2": 0.25, "3": 0.05}
            return Reply(max(probs, key=probs.__getitem__), top_logprobs=[{k: math.log(v) for k, v in probs.items()}])
        return base(kind, body)

    return respond


def _generate(server: OpenAIServer) -> LeafResult:
    teacher = make_teacher("openai", endpoints=[server.base_url], model="test-model")

    async def go() -> LeafResult:
        try:
            return await generate_leaf(freeform_leaf(), teacher, SETTINGS, taxonomy_root=Path("."))
        finally:
            await teacher.aclose()

    return run(go())


def test_a_judge_that_separates_seeds_from_broken_copies_filters(openai_server: OpenAIServer) -> None:
    openai_server.responder = judging_responder(separates=True)
    result = _generate(openai_server)
    st = result.stats
    cal = st["calibration"]
    assert cal["judge_question"]["status"] == "calibrated" and cal["judge_question"]["auc"] == 1.0
    assert 0.15 < cal["judge_question"]["threshold"] < 0.9
    assert cal["score"]["status"] == "calibrated" and cal["score"]["auc"] == 1.0
    assert st["stages"]["calibrate_judge_question"]["requests"] == 10  # 5 seeds + 5 off-topic copies
    # --dry-run's estimate counts the calibration requests, stage by stage, as they were sent.
    plan = stage_plan(freeform_leaf(), SETTINGS)
    for stage in ("calibrate_judge_question", "calibrate_score"):
        assert plan[stage] == st["stages"][stage]["requests"] > 0, stage
    assert st["requests"] <= estimate_requests(freeform_leaf(), SETTINGS)
    assert st["dropped"]["judge_drop"] > 0  # the doubtful generated questions (P(keep) 0.4 < the cut)
    asked = [r.body for r in openai_server.requests if "STAGE: judge_question" in r.body["messages"][0]["content"]]
    assert asked and all(b["logprobs"] is True and b["top_logprobs"] == 20 for b in asked)
    assert result.samples
    for sample in result.samples:
        v = sample["metadata"]["verdicts"]["judge_question"]
        assert v["verdict"] == "pass" and v["p"] >= v["threshold"] and v["calibration"] == "calibrated"
        assert sample["metadata"]["scores"]["judge_question"] is True
        assert sample["metadata"]["scores"]["score"] >= SETTINGS.score_threshold


def test_a_judge_that_cannot_tell_them_apart_is_reported_unusable(openai_server: OpenAIServer) -> None:
    openai_server.responder = judging_responder(separates=False)
    result = _generate(openai_server)
    st = result.stats
    assert st["calibration"]["judge_question"]["status"] == "unusable"
    assert st["calibration"]["judge_question"]["auc"] < SETTINGS.judge_min_auc
    assert "judge_drop" not in st["dropped"]  # noise drops nothing
    judged = st["stages"]["judge_question"]
    assert judged["unjudged"] == judged["requests"]
    assert result.samples and all(
        s["metadata"]["verdicts"]["judge_question"]["verdict"] == "unjudged"
        and s["metadata"]["scores"]["judge_question"] is None for s in result.samples
    )


def test_a_server_without_logprobs_falls_back_to_text_verdicts() -> None:
    with OpenAIServer(lab_responder(drop_every=4), refuse_logprobs=True) as server:
        result = _generate(server)
        assert result.stats["calibration"]["judge_question"]["status"] == "text"
        assert result.stats["dropped"].get("judge_drop", 0) > 0
        assert not any(k.startswith("calibrate_") for k in result.stats["stages"])
        # The first judge requests (in flight together) were refused; after that none asks again.
        assert server.status_counts[400] > 0
        scored = [r.body for r in server.requests if "STAGE: score" in r.body["messages"][0]["content"]]
        assert scored and not any("logprobs" in b for b in scored)


def test_completions_logprobs_are_read(openai_server: OpenAIServer) -> None:
    openai_server.responder = lambda kind, body: Reply(" no", top_logprobs=[{" no": math.log(0.7), " yes": math.log(0.2)}])
    teacher = make_teacher("openai", endpoints=[openai_server.base_url], model="m", completions=True)
    req = TeacherRequest(messages=(("user", "Is it? yes or no"),), choices=("yes", "no"))

    async def go() -> Any:
        try:
            return await teacher.complete([req, TeacherRequest(messages=(("user", "hi"),))])
        finally:
            await teacher.aclose()

    verdict, plain = run(go())
    assert verdict.choice_probs == {"yes": round(0.2 / 0.9, 6), "no": round(0.7 / 0.9, 6)}
    assert plain.choice_probs is None and "logprobs" not in openai_server.requests[1].body
    assert openai_server.requests[0].body["logprobs"] == 20


def test_fit_auc_and_threshold() -> None:
    assert auc([0.9, 0.8], [0.1, 0.2]) == 1.0 and auc([0.5], [0.5]) == 0.5
    assert 0.2 < best_threshold([0.9, 0.8], [0.1, 0.2]) <= 0.8
    assert fit("s", [0.9, 0.8, 0.7], [0.2, 0.1, 0.75], min_auc=0.75, default=0.5).status == "calibrated"
    assert fit("s", [0.5, 0.4], [0.5, 0.6], min_auc=0.75, default=0.5).status == "unusable"
    assert fit("s", [0.9], [0.1], min_auc=0.75, default=0.5).status == "default"


PLANETS = ("Mercury", "Venus", "Mars", "Jupiter", "Saturn", "Neptune", "Uranus")


def knowledge_judge(kind: str, body: dict[str, Any]) -> Any:
    """The three knowledge judges with logprobs, judging as a capable model would: an answer naming a
    planet the document does not is unfaithful (and irrelevant); a question pointing at "the passage
    above" does not stand alone."""
    system, user = body["messages"][0]["content"], body["messages"][1]["content"]
    if not any(f"STAGE: {s}" in system for s in ("faithful", "relevant", "standalone")):
        return lab_responder()(kind, body)
    if "STAGE: standalone" in system:
        p = 0.1 if "passage above" in user else 0.9
    else:
        # The whole document shown (a chunk may hold several paragraphs), up to the question.
        document = user.split("Document:", 1)[1].split("\nQuestion:", 1)[0]
        answer = user.rsplit("Answer:", 1)[-1]
        question = _field(user.split("Answer:")[0], "Question:")
        foreign = [n for n in PLANETS if n in answer and n not in document]
        off_topic = "STAGE: relevant" in system and question in set(off_topic_questions())
        p = 0.1 if foreign or off_topic else 0.9
    return Reply("yes" if p > 0.5 else "no", top_logprobs=verdict_logprobs(p))


def test_knowledge_judges_are_calibrated_on_the_seed_contexts(tmp_path: Path, openai_server: OpenAIServer) -> None:
    from sdgleaves import PLANETS_MD, knowledge_data, make_leaf

    docs = tmp_path / "tax" / ".documents" / "planets"
    docs.mkdir(parents=True)
    (docs / "planets.md").write_text(PLANETS_MD, encoding="utf-8")
    leaf = make_leaf("knowledge/astronomy/planets/qna.yaml", knowledge_data(".documents/planets", "", ["*.md"]))
    openai_server.responder = knowledge_judge
    teacher = make_teacher("openai", endpoints=[openai_server.base_url], model="test-model")
    settings = GenerationSettings(samples_per_leaf=5, chunk_tokens=60, seed=3)

    async def go() -> LeafResult:
        try:
            return await generate_leaf(leaf, teacher, settings, taxonomy_root=tmp_path / "tax")
        finally:
            await teacher.aclose()

    result = run(go())
    cal = result.stats["calibration"]
    plan = stage_plan(leaf, settings, result.stats["chunks"])
    for stage in ("faithful", "relevant", "standalone"):
        assert cal[stage]["status"] == "calibrated" and cal[stage]["auc"] == 1.0, (stage, cal[stage])
        assert len(cal[stage]["good"]) == len(cal[stage]["broken"]) == 6
        assert plan[f"calibrate_{stage}"] == result.stats["stages"][f"calibrate_{stage}"]["requests"] == 12
    assert result.stats["requests"] <= estimate_requests(leaf, settings, result.stats["chunks"])
    assert result.samples
    for sample in result.samples:
        verdicts = sample["metadata"]["verdicts"]
        assert {v["verdict"] for s, v in verdicts.items() if s in ("faithful", "relevant", "standalone")} == {"pass"}


def test_calibration_in_the_run_summary_line_and_the_manifest_numbers() -> None:
    from labtax.data import GenerationStats
    from labtax.sdg.pipelines.calibrate import calibration_text

    stats = {"kept": 1, "calibration": {
        "faithful": {"status": "calibrated", "auc": 0.92, "threshold": 0.41, "good": [0.9], "broken": [0.1]},
        "standalone": {"status": "unusable", "auc": 0.55, "threshold": None, "good": [], "broken": []},
        "relevant": {"status": "text", "auc": None, "threshold": None, "good": [], "broken": []}}}
    assert calibration_text(stats) == ("; judges: faithful calibrated (AUC 0.92, cut 0.410), "
                                       "standalone unusable (AUC 0.55)")
    assert GenerationStats.from_stats(stats).to_json()["calibration"]["faithful"] == {
        "status": "calibrated", "auc": 0.92, "threshold": 0.41}
    assert calibration_text({"kept": 0}) == ""
