"""The page: Gradio Blocks with Create, Expressions, Drive (when ``arc2avatar.drive`` exists) and
Gallery tabs, and the named API endpoints (docs/serve.md).

Gradio's components do the work (uploads, webcam, 3D view, files, timer); written here is only
the wiring to ``service.Service``: ``Actions`` (what each button and endpoint does), one function
per tab that lays it out and connects its events (``create_tab``, ``expressions_tab``,
``drive_tab``, ``gallery_tab``), ``api_endpoints``, and ``build_app``, which composes them
(a new tab is one more function of the same shape: ``(actions, page) -> None``).

API endpoints (``gradio_client``; every input and output is named):

* ``/create_avatar(photos, preset, seed) -> job_id``
* ``/job_status(job_id) -> (status JSON, avatar.ply | None, download | None)`` (download: the
  folder's zip of a create / express job, the MP4 of an animate / drive job)
* ``/cancel_job(job_id) -> status JSON``
* ``/express(job_id, expression "smile=0.8,jaw_open=0.3") -> (frontal PNG, express zip)``
* ``/animate(job_id, animation, orbit) -> MP4``
* ``/drive(job_id, video) -> MP4`` and ``/submit_drive(job_id, video) -> drive job id`` (returns at
  once; follow and cancel it with ``/job_status`` and ``/cancel_job``); only when the drive module
  is installed.

``AvatarApp.launch`` applies the upload guard (``app.guard``) and Gradio's per-file limit, so an
embedding script's plain ``launch()`` gets them too.
"""

from __future__ import annotations

import html
import importlib.util
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence
from urllib.parse import quote

import gradio as gr

from arc2avatar.app.config import AppConfig
from arc2avatar.app.guard import UploadGuard, discard_uploads, upload_folder
from arc2avatar.app.process import InertApp, in_worker_process
from arc2avatar.app.live import live_tab
from arc2avatar.app.service import MODES, PRESETS, Service, describe, make_zip
from arc2avatar.app.workers import OUT_NAME
from arc2avatar.errors import InputError

log = logging.getLogger(__name__)

TITLE = "arc2avatar"
EXPRESSION_NAMES: tuple[str, ...] = ("jaw_open", "smile", "blink_left", "blink_right", "brow_raise", "frown",
                                     "pucker", "cheek_puff", "mouth_left", "mouth_right")  # the built-in template's
RENDER_WAIT_S = 600.0  # how long an express / animate / drive call waits for its job
DRIVE_POLL_S = 1.0  # the Drive tab's status refresh while its job runs, seconds
EXPRESS_SIZE = 512
ANIMATE_SIZE = 384
VIEWER_HEIGHT_PX = 520
SERVER_DEFAULT = "server default"  # the preset choice that takes the server's default


def drive_available() -> bool:
    """True when the drive module is installed (the Drive tab and endpoint appear then)."""
    return importlib.util.find_spec("arc2avatar.drive") is not None


def _owner(request: Any) -> str:
    if request is None:
        return "local"
    return getattr(request, "username", None) or getattr(request, "session_hash", None) or "anonymous"


def file_url(path: Path) -> str:
    """The URL Gradio serves a work-folder file at (the work folder's ``jobs/`` is a static path)."""
    return "/gradio_api/file=" + quote(str(path))


def viewer_html(path: Path | None) -> str:
    if path is None:
        return ""
    src = html.escape(file_url(path), quote=True)
    return (f'<iframe id="avatar-viewer" src="{src}" title="3D viewer" '
            f'style="width:100%;height:{VIEWER_HEIGHT_PX}px;border:0;border-radius:8px"></iframe>'
            f'<p><a href="{src}" target="_blank" rel="noopener">open the viewer in its own tab</a></p>')


def _notice(service: Service) -> tuple[str, str]:
    """(the headline, the details) of the weights notice."""
    if service.weights.ok:
        return "The Arc2Face weights are installed: **Arc2Face** mode makes avatars with the paper's prior.", ""
    lines = service.weights.message.splitlines()
    headline = ("**The Arc2Face weights are not installed on this server**, so only the offline demo modes run "
                "(the oracle prior: a known head stands in for the diffusion model, and the whole flow works). "
                f"To make real avatars, run `{service.weights.fetch_command}` on the server and restart it.")
    return headline, "```text\n" + "\n".join(lines) + "\n```"


