"""Errors meant for people.

Every failure a user can cause (a bad photo, a missing weight file, a corrupt FLAME pickle) is an
``Arc2AvatarError``: the CLI prints its message on one line and exits with its ``exit_code``,
without a traceback. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class Arc2AvatarError(Exception):
    """A problem with the user's input or environment, explained in the message."""

    exit_code: int = 1


class InputError(Arc2AvatarError):
    """A file or argument given by the user is missing, unreadable or malformed."""

    exit_code = 1


class MissingWeightsError(Arc2AvatarError):
    """Model weights are absent or incomplete; the message names the files and how to fetch them."""

    exit_code = 2


class MissingDependencyError(Arc2AvatarError):
    """An optional package is needed for this feature; the message says what to install."""

    exit_code = 3
