"""The web app (issue 17): ``arc2avatar serve`` and ``build_app`` for embedding (docs/serve.md).

>>> from arc2avatar.app import AppConfig, build_app
>>> build_app(AppConfig(work_dir="work/")).launch()          # http://127.0.0.1:7860

Layers: ``config`` (settings), ``process`` (which process this is), ``uploads`` (checks by decoding,
safe names), ``guard`` (the upload route's limits), ``jobs`` (the SQLite queue), ``workers`` (worker
processes, one per GPU), ``service`` (what the page and API do), ``ui`` (the Gradio Blocks).
Gradio is imported only by ``ui`` (the ``app`` extra).

A script may build and launch the app at module level (docs/serve.md): inside the app's worker
processes, which re-run that script, ``build_app`` returns an ``InertApp`` that starts nothing.
"""

from __future__ import annotations

from typing import Any

from arc2avatar.app.config import AppConfig, UploadLimits
from arc2avatar.app.process import InertApp, in_worker_process


def build_app(config: AppConfig | None = None, **settings: Any) -> Any:
    """The app as a ``gradio.Blocks`` (see ``arc2avatar.app.ui.build_app``); an ``InertApp``
    inside a worker process (neither Gradio nor the queue is touched there)."""
    if in_worker_process():
        return InertApp()
    from arc2avatar.app.ui import build_app as _build  # lazy: the app extra (gradio)

    return _build(config, **settings)


__all__ = ["AppConfig", "UploadLimits", "build_app"]
