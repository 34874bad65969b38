"""The transformers teacher: the tiny model for batching mechanics. The real embedded-small end to end
(every stage on real model text) is tests/sdg/test_embedded_verdicts.py's."""

from __future__ import annotations

from pathlib import Path

import pytest
from sdgleaves import run

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
    generation = teacher.stats().counts["time"]["generation"]
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
