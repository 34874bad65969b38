"""Keeping the teacher's `--concurrency` requests in flight across leaves (issue 23 item 6).

A leaf streams its requests (`pipelines/stream.py`), but it is narrow at its start (stage 1 asks a
few requests) and at its end (its last scores trickle in), and most leaves are small. A fixed number
of leaves at a time (4 before) left a server fleet that wants hundreds of requests mostly idle: at
`--concurrency 1024` against a 1 s server the run kept a mean of 130 in flight.

`LeafGate` admits another leaf whenever fewer than `target` requests are in flight (counted by
`InFlight`, the wrapper every leaf's requests go through on their way to the teacher; replayed ones
never reach it), and never more than `ceiling` leaves at once: a leaf holds its seeds, documents and
samples while it runs, so memory is bounded by `ceiling` leaves whatever the taxonomy's size.

The ceiling is `LEAVES_PER_SLOT` leaves per request slot: a running leaf spends part of its time
between requests (parsing replies, deduplicating, storing), and small leaves move through their
stages in step, so one leaf per slot left the fleet a quarter idle (300 leaves of 7 requests at
`--concurrency 16` against a 0.5 s server: a mean of 12.0 in flight with one leaf per slot, 15.0
with four).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from typing import Any

from labtax.teachers.base import Teacher, TeacherRequest, TeacherResponse, WrapperBase

# Loop turns a woken waiter lets pass before it judges the room: a reply that just came back lets its
# leaf send the requests it unlocked, and a leaf just admitted sends its first ones.
SETTLE_TURNS = 3
LEAVES_PER_SLOT = 4  # the most leaves running at once, per request the teacher takes in flight
# Requests handed to the teacher (in flight or queued for a slot) below which another leaf starts, in
# multiples of its concurrency. One wave was not enough: small leaves reach their stages together,
# their requests are served in order, and they finish together, so the queue that looked full drains
# at once and the leaves started then have nothing in flight yet. A second wave queued bridges that.
QUEUED_WAVES = 2


class InFlight(WrapperBase):
    """The teacher, counting the requests handed to it and not answered yet (`count`)."""

    def __init__(self, inner: Teacher) -> None:
        self.inner = inner
        self.model_id: str = inner.model_id
        self.batch_size: int = inner.batch_size
        self.count = 0
        self.peak = 0
        self.answered = False  # a reply came back ok: the teacher is up (until then no extra leaf starts)
        self.listeners: list[Any] = []  # called when the count falls (room for more work)

    @property
    def wrapped(self) -> Teacher:
        return self.inner

    async def complete(self, requests: Sequence[TeacherRequest]) -> list[TeacherResponse]:
        self.count += len(requests)
        self.peak = max(self.peak, self.count)
        try:
            responses = await self.inner.complete(requests)
            self.answered = self.answered or any(r.ok for r in responses)
            return responses
        finally:
            self.count -= len(requests)
            for listener in self.listeners:
                listener()

    async def aclose(self) -> None:
        await self.inner.aclose()


class LeafGate:
    """Admission of leaves (see the module docstring): at least `floor` leaves may always run; more,
    once the teacher has answered, while fewer than `target` requests are in flight, up to `ceiling`."""

    def __init__(self, in_flight: InFlight, *, target: int, floor: int, ceiling: int) -> None:
        self.in_flight = in_flight
        self.target = max(1, target)
        self.floor = max(1, floor)
        self.ceiling = max(self.floor, ceiling)
        self.active = 0
        self.peak = 0  # the most leaves that ran at once (stats)
        self._waiters: deque[asyncio.Future[None]] = deque()
        in_flight.listeners.append(self._poke)

    def _room(self) -> bool:
        # Beyond the floor only once the teacher has answered: a dead endpoint then costs the floor's
        # leaves their retries, not a fleet's worth of leaves.
        return self.active < self.floor or (self.in_flight.answered and self.active < self.ceiling
                                            and self.in_flight.count < self.target)

    def _poke(self) -> None:
        """Wake the longest-waiting leaf to judge the room (one at a time: each admission changes it)."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def __aenter__(self) -> None:
        loop = asyncio.get_running_loop()
        woken = False
        while not self._room():
            waiter: asyncio.Future[None] = loop.create_future()
            if woken:
                self._waiters.appendleft(waiter)  # woken but no room after all: still first in line
            else:
                self._waiters.append(waiter)
            await waiter
            woken = True
            for _ in range(SETTLE_TURNS):
                await asyncio.sleep(0)
        self.active += 1
        self.peak = max(self.peak, self.active)
        loop.call_soon(self._poke)  # perhaps room for one more after this one sent its first requests

    async def __aexit__(self, *exc: object) -> None:
        self.active -= 1
        self._poke()
