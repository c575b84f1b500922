"""Claims about the web app's hardening (issue 26 items 3, 8, 14) that need no server: a drive job has
its own worker and a length cap, the Drive tab shows its job id at once, worker errors lose their
server paths, a cancelled job is logged as cancelled, and ``serve`` prints our flag, not Gradio's
``share=True`` advice."""

from __future__ import annotations

import argparse
import json
import logging
from concurrent.futures import Future
from pathlib import Path

import numpy as np
import pytest

from arc2avatar.app import AppConfig
from arc2avatar.app.config import UploadLimits
from arc2avatar.app.jobs import JobStore, new_job_id
from arc2avatar.app.uploads import save_video
from arc2avatar.app.workers import Dispatcher, Task, public_message
from arc2avatar.errors import InputError


def _video(path: Path, seconds: float, fps: int = 4) -> Path:
    import imageio.v2 as imageio

    frames = [np.full((32, 32, 3), 40 * (k % 6), np.uint8) for k in range(int(seconds * fps))]
    imageio.mimwrite(path, frames, fps=fps, macro_block_size=1)
    return path


def _done_avatar(store: JobStore) -> str:
    job_id = new_job_id()
    (store.job_dir(job_id) / "out").mkdir(parents=True)
    store.add("create", "local", {"mode": "demo", "preset": "cpu-smoke"}, job_id)
    store.claim(["create"], "w")
    store.finish(job_id, "done")
    return job_id


# ======================================================================= item 3
def test_an_expression_never_waits_behind_a_drive_and_a_drive_is_capped(tmp_path, monkeypatch):
    store = JobStore(tmp_path)
    dispatcher = Dispatcher(store, lambda job: None, gpus=0, cpu_workers=1)
    try:
        lanes = {slot.name: slot.kinds for slot in dispatcher.slots}
    finally:
        for slot in dispatcher.slots:
            slot.worker.pool.shutdown(wait=False)
    express_lane = next(kinds for kinds in lanes.values() if "express" in kinds)
    assert "drive" not in express_lane and "animate" in express_lane
    assert any(kinds == ("drive",) for kinds in lanes.values())
    drive = store.add("drive", "a", {})
    express = store.add("express", "a", {})
    assert store.claim(express_lane, "render").id == express.id  # queued after the drive, started first
    assert store.claim(("drive",), "drive").id == drive.id

    # an upload longer than the limit is refused; one whose length is unknown is cut at it by the job
    long = _video(tmp_path / "long.mp4", seconds=3.0)
    with pytest.raises(InputError, match="3 s long; the limit is 2 s"):
        save_video(long, tmp_path / "inputs", UploadLimits(video_s=2.0))
    assert not (tmp_path / "inputs").exists()
    assert save_video(long, tmp_path / "inputs", UploadLimits(video_s=5.0)).name == "drive.mp4"

    import arc2avatar.drive as drive_module
    from arc2avatar.app import workers

    seen = {}
    monkeypatch.setattr(drive_module, "drive", lambda avatar, video, out, **options: seen.update(options))
    task = Task("x" * 32, "drive", str(tmp_path), {"avatar_dir": "a", "video": "drive.mp4"}, video_s=7.5)
    workers._run_drive(task, tmp_path)
    assert seen["end"] == 7.5


def test_the_drive_tab_shows_its_job_id_at_once(tmp_path):
    pytest.importorskip("gradio")
    from arc2avatar.app.service import Service
    from arc2avatar.app.ui import Actions

    service = Service(AppConfig(work_dir=tmp_path / "work"), start_workers=False)
    avatar = _done_avatar(service.store)
    updates = Actions(service).ui_drive(avatar, str(_video(tmp_path / "face.mp4", seconds=1.0)), None)
    _, line = next(updates)  # before the job runs: nothing is running it here
    (drive,) = [j for j in service.store.list(kind="drive")]
    assert drive.state == "queued" and f"drive job `{drive.id}`" in line and line.startswith("queued")
    assert service.cancel(drive.id, "local")["state"] == "cancelled"
    video, line = next(updates)
    assert video is None and line.startswith("cancelled")


# ======================================================================= item 8
def test_worker_errors_reach_clients_without_server_paths(tmp_path):
    job_dir = tmp_path / "work" / "jobs" / ("a" * 32)
    text = f"no face was found in {job_dir}/inputs/photo_1.png (see /opt/models/detector.dat)"
    assert public_message(text, job_dir) == "no face was found in inputs/photo_1.png (see detector.dat)"
    assert public_message("InputError: 3 < 4", job_dir) == "InputError: 3 < 4"


