"""Errors meant for people.

Every failure a user can cause (a bad photo, a missing weight file, a corrupt FLAME pickle) is an
``Arc2AvatarError``: the CLI prints its message on one line and exits with its ``exit_code``,
without a traceback. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from typing import Iterable


class Arc2AvatarError(Exception):
    """A problem with the user's input or environment, explained in the message."""

    exit_code: int = 1


class InputError(Arc2AvatarError):
    """A file or argument given by the user is missing, unreadable or malformed."""

    exit_code = 1


class OutputError(Arc2AvatarError):
    """An output file cannot be written (no such folder, not permitted, disk full); the message
    names the file and the system's reason."""

    exit_code = 1


class MissingWeightsError(Arc2AvatarError):
    """Model weights are absent or incomplete; the message names the files and how to fetch them."""

    exit_code = 2


class MissingDependencyError(Arc2AvatarError):
    """An optional package is needed for this feature; the message says what to install."""

    exit_code = 3


def error_line(error: BaseException, limit: int = 160, last: bool = False) -> str:
    """One line of ``error``'s message for a one-line report: its first line (``last``: its last
    non-empty one, where tools such as ffmpeg put the cause), cut to ``limit`` characters; the
    exception's class name when the message is empty."""
    lines = [line for line in str(error).strip().splitlines() if line.strip()]
    line = (lines[-1] if last else lines[0]) if lines else type(error).__name__
    return line if len(line) <= limit else line[: limit - 1] + "…"



def short_list(names: Iterable[object], limit: int = 8, width: int = 40) -> str:
    """``"a, b, c … and 2990 more"``: at most ``limit`` items, each cut to ``width`` characters, so an
    error naming thousands of bad entries stays one short line."""
    items = list(names)
    shown = [str(item) if len(str(item)) <= width else str(item)[: width - 1] + "…" for item in items[:limit]]
    more = f" … and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(shown) + more
