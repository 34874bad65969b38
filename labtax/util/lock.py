"""The one directory lock: `<dir>/.lock` held with fcntl.flock for as long as a run works there.

The kernel releases it when the process ends, even on SIGKILL, so a killed run never leaves a stale
lock. The holder writes its pid into the file, for the message another run prints.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from labtax.errors import LockedError

LOCK_FILE = ".lock"


@contextmanager
def directory_lock(directory: Path, *, wait: float = 0.0,
                   busy: Callable[[str], LockedError] | None = None) -> Iterator[None]:
    """Hold `directory/.lock`; when another process holds it past `wait` seconds, raise
    `busy(holder pid)` (default: a LockedError naming the directory), exit code 4."""
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "?"
                    raise (busy or _default_busy(directory))(holder) from None
                time.sleep(0.1)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _default_busy(directory: Path) -> Callable[[str], LockedError]:
    return lambda pid: LockedError(f"{directory} is in use by another labtax run (pid {pid})")
