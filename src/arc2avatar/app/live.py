"""The app's Live tab: a finished avatar follows the visitor's face through their camera (docs/live.md).

The tab writes the live page of the job's avatar (``arc2avatar.drive.live.write_live_folder``)
into the job folder, once, and shows it in an iframe allowed to use the camera. Tracking and
fitting run in the visitor's browser: no camera frame is uploaded. The page needs a secure origin
for the camera (https, or the app opened at localhost); elsewhere it says so itself.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any, Callable

from arc2avatar.errors import Arc2AvatarError, InputError

LIVE_DIR = "live"  # in the job folder
LIVE_HEIGHT_PX = 560


def live_page(service: Any, job_id: str, owner: str) -> Path:
    """The live page of a finished job's avatar (written on first use); ``InputError`` otherwise."""
    from arc2avatar.drive.live import LIVE_PAGE_NAME, write_live_folder  # lazy: torch; the app's web process stays torch-free

    if not job_id:
        raise InputError("pick a finished avatar first (a job id above, or one from the Gallery)")
    files = service.files(job_id, owner)
    if "viewer" not in files:
        raise InputError(f"job {job_id} has no finished avatar yet")
    avatar_dir = files["viewer"].parent
    page = service.store.job_dir(job_id) / LIVE_DIR / LIVE_PAGE_NAME
    if not page.is_file():
        write_live_folder(avatar_dir, page.parent, weights_root=service.config.weights)
    return page


def live_html(page: Path, url_of: Callable[[Path], str]) -> str:
    """The iframe of a live page (``allow="camera"``: an iframe may not use the camera otherwise)."""
    src = html.escape(url_of(page), quote=True)
    return (f'<iframe id="live-viewer" src="{src}" title="Live avatar" allow="camera" '
            f'style="width:100%;height:{LIVE_HEIGHT_PX}px;border:0;border-radius:8px"></iframe>'
            f'<p><a href="{src}" target="_blank" rel="noopener">open the live page in its own tab</a></p>')


def live_tab(service: Any, job_box: Any, owner_of: Callable[[Any], str], url_of: Callable[[Path], str]) -> None:
    """Add the Live tab (inside ``gr.Tabs``) for the job id in ``job_box``; nothing without ``arc2avatar.drive``."""
    import importlib.util

    import gradio as gr

    if importlib.util.find_spec("arc2avatar.drive") is None:
        return

    with gr.Tab("Live", id="live"):
        gr.Markdown("Your camera drives the avatar of the job above, in your browser: press **Open live page**, "
                    "then **Camera** in the page. No camera frame leaves your browser. **Record** saves the "
                    "performance for `arc2avatar animate --sequence`.")
        open_btn = gr.Button("Open live page", variant="primary", elem_id="live-open")
        frame = gr.HTML(elem_id="live-frame")
        note = gr.Markdown(elem_id="live-note")

        def ui_live(job_id, request: gr.Request):
            try:
                page = live_page(service, job_id, owner_of(request))
            except Arc2AvatarError as error:
                return "", f"**{error}**"
            return live_html(page, url_of), ""

        open_btn.click(ui_live, [job_box], [frame, note], api_visibility="private")


__all__ = ["LIVE_DIR", "live_html", "live_page", "live_tab"]
