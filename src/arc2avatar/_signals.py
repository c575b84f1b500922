"""Signal handlers given back: a block that installs its own (``serve``'s stop event, PyTorch's
elastic launcher) leaves the caller's in place afterwards, so a later Ctrl-C in the same process
(a notebook, a long-lived service, a test worker) is a ``KeyboardInterrupt`` again."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterable, Iterator


@contextlib.contextmanager
def kept_signal_handlers(signals: Iterable[signal.Signals]) -> Iterator[None]:
    """Restore the handlers of ``signals`` on leaving the block (only the main thread may set them)."""
    previous = {sig: signal.getsignal(sig) for sig in signals}
    try:
        yield
    finally:
        if threading.current_thread() is threading.main_thread():
            for sig, handler in previous.items():
                if handler is not None:  # None: installed outside Python, nothing to restore
                    signal.signal(sig, handler)


__all__ = ["kept_signal_handlers"]
