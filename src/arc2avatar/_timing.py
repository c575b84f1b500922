"""Per-stage timing of the optimisation loop without host–device synchronisation (issue 9).

``StageTimer.stage(name)`` brackets a block with two CUDA events on the current stream (the host
clock on a CPU); nothing waits for the GPU until ``collect()``, which synchronises once and sums
the milliseconds per stage. ``NULL_TIMER`` costs nothing and is the default everywhere, so the
loop times itself only when a caller (the benchmark harness) asks for it.

Written by hand: a thin wrapper over ``torch.cuda.Event``; no profiler gives per-stage sums over
hundreds of iterations without tracing every kernel.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any, ContextManager, Iterator, Protocol

import torch


class Timer(Protocol):
    """What the loop asks of a timer: ``stage(name)`` brackets a block (``StageTimer``, ``NULL_TIMER``)."""

    enabled: bool

    def stage(self, name: str) -> ContextManager[None]:
        ...


class StageTimer:
    """Accumulates time per named stage; event pairs are resolved lazily in ``collect``.

    Args:
        device: where the timed work runs; CUDA → events, otherwise ``time.perf_counter``.
    """

    enabled = True

    def __init__(self, device: torch.device | str) -> None:
        self.cuda = torch.device(device).type == "cuda"
        self._pending: list[tuple[str, Any, Any]] = []
        self._totals: dict[str, float] = {}
        self._counts: dict[str, int] = {}

    def _mark(self) -> Any:
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            return event
        return time.perf_counter()

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time the enclosed block as stage ``name`` (nested stages are counted in both)."""
        started = self._mark()
        try:
            yield
        finally:
            self._pending.append((name, started, self._mark()))

    def _resolve(self) -> None:
        if self.cuda and self._pending:
            torch.cuda.synchronize()
        for name, a, b in self._pending:
            ms = a.elapsed_time(b) if self.cuda else (b - a) * 1000.0
            self._totals[name] = self._totals.get(name, 0.0) + ms
            self._counts[name] = self._counts.get(name, 0) + 1
        self._pending.clear()

    def collect(self) -> dict[str, float]:
        """Milliseconds per stage summed since the last ``reset`` (synchronises once)."""
        self._resolve()
        return dict(self._totals)

    def counts(self) -> dict[str, int]:
        """How many times each stage ran since the last ``reset``."""
        self._resolve()
        return dict(self._counts)

    def reset(self) -> None:
        self._resolve()
        self._totals.clear()
        self._counts.clear()


class _NullTimer:
    """A timer that times nothing (the default)."""

    enabled = False

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:  # noqa: ARG002 - same signature as StageTimer
        yield

    def collect(self) -> dict[str, float]:
        return {}

    def counts(self) -> dict[str, int]:
        return {}

    def reset(self) -> None:
        pass


NULL_TIMER = _NullTimer()

__all__ = ["NULL_TIMER", "StageTimer", "Timer"]
