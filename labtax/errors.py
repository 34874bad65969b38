"""The few domain exceptions labtax raises, and the one place that maps them to exit codes.

Exit codes (documented in the README; every script, workflow and test uses these names or the table):
  0    success (or warnings only)
  1    findings at error level / a gate failed (validate, eval)
  2    usage or I/O error: bad option, unknown git ref, unreadable input, not a repository, a disk
       that is full or read-only, a checkpoint that cannot be loaded
  3    a bug: an exception labtax did not expect; its traceback is written to a log file whose path
       is printed (pre-commit's convention, so that CI tells "labtax broke" from "the data is bad")
  4    another run holds the output directory's lock
  5    a teacher (generation backend) failed beyond its retries (3 until the bug code took it)
  130  interrupted (Ctrl-C)
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_USAGE = 2
EXIT_BUG = 3
EXIT_LOCKED = 4
EXIT_TEACHER = 5
EXIT_INTERRUPTED = 130


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
    """The teacher could not be reached or kept failing after retries (exit 5)."""

    exit_code = EXIT_TEACHER


class InputOutputError(LabtaxError):
    """A file labtax must read or write failed: a full or read-only disk, a truncated or foreign
    checkpoint (exit 2). The message names the path and the cause."""


class LockedError(LabtaxError):
    """Another labtax run holds the output directory (exit 4)."""

    exit_code = EXIT_LOCKED


class RankFailed(LabtaxError):
    """A torchrun worker failed: the launcher exits with that rank's own labtax exit code (a usage
    error found in a rank is still 2), or the bug code for a rank that crashed or was killed."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def exit_code_for(exc: BaseException) -> int:
    """Map an exception raised by the core to the process exit code: a domain error its own code,
    any OSError (a missing file, a full or read-only disk, a dead device) the I/O code, anything
    else the bug code."""
    if isinstance(exc, LabtaxError):
        return exc.exit_code
    if isinstance(exc, OSError):
        return EXIT_USAGE
    return EXIT_BUG


def describe_os_error(exc: OSError, path: object = None) -> str:
    """One line naming the path and the cause of an OSError ("PATH: No space left on device"),
    also for a write whose exception carries no file name."""
    where = exc.filename if exc.filename is not None else path
    cause = exc.strerror or str(exc) or type(exc).__name__
    return f"{where}: {cause}" if where is not None else cause
