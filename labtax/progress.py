"""How much labtax says on stderr, and progress for long steps: a bar on a terminal, lines in a log.

`--quiet` and `--verbose` (on every command) set the level: 0 quiet (errors and results only), 1
normal, 2 verbose. The level is kept in LABTAX_VERBOSITY too, so processes labtax starts (torchrun
workers) say as much as their parent.

`bar(total, desc, unit)` is the one progress helper every stage calls: on an interactive terminal a
tqdm bar with rate and ETA; when stderr is not a terminal (CI logs, files) or CI is set, a plain line
at most every `PLAIN_EVERY_S` seconds and at the end, so logs stay readable; nothing when quiet.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO

QUIET, NORMAL, VERBOSE = 0, 1, 2
ENV = "LABTAX_VERBOSITY"
PLAIN_EVERY_S = 10.0


def set_verbosity(level: int) -> None:
    os.environ[ENV] = str(max(QUIET, min(VERBOSE, level)))


def verbosity() -> int:
    try:
        return max(QUIET, min(VERBOSE, int(os.environ.get(ENV, NORMAL))))
    except ValueError:
        return NORMAL


def note(message: str, level: int = NORMAL, stream: TextIO | None = None) -> None:
    """One progress or status line on stderr, when the verbosity is at least `level`."""
    if verbosity() >= level:
        print(message, file=stream or sys.stderr, flush=True)


def interactive(stream: TextIO | None = None) -> bool:
    """A person watching a terminal (not a CI log, not a pipe)."""
    stream = stream or sys.stderr
    return bool(getattr(stream, "isatty", lambda: False)()) and not os.environ.get("CI")


def clock(seconds: float) -> str:
    """h:mm:ss"""
    return _clock(seconds)


def _clock(seconds: float) -> str:
    seconds = int(max(0, seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class PlainProgress:
    """Progress as occasional lines: `desc: 12/70 unit (17%), 3.1 unit/s, eta 0:00:19`."""

    def __init__(self, total: int | None, desc: str, unit: str, stream: TextIO, every: float = PLAIN_EVERY_S,
                 initial: int = 0) -> None:
        self.total, self.desc, self.unit, self.stream, self.every = total, desc, unit, stream, every
        self.n, self.start_n = initial, initial
        self.started = self.last = time.monotonic()
        self.closed = False

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        rate = (self.n - self.start_n) / elapsed
        text = f"{self.desc}: {self.n}" + (f"/{self.total}" if self.total else "") + f" {self.unit}"
        if self.total:
            text += f" ({100 * self.n // self.total}%)"
        text += f", {rate:.2f} {self.unit}/s"
        if self.total and rate > 0 and self.n < self.total:
            text += f", eta {_clock((self.total - self.n) / rate)}"
        return text + f", elapsed {_clock(elapsed)}"

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            print(self.line(), file=self.stream, flush=True)

    def write(self, message: str) -> None:
        print(message, file=self.stream, flush=True)

    def close(self) -> None:
        if not self.closed and self.n > self.start_n:
            print(self.line(), file=self.stream, flush=True)
        self.closed = True


class SilentProgress:
    def __init__(self) -> None:
        self.n = 0

    def update(self, n: int = 1) -> None:
        self.n += n

    def write(self, message: str) -> None:
        return None

    def close(self) -> None:
        return None


class TqdmProgress:
    def __init__(self, total: int | None, desc: str, unit: str, stream: TextIO, initial: int = 0) -> None:
        from tqdm import tqdm

        self.bar: Any = tqdm(total=total, desc=desc, unit=unit, file=stream, initial=initial, dynamic_ncols=True,
                             leave=True)
        self.n = initial

    def update(self, n: int = 1) -> None:
        self.n += n
        self.bar.update(n)

    def write(self, message: str) -> None:
        self.bar.write(message)  # above the bar, which is redrawn below it

    def close(self) -> None:
        self.bar.close()


Progress = PlainProgress | SilentProgress | TqdmProgress


def make_bar(total: int | None, desc: str, unit: str = "it", stream: TextIO | None = None,
             initial: int = 0) -> Progress:
    """The progress object for this process's verbosity and stderr; see the module docstring."""
    stream = stream or sys.stderr
    if verbosity() == QUIET:
        return SilentProgress()
    if interactive(stream):
        try:
            return TqdmProgress(total, desc, unit, stream, initial)
        except ImportError:
            pass
    return PlainProgress(total, desc, unit, stream, initial=initial)


