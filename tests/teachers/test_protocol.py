"""Every labtax teacher and wrapper answers the whole Teacher protocol itself (no attribute forwarding)."""

from __future__ import annotations

from pathlib import Path

from labtax.sdg.ledger import Ledger
from labtax.sdg.replay import LedgerTeacher
from labtax.teachers import TeacherSpec
from labtax.teachers.base import TeacherBase, estimate_tokens
from labtax.teachers.lazy import LazyTeacher


def test_openai_teacher_sizes_and_estimate(openai_server) -> None:  # type: ignore[no-untyped-def]
    teacher = TeacherSpec(teacher="openai", endpoints=(openai_server.base_url,), model="test-model",
                          concurrency=5).build()
    assert isinstance(teacher, TeacherBase)
    assert (teacher.batch_size, teacher.concurrency) == (1, 5)
    assert teacher.count_tokens("a b c d") == estimate_tokens("a b c d") == 6


def test_wrappers_answer_for_the_teacher_they_wrap(tmp_path: Path, openai_server) -> None:  # type: ignore[no-untyped-def]
    spec = TeacherSpec(teacher="openai", endpoints=(openai_server.base_url,), model="test-model", concurrency=3)
    lazy = spec.build_lazy()
    assert isinstance(lazy, LazyTeacher) and not lazy.built and lazy.model_id == "openai:test-model"
    assert not hasattr(LazyTeacher, "__getattr__") and not hasattr(LedgerTeacher, "__getattr__")
    with Ledger(tmp_path / "ledger.sqlite") as ledger:
        wrapped = LedgerTeacher(lazy, ledger, batch_size=lazy.batch_size)
        assert lazy.built  # the sizes are the built teacher's
        assert (wrapped.batch_size, wrapped.concurrency, wrapped.count_tokens("x y")) == (1, 3, 3)
