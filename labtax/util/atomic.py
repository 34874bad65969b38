"""Atomic file writes: a temporary name in the same folder, fsync, rename over the target, fsync the
folder. A reader sees the old file or the whole new one, never a part, even after a crash."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

# mkstemp creates 0600 files; the outputs are ordinary files, so give them the umask's usual mode.
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def fsync_dir(path: Path) -> None:
    """Make a rename in `path` durable. Best effort where directories cannot be opened."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_chunks(path: Path, chunks: Iterable[bytes | memoryview], *, mode: int | None = None) -> None:
    """Write the pieces to `path` atomically (not joined in memory first). `mode`: the file's
    permission bits (default: what the umask gives an ordinary file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    import tempfile  # ~10 ms (shutil, random): paid by the commands that write, not every command line

    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), (0o666 & ~_UMASK) if mode is None else mode)
            fh.writelines(chunks)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError) and exc.filename is None:
            # A failed write() names no file: a full disk's error then says which one (one line, exit 2).
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
        raise
    fsync_dir(path.parent)


def atomic_write_bytes(path: Path, data: bytes, *, mode: int | None = None) -> None:
    atomic_write_chunks(path, [data], mode=mode)


def atomic_write_text(path: Path, text: str, *, mode: int | None = None) -> None:
    """UTF-8, newlines written as given (no platform translation)."""
    atomic_write_chunks(path, [text.encode("utf-8")], mode=mode)
