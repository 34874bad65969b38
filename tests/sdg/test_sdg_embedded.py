"""The transformers teacher: the tiny model for batching mechanics, the real embedded model end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sdgleaves import freeform_leaf, run

from labtax.sdg.generate import generate_leaves, output_path
from labtax.sdg.settings import GenerationSettings
from labtax.teachers.base import TeacherRequest
from labtax.teachers.transformers import TransformersTeacher

torch = pytest.importorskip("torch")


def _reqs(texts: list[str], **kw: object) -> list[TeacherRequest]:
    return [TeacherRequest(messages=(("system", "Be brief."), ("user", t)), seed=i, **kw)  # type: ignore[arg-type]
            for i, t in enumerate(texts)]


def test_tiny_model_batches_with_left_padding(one_thread: None) -> None:
    teacher = TransformersTeacher("tiny", batch_size=3, threads=1)
    assert teacher.tokenizer.padding_side == "left"
    texts = ["hi", "a much longer prompt with many more words in it than the first", "mid length prompt"] * 2
    requests = _reqs(texts, max_tokens=6, temperature=0.0)
    out = run(teacher.complete(requests))
    assert len(out) == 6 and all(r.ok for r in out)
    assert all(r.completion_tokens <= 6 and r.prompt_tokens > 0 for r in out)
    # Greedy and deterministic: the same prompt answers the same, wherever it sits in a batch.
    assert [r.text for r in out[:3]] == [r.text for r in out[3:]]
    assert out[1].prompt_tokens > out[0].prompt_tokens
    # A random tiny model rarely stops by itself: finish_reason says the answer was cut.
    assert {r.finish_reason for r in out} <= {"length", "stop"}
    again = run(teacher.complete(_reqs(texts[:3], max_tokens=6, temperature=0.9)))
    twice = run(teacher.complete(_reqs(texts[:3], max_tokens=6, temperature=0.9)))
    assert [r.text for r in again] == [r.text for r in twice]  # seeded sampling
    assert teacher.count_tokens("hello world") > 0


def test_the_kv_budget_narrows_the_batch_and_changes_no_text(one_thread: None) -> None:
    """A KV budget too small for two rows' caches decodes one row at a time: same texts, greedy and
    sampled (each row's own generator), as the full-width batch."""
    wide = TransformersTeacher("tiny", batch_size=8, threads=1)
    narrow = TransformersTeacher("tiny", batch_size=8, threads=1, kv_budget_gib=1e-6)
    texts = ["hi", "a much longer prompt with many more words in it than the first", "mid length prompt"]
    requests = _reqs(texts, max_tokens=6, temperature=0.0) + _reqs(texts, max_tokens=5, temperature=0.9)
    assert [r.text for r in run(narrow.complete(requests))] == [r.text for r in run(wide.complete(requests))]
    assert narrow.kv_budget < narrow.kv_token_bytes * 10  # not even one row of ten tokens fits: width 1


def test_concurrent_calls_share_batches(one_thread: None) -> None:
    """A wrapper sending one request per call (like the run ledger) still gets one continuous batch."""
    import asyncio

    teacher = TransformersTeacher("tiny", batch_size=8, threads=1)
    requests = _reqs([f"prompt number {i}" for i in range(6)], max_tokens=4, temperature=0.0)

    async def one_per_call() -> list[list[object]]:
        return await asyncio.gather(*(teacher.complete([r]) for r in requests))

    split = run(one_per_call())
    generation = teacher.stats()["time"]["generation"]
    assert (generation["batches"], generation["rows"]) == (1, 6)  # one decode run served all six calls
    whole = run(teacher.complete(requests))
    assert [s[0].text for s in split] == [r.text for r in whole]  # type: ignore[attr-defined]


def test_any_local_model_directory(tmp_path: Path, one_thread: None) -> None:
    from labtax import models
    from labtax.teachers import make_teacher

    models.build_tiny_model(seed=3).save_pretrained(tmp_path / "m")
    models.load_tokenizer("tiny").save_pretrained(tmp_path / "m")
    teacher = make_teacher("embedded", model=str(tmp_path / "m"), batch_size=2)
    assert teacher.model_id == str((tmp_path / "m").resolve())
    out = run(teacher.complete(_reqs(["one", "two", "three"], max_tokens=3, temperature=0.0)))
    assert [r.ok for r in out] == [True, True, True] and all(r.completion_tokens <= 3 for r in out)


def test_stop_strings_cut_the_answer(one_thread: None) -> None:
    teacher = TransformersTeacher("tiny", batch_size=2, threads=1)
    (free,) = run(teacher.complete(_reqs(["x"], max_tokens=8, temperature=0.0)))
    if len(free.text) > 2:
        stop = free.text[1:3]
        (cut,) = run(teacher.complete(_reqs(["x"], max_tokens=8, temperature=0.0, stop=(stop,))))
        assert stop not in cut.text and cut.finish_reason == "stop"


@pytest.mark.slow
def test_embedded_teacher_end_to_end(tmp_path: Path, one_thread: None) -> None:
    """SmolLM2-135M-Instruct really generates a small leaf: every stage runs on real model text."""
    teacher = TransformersTeacher("embedded-small", batch_size=8, threads=1)
    # A 135M model writes usable questions and answers but rarely a readable grade: unreadable
    # verdicts pass here (counted), as `labtax generate --keep-unreadable-verdicts` does.
    settings = GenerationSettings(samples_per_leaf=2, questions_per_request=3, overgenerate=1.0,
                                  icl_examples=2, max_tokens=96, unreadable_verdicts="keep")
    leaf = freeform_leaf()
    (outcome,) = run(generate_leaves([leaf], teacher, settings, taxonomy_root=tmp_path, output=tmp_path / "out"))
    assert outcome.error is None and outcome.result is not None
    st = outcome.result.stats
    assert st["teacher"].startswith("HuggingFaceTB/SmolLM2-135M-Instruct")
    assert st["failed_requests"] == 0 and st["completion_tokens"] > 0
    assert st["stages"]["questions"]["requests"] == 5  # one per seed example: every seed is shown
    assert st["generated"] >= 1  # the model's numbered list was parsed into questions
    assert st["stages"]["judge_question"]["requests"] == st["generated"] - st["dropped"].get("duplicate_exact", 0) \
        - st["dropped"].get("duplicate_near", 0)
    assert st["kept"] + sum(st["dropped"].values()) == st["generated"]
    rows = [json.loads(line) for line in output_path(tmp_path / "out", leaf).read_text().splitlines()]
    assert 1 <= len(rows) == st["kept"] <= 2  # seeded sampling: the same on every run on this machine
    for row in rows:  # whatever survived the model's own judging is a complete sample
        assert row["messages"][1]["content"] and row["unmask"] is False
        score = row["metadata"]["scores"]["score"]
        assert score is None or score >= 2
