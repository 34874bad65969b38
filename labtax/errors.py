"""The few domain exceptions labtax raises, and the one place that maps them to exit codes.

Exit codes (documented in the README):
  0  success (or warnings only)
  1  findings at error level / a gate failed (validate, eval)
  2  usage or I/O error: bad option, unknown git ref, unreadable input, not a repository
  3  a teacher (generation backend) failed beyond its retries
  4  another run holds the output directory's lock
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_USAGE = 2
EXIT_TEACHER = 3
EXIT_LOCKED = 4


class LabtaxError(Exception):
    """Base class: a user-facing error whose message is printed as one line, without a traceback."""

    exit_code: int = EXIT_USAGE

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} (hint: {self.hint})"


class UsageError(LabtaxError):
    """Bad options or input paths (exit 2)."""


class GitError(LabtaxError):
    """Not a repository, unknown ref, shallow history, empty repository (exit 2)."""


class ConfigError(LabtaxError):
    """A malformed .labtax.yaml, [tool.labtax] table or training config (exit 2)."""


class TeacherError(LabtaxError):
    """The teacher could not be reached or kept failing after retries (exit 3)."""

    exit_code = EXIT_TEACHER


class LockedError(LabtaxError):
    """Another labtax run holds the output directory (exit 4)."""

    exit_code = EXIT_LOCKED


def exit_code_for(exc: BaseException) -> int:
    """Map an exception raised by the core to the process exit code."""
    if isinstance(exc, LabtaxError):
        return exc.exit_code
    if isinstance(exc, (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)):
        return EXIT_USAGE
    raise exc
