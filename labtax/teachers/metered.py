"""A teacher wrapper that counts finished requests and their tokens into the run's progress meter
(`labtax.progress.metering`), for teachers that do not count as they generate (a server: its
requests finish one by one). An in-process teacher counts its rows itself as they end, mid-call; the
wrapper then stays out of the way (the meter is `live`)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from labtax.compute import remember_rate
from labtax.progress import GenerationMeter, metering
from labtax.teachers.base import Teacher, TeacherRequest, TeacherResponse, WrapperBase


class MeteredTeacher(WrapperBase):
    def __init__(self, teacher: Teacher, meter: GenerationMeter) -> None:
        self.inner, self.meter = teacher, meter
        self.model_id = teacher.model_id

    @property
    def wrapped(self) -> Teacher:
        return self.inner

    @property
    def batch_size(self) -> int:
        return self.inner.batch_size

    async def complete(self, requests: Sequence[TeacherRequest]) -> list[TeacherResponse]:
        responses = await self.inner.complete(requests)
        if not self.meter.live:
            self.meter.add(len(responses), sum(r.completion_tokens for r in responses))
        return responses

    async def aclose(self) -> None:
        await self.inner.aclose()


@contextmanager
def metered(teacher: Teacher, planned: int, model_id: str | None, show: bool) -> Iterator[Teacher]:
    """`teacher`, counted into a progress meter for the run (`show`: progress lines wanted)."""
    if not show:
        yield teacher
        return
    with metering(planned) as meter:
        yield MeteredTeacher(teacher, meter)
    record_rate(meter, model_id)


# Requests a run must have sent before its seconds a request are kept for the dry run's estimate.
RATE_MIN_REQUESTS = 20


def record_rate(meter: GenerationMeter, model_id: str | None) -> None:
    """The seconds a request took in this run, kept for `model_id` on this machine (the dry run's
    time estimate, labtax.compute.estimate_seconds)."""
    if model_id and meter.requests >= RATE_MIN_REQUESTS:
        elapsed = max(meter.elapsed(), 1e-9)
        remember_rate(model_id, seconds_per_request=round(elapsed / meter.requests, 4))