def _fail(error: InputError) -> Exception:
    return gr.Error(str(error), print_exception=False)


class AvatarApp(gr.Blocks):
    """The app's ``gradio.Blocks``: ``launch()`` adds the upload guard and the largest field limit
    (``UploadLimits``) unless the caller sets them, and does nothing inside a worker process."""

    def __init__(self, service: Service, **kwargs: Any) -> None:
        limits = service.config.limits
        age = int(limits.cache_age_s)
        super().__init__(delete_cache=(max(1, age // 4), age), **kwargs)
        self.arc2avatar_service = service

    def launch(self, *args: Any, **kwargs: Any) -> Any:
        if in_worker_process():
            return None
        service = self.arc2avatar_service
        limits = service.config.limits
        largest = limits.largest_upload(lora=service.weights.ok)
        kwargs.setdefault("max_file_size", largest)
        app_kwargs = dict(kwargs.pop("app_kwargs", None) or {})
        guard = Middleware(UploadGuard, limit_bytes=largest, folder=upload_folder(), folder_bytes=limits.cache_bytes)
        app_kwargs["middleware"] = [*app_kwargs.get("middleware", []), guard]
        return super().launch(*args, app_kwargs=app_kwargs, **kwargs)


def Middleware(cls: Any, **options: Any) -> Any:  # noqa: N802 - Starlette's name, imported late
    from starlette.middleware import Middleware as StarletteMiddleware

    return StarletteMiddleware(cls, **options)


# =========================================================================== what the page does
class Actions:
    """The handlers of the page's events and of the named API, over one ``Service``."""

    def __init__(self, service: Service) -> None:
        self.service = service

    # ------------------------------------------------------------------ create, follow, cancel
    def ui_create(self, photos, webcam, mode, preset, seed, lora, request: gr.Request):
        uploads = [*(photos or []), *([webcam] if webcam else [])]
        try:
            job = self.service.submit_create(uploads, _owner(request), mode=mode, preset=preset, seed=seed, lora=lora)
        except InputError as error:  # the refused files are deleted, and the page lets go of them
            discard_uploads([*uploads, lora])
            gr.Warning(str(error))
            return gr.skip(), f"**Refused:** {error}  \nThe uploads were removed; upload again.", gr.skip(), None, None, None
        return job.id, f"queued (job `{job.id}`)", gr.Timer(active=True), gr.skip(), gr.skip(), gr.skip()

    def ui_refresh(self, job_id, shown, request: gr.Request):
        shown = dict(shown or {})
        nothing = (gr.skip(),) * 6
        if not job_id:
            return ("", *nothing, shown, gr.Timer(active=False))
        owner = _owner(request)
        try:
            status = self.service.status(job_id, owner)
            files = self.service.files(job_id, owner)
        except InputError as error:
            return (f"**{error}**", *nothing, shown, gr.Timer(active=False))
        line = f"{describe(status)}  \njob `{status['job_id']}`"
        preview: Any = gr.skip()
        results: tuple[Any, ...] = (gr.skip(),) * 4
        if shown.get("job") != job_id:  # another job than the one shown: clear the previous one's results
            shown = {"job": job_id}
            preview, results = None, ("", None, None, None)
        if "preview" in files and files["preview"].stat().st_mtime != shown.get("preview"):
            shown["preview"] = files["preview"].stat().st_mtime
            preview = _read_png(files["preview"])
        if status["state"] == "done" and shown.get("done") != job_id:
            shown["done"] = job_id
            model = files.get("view", files.get("ply"))
            results = (viewer_html(files.get("viewer")), str(model) if model else None,
                       [str(files[k]) for k in ("ply", "zip", "turntable") if k in files],
                       str(files["turntable"]) if "turntable" in files else None)
            if "preview" not in files and "views" in files:
                preview = str(files["views"])
        elif status["state"] != "done" and shown.get("done") == job_id:
            shown.pop("done")
        final = status["state"] in ("done", "failed", "cancelled")
        return (line, preview, *results, job_id, shown, gr.Timer(active=not final))

    def ui_open(self, job_id):
        return (job_id or "").strip(), {}, gr.Timer(active=True)

    def ui_cancel(self, job_id, request: gr.Request):
        try:
            return describe(self.service.cancel(job_id, _owner(request)))
        except InputError as error:
            return f"**{error}**"

    def ui_load(self, request: gr.Request):
        job_id = (request.query_params.get("job") or "").strip() if request else ""
        return (job_id, {}, gr.Timer(active=True)) if job_id else (gr.skip(), gr.skip(), gr.skip())

    # ------------------------------------------------------------------ gallery
    def ui_gallery(self, request: gr.Request):
        items = self.service.gallery(_owner(request))
        pictures = [(str(thumb), label) for _, label, thumb in items if thumb is not None]
        return pictures, [job_id for job_id, _, thumb in items if thumb is not None]

    def ui_pick(self, ids, evt: gr.SelectData):
        job_id = ids[evt.index] if ids and evt.index is not None and evt.index < len(ids) else ""
        return job_id, {}, gr.Timer(active=True), gr.Tabs(selected="create")

    # ------------------------------------------------------------------ expressions, animate, drive
    def run_express(self, job_id: str, text: str, weights: dict[str, float], owner: str) -> tuple[Path, Path]:
        from arc2avatar.avatar.rig import parse_assignments  # lazy: torch; the app's web process stays torch-free

        expression = dict(weights)
        if text and text.strip():
            expression.update(parse_assignments(text.strip(), "expression"))
        job = self.service.submit_render("express", job_id, owner, {"expression": expression, "size": EXPRESS_SIZE})
        job = self.service.wait(job.id, RENDER_WAIT_S)
        job_dir = self.service.store.job_dir(job.id)
        return job_dir / "express.png", make_zip_of(job_dir)

    def ui_express(self, job_id, *weights, request: gr.Request):
        try:
            image, archive = self.run_express(job_id, "", {n: float(w) for n, w in zip(EXPRESSION_NAMES, weights) if w},
                                              _owner(request))
        except InputError as error:
            gr.Warning(str(error))
            return None, None, f"**{error}**"
        return str(image), str(archive), "done"

    def run_animate(self, job_id: str, preset: str, orbit: Any, owner: str) -> Path:
        job = self.service.submit_render("animate", job_id, owner,
                                         {"preset": preset, "orbit": bool(orbit), "size": ANIMATE_SIZE})
        return self.service.store.job_dir(self.service.wait(job.id, RENDER_WAIT_S).id) / "animate.mp4"

    def ui_animate(self, job_id, preset, orbit, request: gr.Request):
        try:
            return str(self.run_animate(job_id, preset, orbit, _owner(request))), "done"
        except InputError as error:
            gr.Warning(str(error))
            return None, f"**{error}**"

    def submit_drive(self, job_id: str, video: str | None, owner: str) -> str:
        try:
            return self.service.submit_render("drive", job_id, owner, {}, video=video).id
        except InputError:
            discard_uploads([video])
            raise

    def ui_drive(self, job_id, video, request: gr.Request) -> Iterator[tuple[Any, str]]:
        """Queue the drive job, show its id at once (it can be followed or cancelled), then its video."""
        owner = _owner(request)
        try:
            drive_job = self.submit_drive(job_id, video, owner)
        except InputError as error:
            gr.Warning(str(error))
            yield None, f"**{error}**"
            return
        shown = ""
        while True:
            status = self.service.status(drive_job, owner)
            line = f"{describe(status)}  \ndrive job `{drive_job}` (Cancel job cancels it when its id is in the box)"
            if status["state"] in ("done", "failed", "cancelled"):
                break
            if line != shown:
                shown = line
                yield gr.skip(), line
            time.sleep(DRIVE_POLL_S)
        video_out = self.service.files(drive_job, owner).get("drive")
        yield (str(video_out) if video_out else None), line

    # ------------------------------------------------------------------ the named API
    def api_create(self, photos, preset, seed, request: gr.Request):
        preset = None if preset in (None, "", SERVER_DEFAULT) else preset
        try:
            return self.service.submit_create(photos or [], _owner(request), preset=preset, seed=seed).id
        except InputError as error:
            discard_uploads(photos or [])
            raise _fail(error) from None

    async def api_status(self, job_id, request: gr.Request):  # async: ~3 ms of file reads, no thread hop
        owner = _owner(request)
        try:
            job = self.service.job(job_id, owner)
        except InputError as error:
            raise _fail(error) from None
        status, files = self.service.status(job, owner), self.service.files(job, owner)
        download = next((files[k] for k in ("zip", "drive", "animate") if k in files), None)
        return status, (str(files["ply"]) if "ply" in files else None), (str(download) if download else None)

    def api_cancel(self, job_id, request: gr.Request):
        try:
            return self.service.cancel(job_id, _owner(request))
        except InputError as error:
            raise _fail(error) from None

    def api_express(self, job_id, expression, request: gr.Request):
        try:
            image, archive = self.run_express(job_id, expression, {}, _owner(request))
        except InputError as error:
            raise _fail(error) from None
        return str(image), str(archive)

    def api_animate(self, job_id, animation, orbit, request: gr.Request):
        try:
            return str(self.run_animate(job_id, animation, orbit, _owner(request)))
        except InputError as error:
            raise _fail(error) from None

    def api_drive(self, job_id, video, request: gr.Request):
        owner = _owner(request)
        try:
            drive_job = self.submit_drive(job_id, video, owner)
            return str(self.service.store.job_dir(self.service.wait(drive_job, RENDER_WAIT_S).id) / "drive.mp4")
        except InputError as error:
            raise _fail(error) from None

    def api_submit_drive(self, job_id, video, request: gr.Request):
        try:
            return self.submit_drive(job_id, video, _owner(request))
        except InputError as error:
            raise _fail(error) from None


# =========================================================================== the page
@dataclass(frozen=True)
class Page:
    """What every tab shares: the service, the app (for ``load`` events), the job id box, what the
    Create tab shows, its refresh timer, the tabs."""

    service: Service
    app: Any
    job_box: Any
    shown: Any
    timer: Any
    tabs: Any


def header(service: Service) -> None:
    """Title, and the weights notice (with the missing files when there are no weights)."""
    gr.Markdown(f"# {TITLE}\nOne photo in, an expressive 3D Gaussian-splat head avatar out (Arc2Avatar, CVPR 2025).")
    headline, details = _notice(service)
    gr.Markdown(headline, elem_id="weights-notice")
    if details:
        with gr.Accordion("Which files are missing, and where to put them", open=False):
            gr.Markdown(details)


def create_tab(actions: Actions, page: Page) -> None:
    """Photos → a job; its live progress, preview, viewer, 3D view, turntable and downloads."""
    service = page.service
    modes = [(label, key) for key, label in MODES.items() if key != "arc2face" or service.weights.ok]
    with gr.Tab("Create", id="create"):
        with gr.Row():
            with gr.Column():
                photos = gr.File(label="Photos (1–4 of the same person)", file_count="multiple",
                                 file_types=["image"], elem_id="photos")
                webcam = gr.Image(label="…or a webcam snapshot", sources=["webcam"], type="filepath", elem_id="webcam")
                mode = gr.Radio(modes, value=service.default_mode(), label="Prior", elem_id="mode")
                with gr.Row():
                    preset = gr.Dropdown(list(PRESETS), value=service.default_preset(), label="Preset", elem_id="preset")
                    seed = gr.Number(0, precision=0, label="Seed", elem_id="seed")
                lora = gr.File(label="Multi-view LoRA (optional, .safetensors)", file_types=[".safetensors"],
                               visible=service.weights.ok)
                with gr.Row():
                    create_btn = gr.Button("Create avatar", variant="primary", elem_id="create")
                    open_btn = gr.Button("Open job", elem_id="open")
                    cancel_btn = gr.Button("Cancel job", variant="stop", elem_id="cancel")
            with gr.Column():
                status = gr.Markdown("Upload a photo and press **Create avatar**.", elem_id="status")
                preview = gr.Image(label="Preview (refreshed with each checkpoint)", type="numpy",
                                   interactive=False, elem_id="preview")
        viewer = gr.HTML(elem_id="viewer")
        with gr.Row():
            model3d = gr.Model3D(label="The avatar (Gradio's splat view of view.ply: turned and framed for it)",
                                 elem_id="model3d")
            turntable = gr.Video(label="Turntable", interactive=False, elem_id="turntable")
        downloads = gr.File(label="Downloads: avatar.ply, the folder as a zip, turntable.mp4",
                            file_count="multiple", interactive=False, elem_id="downloads")
    refreshed = [status, preview, viewer, model3d, downloads, turntable, page.job_box, page.shown, page.timer]
    create_btn.click(actions.ui_create, [photos, webcam, mode, preset, seed, lora],
                     [page.job_box, status, page.timer, photos, webcam, lora],
                     api_visibility="private").then(lambda: {}, None, page.shown, api_visibility="private")
    page.timer.tick(actions.ui_refresh, [page.job_box, page.shown], refreshed, api_visibility="private",
                    show_progress="hidden")
    open_btn.click(actions.ui_open, [page.job_box], [page.job_box, page.shown, page.timer], api_visibility="private")
    cancel_btn.click(actions.ui_cancel, [page.job_box], [status], api_visibility="private")
    page.app.load(actions.ui_load, None, [page.job_box, page.shown, page.timer], api_visibility="private")


def expressions_tab(actions: Actions, page: Page) -> None:
    """Sliders → an express render (and its folder); an animation preset → a video."""
    from arc2avatar.animate.sequence import PRESET_NAMES  # lazy: torch; the app's web process stays torch-free

    with gr.Tab("Expressions", id="expressions"):
        gr.Markdown("Move the sliders and render the avatar of the job id above (pick one in the Gallery).")
        with gr.Row():
            with gr.Column():
                sliders = [gr.Slider(-1.0, 1.0, 0.0, step=0.05, label=name) for name in EXPRESSION_NAMES]
                express_btn = gr.Button("Render expression", variant="primary", elem_id="express")
            with gr.Column():
                express_image = gr.Image(label="Expression", interactive=False, elem_id="express-image")
                express_zip = gr.File(label="The expressive avatar folder (zip)", interactive=False)
                express_status = gr.Markdown()
        with gr.Row():
            anim_preset = gr.Dropdown(list(PRESET_NAMES), value=PRESET_NAMES[0], label="Animation")
            anim_orbit = gr.Checkbox(False, label="Orbit the camera")
            anim_btn = gr.Button("Animate", elem_id="animate")
        anim_video = gr.Video(label="Animation", interactive=False)
        anim_status = gr.Markdown()
    express_btn.click(actions.ui_express, [page.job_box, *sliders], [express_image, express_zip, express_status],
                      api_visibility="private")
    anim_btn.click(actions.ui_animate, [page.job_box, anim_preset, anim_orbit], [anim_video, anim_status],
                   api_visibility="private")


def drive_tab(actions: Actions, page: Page) -> None:
    """A face video → the driven avatar's video (the job id shows at once)."""
    limits = page.service.config.limits
    with gr.Tab("Drive", id="drive"):
        gr.Markdown(f"Upload or record a short video of a face (at most {limits.video_s:.0f} s); the avatar of the "
                    "job above follows it.")
        drive_video = gr.Video(label="Driving video", sources=["upload", "webcam"], elem_id="drive-video")
        drive_btn = gr.Button("Drive", variant="primary", elem_id="drive")
        drive_out = gr.Video(label="Driven avatar", interactive=False, elem_id="drive-out")
        drive_status = gr.Markdown(elem_id="drive-status")
    drive_btn.click(actions.ui_drive, [page.job_box, drive_video], [drive_out, drive_status], api_visibility="private")


def gallery_tab(actions: Actions, page: Page) -> None:
    """Every finished avatar this user may see; a click opens it in the Create tab."""
    with gr.Tab("Gallery", id="gallery"):
        refresh_btn = gr.Button("Refresh", elem_id="gallery-refresh")
        gallery = gr.Gallery(label="Finished avatars (click one to open it)", columns=3, elem_id="gallery",
                             allow_preview=False)
        gallery_ids = gr.State([])
    gr.on([page.app.load, refresh_btn.click, page.tabs.select], actions.ui_gallery, None, [gallery, gallery_ids],
          api_visibility="private")
    gallery.select(actions.ui_pick, [gallery_ids], [page.job_box, page.shown, page.timer, page.tabs],
                   api_visibility="private")


def api_endpoints(actions: Actions, page: Page) -> None:
    """The named API (``gradio_client``): hidden components, each labelled, carry the values."""
    from arc2avatar.animate.sequence import PRESET_NAMES  # lazy: torch; the app's web process stays torch-free

    with gr.Row(visible=False):
        a_photos = gr.File(file_count="multiple", label="photos")
        a_preset = gr.Dropdown([SERVER_DEFAULT, *PRESETS], value=SERVER_DEFAULT, label="preset")
        a_seed = gr.Textbox("0", label="seed", info="a whole number")
        a_job = gr.Textbox(label="job_id")
        a_expression = gr.Textbox(label="expression", info='e.g. "smile=0.8,jaw_open=0.3"')
        a_animation = gr.Dropdown(list(PRESET_NAMES), value=PRESET_NAMES[0], label="animation")
        a_orbit = gr.Checkbox(label="orbit")
        a_video = gr.Video(label="video")
        a_status = gr.JSON(label="status")
        a_ply = gr.File(label="avatar_ply")
        a_download = gr.File(label="download")
        a_folder = gr.File(label="folder_zip")
        a_image = gr.Image(type="filepath", label="image")
        a_mp4 = gr.Video(label="mp4")
        a_drive_job = gr.Textbox(label="drive_job_id")
        a_button = gr.Button()
    a_button.click(actions.api_create, [a_photos, a_preset, a_seed], [a_job], api_name="create_avatar")
    a_button.click(actions.api_status, [a_job], [a_status, a_ply, a_download], api_name="job_status",
                   concurrency_limit=None, queue=False)
    a_button.click(actions.api_cancel, [a_job], [a_status], api_name="cancel_job")
    a_button.click(actions.api_express, [a_job, a_expression], [a_image, a_folder], api_name="express",
                   concurrency_limit=None)
    a_button.click(actions.api_animate, [a_job, a_animation, a_orbit], [a_mp4], api_name="animate",
                   concurrency_limit=None)
    if drive_available():
        a_button.click(actions.api_drive, [a_job, a_video], [a_mp4], api_name="drive", concurrency_limit=None)
        a_button.click(actions.api_submit_drive, [a_job, a_video], [a_drive_job], api_name="submit_drive")


TabBuilder = Callable[[Actions, Page], None]


def live_tab_of(actions: Actions, page: Page) -> None:
    """The Live tab (``app/live.py``): the job's avatar follows the visitor's camera in their browser."""
    live_tab(page.service, page.job_box, _owner, file_url)


def page_tabs() -> Sequence[TabBuilder]:
    """The tabs, in order (Drive and Live only when the drive module is installed)."""
    return [create_tab, expressions_tab, *([drive_tab, live_tab_of] if drive_available() else []), gallery_tab]


def build_app(config: AppConfig | None = None, service: Service | None = None, **settings: Any) -> Any:
    """The app as a ``gradio.Blocks`` (``AvatarApp``; call ``.launch()``); its ``Service`` is
    ``app.arc2avatar_service``. Inside one of the app's worker processes: an ``InertApp``.

    Args:
        config: the app's settings; or give ``AppConfig`` fields as keywords (``work_dir="work/"``).
        service: an existing ``Service`` (its workers already started); None makes one.
    """
    if in_worker_process():
        return InertApp()
    config = config or AppConfig(**settings)
    service = service or Service(config)
    gr.set_static_paths([str(service.store.work_dir / "jobs")])
    actions = Actions(service)
    with AvatarApp(service, title=TITLE) as app:
        header(service)
        job_box = gr.Textbox(label="Job id", elem_id="job-id", info="paste a job id and press Open to follow it")
        shown = gr.State({})
        timer = gr.Timer(config.refresh_s, active=False)
        with gr.Tabs() as tabs:
            page = Page(service, app, job_box, shown, timer, tabs)
            for tab in page_tabs():
                tab(actions, page)
        api_endpoints(actions, page)
    return app


def _read_png(path: Path) -> Any:
    import numpy as np
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def make_zip_of(job_dir: Path) -> Path:
    """The zip of a render job's output folder (an express job's new avatar)."""
    if (job_dir / OUT_NAME).is_dir():
        return make_zip(job_dir)
    raise InputError(f"no output folder in {job_dir.name}")


__all__ = ["Actions", "AvatarApp", "Page", "api_endpoints", "build_app", "create_tab", "drive_available",
           "drive_tab", "expressions_tab", "gallery_tab", "header", "page_tabs", "EXPRESSION_NAMES"]