@contextmanager
def bar(total: int | None, desc: str, unit: str = "it", stream: TextIO | None = None,
        initial: int = 0) -> Iterator[Progress]:
    """`with bar(len(items), "eval", "batch") as p: ... p.update()` (closed on exit)."""
    progress = make_bar(total, desc, unit, stream, initial)
    try:
        yield progress
    finally:
        progress.close()


@contextmanager
def counting(total: int, desc: str, unit: str,
             emit: Callable[[str], None] | None) -> Iterator[Callable[[str], None] | None]:
    """For a loop that reports one line per finished item (`emit`): a callback that prints the line
    (above the bar on a terminal) and advances the bar. No `emit` (machine-readable output): None."""
    if emit is None:
        yield None
        return
    with bar(total, desc, unit) as progress:
        def tick(line: str) -> None:
            if isinstance(progress, TqdmProgress):
                progress.write(line)
            else:
                emit(line)
            progress.update()

        yield tick


class GenerationMeter:
    """Requests and tokens a teacher finished during one run, across every leaf, with a line at least
    every `every` seconds (a bar on a terminal) from a timer thread: generation in process runs for
    minutes between two finished leaves, and a log must still show it moving. The rate is measured
    since the start; the ETA is the planned requests left at that rate. The planned count is the
    plan's upper bound (a leaf's judges drop requests), so the ETA is one too."""

    def __init__(self, planned: int, desc: str = "teacher", stream: TextIO | None = None,
                 every: float = PLAIN_EVERY_S) -> None:
        import threading

        self.planned, self.desc, self.every = planned, desc, every
        self.stream = stream or sys.stderr
        self.requests = self.tokens = 0
        self.live = False  # an in-process teacher counts as it generates (count_generation)
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: Any = None
        self._bar: Any = None

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def add(self, requests: int, tokens: int) -> None:
        with self._lock:
            self.requests += requests
            self.tokens += tokens

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        with self._lock:
            requests, tokens = self.requests, self.tokens
        text = f"{self.desc}: {requests}/<={self.planned} requests, {tokens:,} tokens, {tokens / elapsed:.1f} tokens/s"
        if requests and self.planned > requests:
            text += f", eta <={_clock((self.planned - requests) * elapsed / requests)}"
        return text + f", elapsed {_clock(elapsed)}"

    def _run(self) -> None:
        while not self._stop.wait(self.every if self._bar is None else 1.0):
            self._show()

    def _show(self) -> None:
        if self._bar is not None:
            self._bar.n = min(self.requests, self._bar.total or self.requests)
            self._bar.set_postfix_str(f"{self.tokens:,} tokens, {self.tokens / max(time.monotonic() - self.started, 1e-9):.1f} tokens/s",
                                      refresh=True)
        else:
            print(self.line(), file=self.stream, flush=True)

    def start(self) -> GenerationMeter:
        import threading

        if verbosity() == QUIET:
            return self
        if interactive(self.stream):
            try:
                from tqdm import tqdm

                self._bar = tqdm(total=self.planned or None, desc=self.desc, unit="req", file=self.stream,
                                 dynamic_ncols=True, leave=True)
            except ImportError:
                self._bar = None
        self._thread = threading.Thread(target=self._run, name="labtax-progress", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            if self.requests:
                self._show()
            if self._bar is not None:
                self._bar.close()
        self._thread = None


_METER: GenerationMeter | None = None


def count_generation(requests: int, tokens: int) -> None:
    """An in-process teacher's progress (rows finished, tokens generated) into the running meter."""
    meter = _METER
    if meter is not None:
        meter.live = True
        meter.add(requests, tokens)


@contextmanager
def metering(planned: int, desc: str = "teacher") -> Iterator[GenerationMeter]:
    """The run's generation meter, started, and the one `count_generation` feeds while it is open."""
    global _METER
    meter = GenerationMeter(planned, desc).start()
    previous, _METER = _METER, meter
    try:
        yield meter
    finally:
        _METER = previous
        meter.stop()
