"""The page: Gradio Blocks with Create, Expressions, Drive (when ``arc2avatar.drive`` exists) and
Gallery tabs, and the named API endpoints (docs/serve.md).

Gradio's components do the work (uploads, webcam, 3D view, files, timer); written here is only
the wiring to ``service.Service``. API endpoints (``gradio_client``):

* ``/create_avatar(photos, preset, seed) -> job_id``
* ``/job_status(job_id) -> (status JSON, avatar.ply | None, avatar.zip | None)``
* ``/cancel_job(job_id) -> status JSON``
* ``/express(job_id, expression "smile=0.8,jaw_open=0.3") -> (frontal PNG, express zip)``
* ``/animate(job_id, preset, orbit) -> MP4``
* ``/drive(job_id, video) -> MP4`` (only when the drive module is installed)
"""

from __future__ import annotations

import html
import importlib.util
import logging
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import quote

import gradio as gr

from arc2avatar.app.config import AppConfig
from arc2avatar.app.live import live_tab
from arc2avatar.app.service import MODES, PRESETS, Service, describe, make_zip
from arc2avatar.app.workers import OUT_NAME
from arc2avatar.errors import InputError

log = logging.getLogger(__name__)

TITLE = "arc2avatar"
EXPRESSION_NAMES: tuple[str, ...] = ("jaw_open", "smile", "blink_left", "blink_right", "brow_raise", "frown",
                                     "pucker", "cheek_puff", "mouth_left", "mouth_right")  # the built-in template's
RENDER_WAIT_S = 600.0  # how long an express / animate / drive call waits for its job
EXPRESS_SIZE = 512
ANIMATE_SIZE = 384
VIEWER_HEIGHT_PX = 520


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


