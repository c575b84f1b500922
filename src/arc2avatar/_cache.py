"""Where arc2avatar keeps what it can recompute: ``$ARC2AVATAR_CACHE`` or ``~/.cache/arc2avatar``.

Light on purpose (no torch import): the CLI reads it before any command runs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import MutableMapping

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
