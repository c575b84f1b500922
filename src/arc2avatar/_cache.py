"""Where arc2avatar keeps what it can recompute: ``$ARC2AVATAR_CACHE`` or ``~/.cache/arc2avatar``.

Light on purpose (no torch import): the CLI reads it before any command runs.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Iterator, MutableMapping

log = logging.getLogger(__name__)

CACHE_ENV = "ARC2AVATAR_CACHE"
INDUCTOR_CACHE_ENV = "TORCHINDUCTOR_CACHE_DIR"


def cache_root(environ: MutableMapping[str, str] = os.environ) -> Path:
    """The cache folder: mean faces (``meanface/``), compiled GPU kernels (``inductor/``)."""
    return Path(environ.get(CACHE_ENV, Path.home() / ".cache" / "arc2avatar"))


def persist_compile_cache(environ: MutableMapping[str, str] = os.environ) -> Path:
    """Point PyTorch Inductor's kernel cache into ``cache_root()/inductor`` unless the user chose
    one (``TORCHINDUCTOR_CACHE_DIR``); returns the folder in use.

    Inductor's default lives under /tmp, which many systems empty at boot, and a cold compile of
    the fast path costs minutes against half a minute cached (docs/benchmarks.md). Only the CLI
    calls this (it owns its process); API users set ``TORCHINDUCTOR_CACHE_DIR`` themselves.
    """
    if INDUCTOR_CACHE_ENV not in environ:
        environ[INDUCTOR_CACHE_ENV] = str(cache_root(environ) / "inductor")
    return Path(environ[INDUCTOR_CACHE_ENV])


@contextlib.contextmanager
def entry_lock(entry: Path) -> Iterator[bool]:
    """Hold an exclusive, blocking lock on one cache entry (``ENTRY.lock`` beside it) for the block.

    Several processes share the cache (two ``demo`` runs, ``create-batch`` workers, web workers):
    the first computes an entry while the others wait, then they read it instead of computing it
    again. Entries themselves are written to a temporary name and renamed (``_io.atomic_path``),
    so a reader never sees half an entry even without the lock. Yields False (no lock, the
    caller just computes) when the cache folder cannot be written. Inductor's compile cache
    (``inductor/``) locks and renames its own entries.
    """
    import fcntl

    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        handle = open(entry.with_name(entry.name + ".lock"), "a+b")  # noqa: SIM115 — closed below
    except OSError as error:
        log.warning("cache folder %s is not writable (%s); computing without the cache", entry.parent, error.strerror)
        yield False
        return
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        yield True
    finally:
        handle.close()
