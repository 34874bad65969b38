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
