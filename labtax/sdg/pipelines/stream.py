"""The per-leaf streaming machinery: each request of a leaf goes out as soon as what it depends on
exists, and the teacher is kept full while the leaf's own numbering stays that of a one-at-a-time run.

- `Window`: the leaf's requests that are ready, handed to `teacher.complete(...)` in slices of the
  teacher's `batch_size` (in process: a forward batch; a server: 1) while at most `limit` are in
  flight (the teacher's `concurrency`, at least one batch); a slice shorter than a batch goes out
  only when none of the leaf's requests is with the teacher. Every request still goes through
  `teacher.complete`, so the run ledger records and replays each one.
- `Turns`: items 0, 1, 2, ... pass a point in their order, whatever order their replies arrived in.
  Deduplication (which of two near-duplicates is kept) and a stage's request index (its seed) are
  decided in turn, so the same leaf and answers give the same requests and samples at any
  concurrency.
- `Flows`: the leaf's concurrent steps; the first error cancels the rest and is raised as it is.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from labtax.teachers.base import Teacher, TeacherRequest, TeacherResponse

T = TypeVar("T")


class Window:
    """A bounded in-flight window over one teacher (see the module docstring)."""

    def __init__(self, teacher: Teacher, *, limit: int, batch: int) -> None:
        self.teacher = teacher
        self.batch = max(1, batch)
        self.limit = max(self.batch, limit)
        self.in_flight = 0
        self.peak = 0  # the most requests this leaf had in flight at once (stats)
        self._pending: deque[tuple[TeacherRequest, asyncio.Future[TeacherResponse]]] = deque()
        self._dispatcher: asyncio.Task[None] | None = None
        self._sends: set[asyncio.Task[None]] = set()

    async def ask(self, request: TeacherRequest) -> TeacherResponse:
        future: asyncio.Future[TeacherResponse] = asyncio.get_running_loop().create_future()
        self._pending.append((request, future))
        self._kick()
        return await future

    def _kick(self) -> None:
        if self._pending and (self._dispatcher is None or self._dispatcher.done()):
            self._dispatcher = asyncio.get_running_loop().create_task(self._dispatch())

    async def _dispatch(self) -> None:
        # One loop turn first: the requests other steps make in this same turn join the slice.
        await asyncio.sleep(0)
        while self._pending and self.in_flight < self.limit:
            n = min(self.batch, self.limit - self.in_flight, len(self._pending))
            # A short slice only when nothing of this leaf is with the teacher: an in-process teacher
            # then gets whole batches (what is ready meanwhile forms the next) and never waits on us.
            if n < self.batch and self.in_flight:
                break
            part = [self._pending.popleft() for _ in range(n)]
            self.in_flight += n
            self.peak = max(self.peak, self.in_flight)
            task = asyncio.get_running_loop().create_task(self._send(part))
            self._sends.add(task)
            task.add_done_callback(self._sends.discard)

    async def _send(self, part: list[tuple[TeacherRequest, asyncio.Future[TeacherResponse]]]) -> None:
        try:
            responses = await self.teacher.complete([r for r, _ in part])
        except asyncio.CancelledError:
            for _, future in part:
                future.cancel()
            raise
        except Exception as exc:  # noqa: BLE001 - handed to the steps waiting on these requests
            for _, future in part:
                if not future.done():
                    future.set_exception(exc)
        else:
            for (_, future), response in zip(part, responses):
                if not future.done():
                    future.set_result(response)
        finally:
            self.in_flight -= len(part)
            self._kick()

    def close(self) -> None:
        """Cancel what is still in flight (a leaf that failed); nothing is left waiting."""
        for task in list(self._sends):
            task.cancel()
        if self._dispatcher is not None:
            self._dispatcher.cancel()
        while self._pending:
            self._pending.popleft()[1].cancel()


class Turns:
    """Items 0, 1, 2, ... pass in order (see the module docstring). The body of a turn must not wait
    on the teacher: it holds every later item back."""

    def __init__(self) -> None:
        self._next = 0
        self._waiting: dict[int, asyncio.Future[None]] = {}
        self.numbered = 0  # indexes handed out by `number`

    @asynccontextmanager
    async def turn(self, item: int) -> AsyncIterator[None]:
        if item != self._next:
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiting[item] = future
            await future
        try:
            yield
        finally:
            self._next = item + 1
            following = self._waiting.pop(self._next, None)
            if following is not None and not following.done():
                following.set_result(None)

    async def number(self, item: int, alive: bool) -> int | None:
        """The item's index among the items still alive here (None for one that is not): every item
        must call this once, alive or not, or the items after it wait forever."""
        async with self.turn(item):
            if not alive:
                return None
            self.numbered += 1
            return self.numbered - 1


class Flows:
    """A leaf's concurrent steps (steps may start more). `settle()` waits until none is left."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self._error: BaseException | None = None

    def spawn(self, coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        error = task.exception()
        if error is not None and self._error is None:
            self._error = error
            self.cancel()

    def cancel(self) -> None:
        for task in list(self._tasks):
            task.cancel()

    async def settle(self) -> None:
        """Wait for every step, those started meanwhile too; raise the first error."""
        try:
            while self._tasks:
                await asyncio.wait(set(self._tasks))
        except asyncio.CancelledError:
            self.cancel()
            raise
        if self._error is not None:
            error, self._error = self._error, None
            raise error