# ======================================================================= item 14
def test_a_cancelled_job_is_logged_as_cancelled_not_failed(tmp_path, caplog):
    store = JobStore(tmp_path)
    dispatcher = Dispatcher(store, lambda job: None, gpus=0, cpu_workers=1)
    job = store.add("create", "a", {})
    slot = dispatcher.slots[0]
    slot.job = store.claim(slot.kinds, slot.name)
    store.cancel(job.id)
    slot.future = Future()
    slot.future.set_exception(KeyboardInterrupt("interrupted"))  # what the trainer's stop looks like here
    with caplog.at_level(logging.INFO, logger="arc2avatar.app.workers"):
        dispatcher._record(slot)
    for other in dispatcher.slots:
        other.worker.pool.shutdown(wait=False)
    assert store.get(job.id).state == "cancelled"
    assert f"job {job.id}: cancelled" in caplog.text and "failed" not in caplog.text


def test_serve_names_its_own_share_flag_not_gradios(tmp_path, monkeypatch, capsys):
    pytest.importorskip("gradio")
    from arc2avatar.app import service as service_module
    from arc2avatar.app import ui
    from arc2avatar.cli import serve

    launched = {}

    class FakeApp:
        server_port, share_url = 7860, None

        def queue(self, **_):
            return self

        def launch(self, **options):
            launched.update(options)

        def close(self):
            pass

    class Stopped:
        def wait(self):
            return True

        def set(self):
            pass

    class FakeService:
        def __init__(self, config):
            pass

        def close(self):
            pass

    monkeypatch.setattr(ui, "build_app", lambda config, service: FakeApp())
    monkeypatch.setattr(service_module, "Service", FakeService)
    monkeypatch.setattr(serve.threading, "Event", Stopped)
    monkeypatch.setattr(serve.signal, "signal", lambda *_: None)
    parser = argparse.ArgumentParser()
    serve.register(parser.add_subparsers())
    args = parser.parse_args(["serve", "--work", str(tmp_path / "work")])
    assert serve._run(args) == 0
    printed = capsys.readouterr().out
    assert launched["quiet"] is True and "share=True" not in printed and "--share" in printed


# ======================================================================= item 11
def test_the_preparation_reports_its_steps_to_the_log_and_the_app(tmp_path, monkeypatch, caplog):
    from arc2avatar.app.service import Service
    from arc2avatar.avatar.template import build_head
    from arc2avatar.pipeline.meanface import fit_mean_face_for_run
    from arc2avatar.pipeline.presets import resolve_config
    from arc2avatar.pipeline.preparing import PREPARE_NAME, PrepareReport

    monkeypatch.setenv("ARC2AVATAR_CACHE", str(tmp_path / "cache"))
    config = resolve_config("cpu-smoke", None, ["meanface.iterations=4", "meanface.head_iterations=3",
                                                "meanface.resolution=16", "template.face_levels=0"])
    setup = build_head(config.template)
    out = tmp_path / "out"
    out.mkdir()
    written: list[dict] = []

    class Recorded(PrepareReport):
        def step(self, name, done=0, total=0, cached=False):
            super().step(name, done, total, cached)
            written.append(json.loads((out / PREPARE_NAME).read_text()))

    with caplog.at_level(logging.INFO, logger="arc2avatar.pipeline.preparing"):
        fit_mean_face_for_run(setup, config, report=Recorded(out, every_s=0.0))
        fit_mean_face_for_run(setup, config, report=Recorded(out, every_s=0.0))  # the cache answers
    face = [(r["done"], r["total"]) for r in written if r["step"] == "mean-face fit" and not r["cached"] and r["done"]]
    head = [(r["done"], r["total"]) for r in written if r["step"] == "mean-head fit" and r["done"]]
    assert face == [(k, 4) for k in range(1, 5)] and head == [(k, 3) for k in range(1, 4)]
    assert written[-1]["cached"] is True
    assert "preparing: mean-face fit (4 iterations)" in caplog.text and "cached (instant)" in caplog.text

    # the app shows the record of a running job that has not reached its first iteration
    service = Service(AppConfig(work_dir=tmp_path / "work"), start_workers=False)
    job = service.store.add("create", "local", {"mode": "demo", "preset": "cpu-smoke"})
    service.store.claim(["create"], "w")
    (service.store.job_dir(job.id) / "out").mkdir(parents=True)
    (service.store.job_dir(job.id) / "out" / PREPARE_NAME).write_text(json.dumps(
        {"step": "mean-face fit", "done": 120, "total": 400, "eta_s": 75.0, "cached": False}))
    assert service.status(job.id, "local")["message"] == "running: preparing: mean-face fit 120/400 · ETA 1 min 15 s"
    PrepareReport(service.store.job_dir(job.id) / "out").finish()
    assert service.status(job.id, "local")["message"] == "running: starting"


