"""What a run does before its first iteration, reported as it goes (issue 26 item 11).

A fresh run prepares for minutes on a small machine (the template, then the mean-face and
mean-head fits of §3.4, unless the mean-face cache already holds them). ``PrepareReport`` says
each step on the log (the CLI prints it) and keeps ``OUT/prepare.json`` (``PREPARE_NAME``) up to
date: the step, iterations done and in all, seconds so far and an ETA, and whether a cache made
the step instant; the web app shows it while no iteration has run. The file is removed once the
optimisation starts (``finish``). Written by hand: the file (atomic JSON) and the throttle.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from arc2avatar._io import atomic_write_text

log = logging.getLogger(__name__)

PREPARE_NAME = "prepare.json"
WRITE_EVERY_S = 1.0  # the file is rewritten at most this often within one step, seconds


def read_prepare(out_dir: Path) -> dict[str, Any] | None:
    """The last preparation record of a run folder (None when there is none or it is unreadable)."""
    try:
        record = json.loads((Path(out_dir) / PREPARE_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and "step" in record else None


def describe_prepare(record: dict[str, Any]) -> str:
    """A preparation record as words: "mean-face fit 120/400 · ETA 40 s" or "mean-face fit: cached (instant)"."""
    step = str(record.get("step", "preparing"))
    if record.get("cached"):
        return f"{step}: cached (instant)"
    done, total = int(record.get("done") or 0), int(record.get("total") or 0)
    parts = [f"{step} {done}/{total}" if total else step]
    if record.get("eta_s") is not None:
        seconds = int(round(float(record["eta_s"])))
        parts.append(f"ETA {seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"ETA {seconds} s")
    return " · ".join(parts)


class PrepareReport:
    """Reports a run's preparation steps to the log and to ``out_dir/prepare.json`` (None: the log only)."""

    def __init__(self, out_dir: Path | None, every_s: float = WRITE_EVERY_S) -> None:
        self.path = None if out_dir is None else Path(out_dir) / PREPARE_NAME
        self.every_s = every_s
        self._step = ""
        self._step_started = self._written = 0.0

    def step(self, name: str, done: int = 0, total: int = 0, cached: bool = False) -> None:
        """``name`` has ``done`` of ``total`` iterations behind it (0, 0: a step without iterations)."""
        now = time.perf_counter()
        if name != self._step:
            self._step, self._step_started, self._written = name, now, 0.0
            if cached:
                log.info("preparing: %s: cached (instant)", name)
            else:
                log.info("preparing: %s%s", name, f" ({total} iterations)" if total else "")
        elif now - self._written < self.every_s and done < total:
            return
        record: dict[str, Any] = {"step": name, "done": done, "total": total, "cached": cached,
                                  "elapsed_s": round(now - self._step_started, 2)}
        if 0 < done < total:
            record["eta_s"] = round((now - self._step_started) / done * (total - done), 1)
        self._written = now
        if self.path is not None:
            try:
                atomic_write_text(self.path, json.dumps(record))
            except OSError as error:
                log.debug("cannot write %s (%s)", self.path, error)

    def finish(self) -> None:
        """The preparation is over: the record goes (the optimisation's own log takes over)."""
        if self.path is not None:
            self.path.unlink(missing_ok=True)


__all__ = ["PREPARE_NAME", "PrepareReport", "describe_prepare", "read_prepare"]
