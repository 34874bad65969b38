"""Standard output whose reader went away (`labtax validate --list-rules | head -1`) ends quietly.

Python ignores SIGPIPE, so a write to a closed pipe raises BrokenPipeError: printed as "[Errno 32]
Broken pipe" with exit 1 it fails a CI step under `set -o pipefail` although nothing went wrong.
Restoring SIGPIPE's default would kill the process with status 141, which fails it too. Instead
the first broken write points the file descriptor at /dev/null (so that later writes and the
interpreter's last flush succeed) and the command carries on to its own exit code: validate
still exits 1 when it found errors, whoever stopped reading.
"""

from __future__ import annotations

import io
import os
import sys
from typing import Any


class _Gone:
    """Shared by a text stream and its binary buffer: once the reader left, both are silent."""

    def __init__(self) -> None:
        self.gone = False


class QuietPipe:
    """A proxy of a text or binary output stream that swallows BrokenPipeError."""

    def __init__(self, stream: Any, gone: _Gone | None = None) -> None:
        self._stream = stream
        self._gone = gone or _Gone()
        self._buffer: QuietPipe | None = None

    def _drop(self) -> None:
        self._gone.gone = True
        try:
            fd = self._stream.fileno()
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, fd)
            os.close(devnull)
        except (OSError, ValueError, io.UnsupportedOperation, AttributeError):
            pass

    def write(self, data: Any) -> int:
        if self._gone.gone:
            return len(data)
        try:
            return int(self._stream.write(data) or 0)
        except BrokenPipeError:
            self._drop()
            return len(data)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._drop()
            try:  # what the buffer still held goes to /dev/null now
                self._stream.flush()
            except OSError:
                pass

    @property
    def buffer(self) -> QuietPipe:
        if self._buffer is None:
            self._buffer = QuietPipe(self._stream.buffer, self._gone)
        return self._buffer

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def quiet_closed_stdout() -> None:
    """Wrap sys.stdout (once) so that a reader closing the pipe ends labtax's output quietly."""
    if sys.stdout is not None and not isinstance(sys.stdout, QuietPipe):
        sys.stdout = QuietPipe(sys.stdout)  # type: ignore[assignment]
