"""What every fuzz test asserts about a reader (issue 19): it either reads the file or raises ONE
``Arc2AvatarError`` whose message is one line naming the file; never another exception (a
traceback through the CLI), and never code from the file."""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from hypothesis import HealthCheck, settings

from arc2avatar.errors import Arc2AvatarError

# Small and deterministic: the whole fuzz suite stays within CI's 2-minute budget on 2 cores.
FUZZ = settings(max_examples=25, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])
# For readers whose every example costs ~0.1 s or more (a whole FLAME model, a checkpoint).
FUZZ_FEW = settings(FUZZ, max_examples=8)


def assert_read_or_refused(reader: Callable[[Path], Any], path: Path, *, names: str | None = None) -> Any:
    """``reader(path)``; an ``Arc2AvatarError`` must be one line naming ``names`` (default the file's
    name) and is returned (not raised) so the caller can inspect it; anything else fails the test."""
    try:
        return reader(path)
    except Arc2AvatarError as error:
        message = str(error)
        assert "\n" not in message.strip(), message
        assert (names or path.name) in message, message
        return error


def assert_refused(reader: Callable[[Path], Any], path: Path, *, names: str | None = None, match: str = "") -> str:
    """``reader(path)`` must raise the one-line ``Arc2AvatarError`` (``match`` in its message)."""
    result = assert_read_or_refused(reader, path, names=names)
    assert isinstance(result, Arc2AvatarError), f"{path} was accepted: {result!r}"
    assert match.lower() in str(result).lower(), str(result)
    return str(result)


@contextmanager
def scratch() -> Iterator[Path]:
    """A fresh folder per hypothesis example (pytest's tmp_path is per test, not per example)."""
    with tempfile.TemporaryDirectory(prefix="a2a-fuzz-") as name:
        yield Path(name)


def cli(argv: list[str], capsys: Any) -> tuple[int, str]:
    """Run the CLI in-process; returns (exit code, stderr) and checks: no traceback, one line."""
    from arc2avatar.cli.main import main

    code = main(argv)
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    if code != 0:
        assert err.startswith("arc2avatar: error:") and len(err.strip().splitlines()) == 1, err
    return code, err


def tree(folder: Path) -> dict[str, int]:
    """Every path under ``folder`` with its size (to prove nothing was written or left behind)."""
    return {os.path.relpath(p, folder): (p.stat().st_size if p.is_file() else -1)
            for p in sorted(folder.rglob("*"))}
