"""Progress bars for long commands (render, animate, evaluate), on stderr through tqdm.

``enabled``: True always shows the bar, False never, None (the default of the API functions)
shows it only when stderr is a terminal (tqdm's own rule), so logs and pipes stay clean.
"""

from __future__ import annotations

import sys
from typing import Any, Iterable, Iterator, TypeVar

T = TypeVar("T")


def progress_bar(total: int | None, desc: str, enabled: bool | None = None, unit: str = "it") -> Any:
    """A tqdm bar on stderr (use as a context manager; ``update(n)``, ``set_postfix_str(text)``)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True,
                disable=None if enabled is None else not enabled)


def track(items: Iterable[T], total: int | None, desc: str, enabled: bool | None = None, unit: str = "it") -> Iterator[T]:
    """``items`` one by one, advancing a bar (closed at the end, on error too)."""
    with progress_bar(total, desc, enabled, unit) as bar:
        for item in items:
            yield item
            bar.update(1)


__all__ = ["progress_bar", "track"]