def build_app(config: AppConfig | None = None, service: Service | None = None, **settings: Any) -> Any:
    """The app as ``gradio.Blocks`` (call ``.launch()``); its ``Service`` is ``app.arc2avatar_service``.

    Args:
        config: the app's settings; or give ``AppConfig`` fields as keywords (``work_dir="work/"``).
        service: an existing ``Service`` (its workers already started); None makes one.
    """
    config = config or AppConfig(**settings)
    service = service or Service(config)
    gr.set_static_paths([str(service.store.work_dir / "jobs")])

    def fail(error: InputError) -> Exception:
        return gr.Error(str(error), print_exception=False)

    # ------------------------------------------------------------------ handlers
    def ui_create(photos, webcam, mode, preset, seed, lora, request: gr.Request):
        uploads = [*(photos or []), *([webcam] if webcam else [])]
        try:
            job = service.submit_create(uploads, _owner(request), mode=mode, preset=preset, seed=seed, lora=lora)
        except InputError as error:
            gr.Warning(str(error))
            return gr.skip(), f"**Refused:** {error}", gr.skip()
        return job.id, f"queued (job `{job.id}`)", gr.Timer(active=True)

    def ui_refresh(job_id, shown, request: gr.Request):
        shown = dict(shown or {})
        nothing = (gr.skip(),) * 6
        if not job_id:
            return ("", *nothing, shown, gr.Timer(active=False))
        owner = _owner(request)
        try:
            status = service.status(job_id, owner)
            files = service.files(job_id, owner)
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
            results = (viewer_html(files.get("viewer")), str(files["ply"]) if "ply" in files else None,
                       [str(files[k]) for k in ("ply", "zip", "turntable") if k in files],
                       str(files["turntable"]) if "turntable" in files else None)
            if "preview" not in files and "views" in files:
                preview = str(files["views"])
        elif status["state"] != "done" and shown.get("done") == job_id:
            shown.pop("done")
        final = status["state"] in ("done", "failed", "cancelled")
        return (line, preview, *results, job_id, shown, gr.Timer(active=not final))

    def ui_open(job_id):
        return (job_id or "").strip(), {}, gr.Timer(active=True)

    def ui_cancel(job_id, request: gr.Request):
        try:
            return describe(service.cancel(job_id, _owner(request)))
        except InputError as error:
            return f"**{error}**"

    def ui_load(request: gr.Request):
        job_id = (request.query_params.get("job") or "").strip() if request else ""
        return (job_id, {}, gr.Timer(active=True)) if job_id else (gr.skip(), gr.skip(), gr.skip())

    def ui_gallery(request: gr.Request):
        items = service.gallery(_owner(request))
        pictures = [(str(thumb), label) for _, label, thumb in items if thumb is not None]
        return pictures, [job_id for job_id, _, thumb in items if thumb is not None]

    def ui_pick(ids, evt: gr.SelectData):
        job_id = ids[evt.index] if ids and evt.index is not None and evt.index < len(ids) else ""
        return job_id, {}, gr.Timer(active=True), gr.Tabs(selected="create")

    def run_express(job_id, text, weights, request):
        from arc2avatar.avatar.rig import parse_assignments

        owner = _owner(request)
        expression = dict(weights)
        if text and text.strip():
            expression.update(parse_assignments(text.strip(), "expression"))
        job = service.submit_render("express", job_id, owner, {"expression": expression, "size": EXPRESS_SIZE})
        job = service.wait(job.id, RENDER_WAIT_S)
        job_dir = service.store.job_dir(job.id)
        return job_dir / "express.png", make_zip_of(job_dir)

    def ui_express(job_id, *weights, request: gr.Request):
        try:
            image, archive = run_express(job_id, "", {n: float(w) for n, w in zip(EXPRESSION_NAMES, weights) if w},
                                         request)
        except InputError as error:
            gr.Warning(str(error))
            return None, None, f"**{error}**"
        return str(image), str(archive), "done"

    def run_animate(job_id, preset, orbit, request):
        job = service.submit_render("animate", job_id, _owner(request),
                                    {"preset": preset, "orbit": bool(orbit), "size": ANIMATE_SIZE})
        return service.store.job_dir(service.wait(job.id, RENDER_WAIT_S).id) / "animate.mp4"

    def ui_animate(job_id, preset, orbit, request: gr.Request):
        try:
            return str(run_animate(job_id, preset, orbit, request)), "done"
        except InputError as error:
            gr.Warning(str(error))
            return None, f"**{error}**"

    def run_drive(job_id, video, request):
        job = service.submit_render("drive", job_id, _owner(request), {}, video=video)
        return service.store.job_dir(service.wait(job.id, RENDER_WAIT_S).id) / "drive.mp4"

    def ui_drive(job_id, video, request: gr.Request):
        try:
            return str(run_drive(job_id, video, request)), "done"
        except InputError as error:
            gr.Warning(str(error))
            return None, f"**{error}**"

    # ------------------------------------------------------------------ API-only handlers
    def api_create(photos, preset, seed, request: gr.Request):
        try:
            return service.submit_create(photos or [], _owner(request), preset=preset or None, seed=seed).id
        except InputError as error:
            raise fail(error) from None

    async def api_status(job_id, request: gr.Request):  # async: ~3 ms of file reads, no thread hop
        owner = _owner(request)
        try:
            job = service.job(job_id, owner)
        except InputError as error:
            raise fail(error) from None
        status, files = service.status(job, owner), service.files(job, owner)
        return status, (str(files["ply"]) if "ply" in files else None), (str(files["zip"]) if "zip" in files else None)

    def api_cancel(job_id, request: gr.Request):
        try:
            return service.cancel(job_id, _owner(request))
        except InputError as error:
            raise fail(error) from None

    def api_express(job_id, expression, request: gr.Request):
        try:
            image, archive = run_express(job_id, expression, {}, request)
        except InputError as error:
            raise fail(error) from None
        return str(image), str(archive)

    def api_animate(job_id, preset, orbit, request: gr.Request):
        try:
            return str(run_animate(job_id, preset, orbit, request))
        except InputError as error:
            raise fail(error) from None

    def api_drive(job_id, video, request: gr.Request):
        try:
            return str(run_drive(job_id, video, request))
        except InputError as error:
            raise fail(error) from None

    # ------------------------------------------------------------------ layout
    from arc2avatar.animate.sequence import PRESET_NAMES

    modes = [(label, key) for key, label in MODES.items() if key != "arc2face" or service.weights.ok]
    with gr.Blocks(title=TITLE) as app:
        gr.Markdown(f"# {TITLE}\nOne photo in, an expressive 3D Gaussian-splat head avatar out "
                    "(Arc2Avatar, CVPR 2025).")
        headline, details = _notice(service)
        gr.Markdown(headline, elem_id="weights-notice")
        if details:
            with gr.Accordion("Which files are missing, and where to put them", open=False):
                gr.Markdown(details)
        job_box = gr.Textbox(label="Job id", elem_id="job-id", info="paste a job id and press Open to follow it")
        shown = gr.State({})
        timer = gr.Timer(config.refresh_s, active=False)
        with gr.Tabs() as tabs:
            with gr.Tab("Create", id="create"):
                with gr.Row():
                    with gr.Column():
                        photos = gr.File(label="Photos (1–4 of the same person)", file_count="multiple",
                                         file_types=["image"], elem_id="photos")
                        webcam = gr.Image(label="…or a webcam snapshot", sources=["webcam"], type="filepath",
                                          elem_id="webcam")
                        mode = gr.Radio(modes, value=service.default_mode(), label="Prior", elem_id="mode")
                        with gr.Row():
                            preset = gr.Dropdown(list(PRESETS), value=service.default_preset(), label="Preset",
                                                 elem_id="preset")
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
                    model3d = gr.Model3D(label="avatar.ply (Gradio's splat view)", elem_id="model3d")
                    turntable = gr.Video(label="Turntable", interactive=False, elem_id="turntable")
                downloads = gr.File(label="Downloads: avatar.ply, the folder as a zip, turntable.mp4",
                                    file_count="multiple", interactive=False, elem_id="downloads")
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
            if drive_available():
                with gr.Tab("Drive", id="drive"):
                    gr.Markdown("Upload or record a short video of a face; the avatar of the job above follows it.")
                    drive_video = gr.Video(label="Driving video", sources=["upload", "webcam"])
                    drive_btn = gr.Button("Drive", variant="primary")
                    drive_out = gr.Video(label="Driven avatar", interactive=False)
                    drive_status = gr.Markdown()
                    drive_btn.click(ui_drive, [job_box, drive_video], [drive_out, drive_status], api_visibility="private")
            live_tab(service, job_box, _owner, file_url)  # the Live tab (app/live.py), when drive is installed
            with gr.Tab("Gallery", id="gallery"):
                refresh_btn = gr.Button("Refresh", elem_id="gallery-refresh")
                gallery = gr.Gallery(label="Finished avatars (click one to open it)", columns=3, elem_id="gallery",
                                     allow_preview=False)
                gallery_ids = gr.State([])

        refreshed = [status, preview, viewer, model3d, downloads, turntable, job_box, shown, timer]
        create_btn.click(ui_create, [photos, webcam, mode, preset, seed, lora], [job_box, status, timer],
                         api_visibility="private").then(lambda: {}, None, shown, api_visibility="private")
        timer.tick(ui_refresh, [job_box, shown], refreshed, api_visibility="private", show_progress="hidden")
        open_btn.click(ui_open, [job_box], [job_box, shown, timer], api_visibility="private")
        cancel_btn.click(ui_cancel, [job_box], [status], api_visibility="private")
        app.load(ui_load, None, [job_box, shown, timer], api_visibility="private")
        app.load(ui_gallery, None, [gallery, gallery_ids], api_visibility="private")
        refresh_btn.click(ui_gallery, None, [gallery, gallery_ids], api_visibility="private")
        tabs.select(ui_gallery, None, [gallery, gallery_ids], api_visibility="private")
        gallery.select(ui_pick, [gallery_ids], [job_box, shown, timer, tabs], api_visibility="private")
        express_btn.click(ui_express, [job_box, *sliders], [express_image, express_zip, express_status],
                          api_visibility="private")
        anim_btn.click(ui_animate, [job_box, anim_preset, anim_orbit], [anim_video, anim_status],
                       api_visibility="private")

        # the named API (gradio_client); hidden components carry the values
        with gr.Row(visible=False):
            a_photos = gr.File(file_count="multiple")
            a_preset = gr.Textbox()
            a_seed = gr.Number(precision=0)
            a_job = gr.Textbox()
            a_text = gr.Textbox()
            a_orbit = gr.Checkbox()
            a_video = gr.Video()
            a_status = gr.JSON()
            a_ply = gr.File()
            a_zip = gr.File()
            a_image = gr.Image(type="filepath")
            a_mp4 = gr.Video()
            a_button = gr.Button()
        a_button.click(api_create, [a_photos, a_preset, a_seed], [a_job], api_name="create_avatar")
        a_button.click(api_status, [a_job], [a_status, a_ply, a_zip], api_name="job_status",
                       concurrency_limit=None, queue=False)
        a_button.click(api_cancel, [a_job], [a_status], api_name="cancel_job")
        a_button.click(api_express, [a_job, a_text], [a_image, a_zip], api_name="express", concurrency_limit=None)
        a_button.click(api_animate, [a_job, a_text, a_orbit], [a_mp4], api_name="animate", concurrency_limit=None)
        if drive_available():
            a_button.click(api_drive, [a_job, a_video], [a_mp4], api_name="drive", concurrency_limit=None)
    app.arc2avatar_service = service
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


__all__ = ["build_app", "drive_available", "EXPRESSION_NAMES", "shutil"]
