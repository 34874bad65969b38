"""A teacher built on first use, so that a diff-generate with nothing to generate never loads a model
(the embedded teacher takes seconds to load; torch alone takes seconds to import).

The content key needs the teacher's model id before anything is generated; `teacher_model_id` gives
it without building the teacher, by the same rules the backends use (`labtax.models.model_id` for
local models, `openai:<served name>`, `vllm:<name>`). Only an openai teacher without `--model` must
ask its server (GET /v1/models), and then it is built at once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from labtax import models
from labtax.teachers.base import Teacher, TeacherRequest, TeacherResponse, TeacherStats, WrapperBase


def teacher_model_id(kind: str, model: str | None) -> str | None:
    """The model id `make_teacher(kind, model=model)` would report, or None when only the teacher
    itself can tell (an openai server asked for its model)."""
    if kind in ("embedded", "transformers"):
        return models.model_id(model or models.EMBEDDED)
    if kind == "vllm":
        name = model or models.EMBEDDED
        return models.model_id(name) if name in models.NAMES else f"vllm:{name}"
    if kind == "openai" and model:
        return f"openai:{model}"
    return None


class LazyTeacher(WrapperBase):
    """The protocol, answered by the teacher `factory()` builds on first use (only `model_id` is
    known before)."""

    def __init__(self, factory: Callable[[], Teacher], model_id: str | None) -> None:
        self._factory = factory
        self._teacher: Teacher | None = None
        if model_id is None:
            model_id = self.teacher.model_id
        self.model_id: str = model_id

    @property
    def teacher(self) -> Teacher:
        if self._teacher is None:
            self._teacher = self._factory()
            if self.__dict__.get("model_id") not in (None, self._teacher.model_id):
                raise RuntimeError(f"teacher model id {self._teacher.model_id!r} != predicted {self.model_id!r}")
        return self._teacher

    @property
    def built(self) -> bool:
        return self._teacher is not None

    async def complete(self, requests: Sequence[TeacherRequest]) -> list[TeacherResponse]:
        return await self.teacher.complete(requests)

    async def aclose(self) -> None:
        if self._teacher is not None:
            await self._teacher.aclose()

    @property
    def wrapped(self) -> Teacher:
        return self.teacher

    @property
    def batch_size(self) -> int:
        return self.teacher.batch_size

    def stats(self) -> TeacherStats:
        """The built backend's own counts (openai: sent, retries, faults by reason); none when unbuilt."""
        return self._teacher.stats() if self._teacher is not None else TeacherStats()