# ======================================================================= item 13
def test_the_model3d_view_stands_the_head_up_facing_the_camera_and_framed(tmp_path):
    """Gradio's splat view (gsplat.js) draws +y downward and looks from the −z side at the origin
    from 5 units: the view file has the head's top at −y, its face toward −z, centred, 1.6 units tall."""
    import torch

    from arc2avatar.avatar.model import Avatar
    from arc2avatar.avatar.template import build_head
    from arc2avatar.app.workers import MODEL3D_HEIGHT, write_model3d_view
    from arc2avatar.pipeline.config import TemplateConfig
    from arc2avatar.pipeline.meanface import initial_splats
    from arc2avatar.splats.ply import read_ply

    setup = build_head(TemplateConfig(face_levels=0, rest_levels=0))
    avatar = Avatar(initial_splats(setup), template=dict(setup.info))
    avatar.save(tmp_path / "avatar")
    ours = avatar.splats.means.detach()
    view = read_ply(write_model3d_view(tmp_path / "avatar", tmp_path / "view.ply")).means.detach()
    assert int(view[:, 1].argmin()) == int(ours[:, 2].argmax())  # the crown is at the top of the screen
    assert int(view[:, 2].argmin()) == int(ours[:, 1].argmax())  # the nose tip is nearest the camera
    extent = view.max(dim=0).values - view.min(dim=0).values
    centre = (view.max(dim=0).values + view.min(dim=0).values) / 2
    assert abs(float(extent[1]) - MODEL3D_HEIGHT) < 1e-4 and float(centre.abs().max()) < 1e-4
    # a rigid turn and one scale: distances between splats keep their ratios
    pairs = torch.tensor([[0, 1], [5, 500], [17, 3000]])
    ratio = (view[pairs[:, 0]] - view[pairs[:, 1]]).norm(dim=-1) / (ours[pairs[:, 0]] - ours[pairs[:, 1]]).norm(dim=-1)
    assert float(ratio.max() - ratio.min()) < 1e-4


# ======================================================================= item 2 (the parts without a server)
def test_the_upload_guard_caps_one_request_and_the_folder_and_discards_only_uploads(tmp_path):
    from arc2avatar.app.guard import UploadGuard, discard_uploads

    folder = tmp_path / "gradio"
    (folder / "abc").mkdir(parents=True)
    held = folder / "abc" / "photo.jpg"
    held.write_bytes(b"x" * 1000)
    guard = UploadGuard(None, limit_bytes=500, folder=folder, folder_bytes=1200)
    assert guard.refusal(600)[0] == 413
    assert guard.refusal(300)[0] == 507  # 1000 held + 300 > 1200
    assert guard.refusal(100) is None
    outside = tmp_path / "mine.jpg"
    outside.write_bytes(b"y")
    assert discard_uploads([str(held), str(outside), None], folder) == [held.resolve()]
    assert outside.is_file() and not (folder / "abc").exists() and folder.is_dir()


# ======================================================================= item 1 (the parts without a server)
def test_inside_an_app_worker_nothing_is_built_started_or_launched(tmp_path, monkeypatch):
    import multiprocessing

    from arc2avatar.app import build_app
    from arc2avatar.app.process import WORKER_PREFIX, InertApp, WorkerContext
    from arc2avatar.app.service import Service

    assert WorkerContext().Process(target=print).name.startswith(WORKER_PREFIX)  # what the pools spawn
    monkeypatch.setattr(multiprocessing.current_process(), "name", f"{WORKER_PREFIX}-SpawnProcess-1")
    app = build_app(AppConfig(work_dir=tmp_path / "work"))
    assert isinstance(app, InertApp) and app.queue(default_concurrency_limit=8).launch() is None
    assert not (tmp_path / "work").exists()  # not even the queue's file
    assert Service(AppConfig(work_dir=tmp_path / "w2")).dispatcher is None
    with pytest.raises(RuntimeError, match="never starts a dispatcher"):
        Dispatcher(JobStore(tmp_path / "w3"), lambda job: None, gpus=0, cpu_workers=1).start()
