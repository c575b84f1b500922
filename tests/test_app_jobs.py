"""The web app's pieces without a server (issue 17): the persistent queue (fair, survives a
restart, unguessable ids), upload checks by decoding, safe names and paths, progress from the
run's log, and the exposure warning of ``serve``."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from PIL import Image

from arc2avatar.app.config import UploadLimits
from arc2avatar.app.jobs import JobStore, new_job_id, valid_job_id
from arc2avatar.app.service import describe, last_log_record
from arc2avatar.app.uploads import inside, sanitise_name, save_photos
from arc2avatar.cli.serve import exposure_warning, parse_auth
from arc2avatar.errors import InputError


def test_job_ids_are_long_random_and_checked():
    ids = {new_job_id() for _ in range(200)}
    assert len(ids) == 200 and all(valid_job_id(i) for i in ids)
    assert not any(valid_job_id(bad) for bad in ("", "../jobs.sqlite", "a" * 31, "a" * 33, "a/" * 16, None))


def test_the_queue_is_fair_between_owners_and_survives_a_restart(tmp_path):
    store = JobStore(tmp_path)
    alice = [store.add("create", "alice", {"n": k}) for k in range(3)]
    time.sleep(0.01)
    bob = store.add("create", "bob", {"n": 0})
    render = store.add("express", "bob", {})
    first = store.claim(["create"], "w0")
    assert first.id == alice[0].id and first.state == "running" and first.attempts == 1
    second = store.claim(["create"], "w1")
    assert second.id == bob.id  # bob has nothing running: his first job goes before alice's second
    assert store.claim(["express", "animate"], "render").id == render.id
    assert store.position(store.get(alice[2].id)) == 1

    reopened = JobStore(tmp_path)  # a new server on the same work folder
    assert sorted(reopened.requeue_unfinished()) == sorted([alice[0].id, bob.id, render.id])
    assert {j.id: j.state for j in reopened.list()}[alice[0].id] == "queued"
    again = reopened.claim(["create"], "w0")
    assert again.id == alice[0].id and again.attempts == 2


def test_cancel_and_finish_keep_a_cancelled_job_cancelled(tmp_path):
    store = JobStore(tmp_path)
    job = store.add("create", "x", {})
    store.claim(["create"], "w")
    assert store.cancel(job.id).state == "running"
    store.finish(job.id, "failed", "interrupted")
    assert store.get(job.id).state == "cancelled"
    assert store.cancel("A" * 32) is None and store.get("../x") is None
    with pytest.raises(ValueError):
        store.job_dir("../../etc")


def test_names_and_paths_stay_inside_the_work_folder(tmp_path):
    assert sanitise_name("../../etc/passwd") == "passwd"
    assert sanitise_name("..\\..\\boot.ini") == "boot.ini"
    assert sanitise_name("my photo (1).JPG") == "my_photo_1_.JPG"
    assert sanitise_name(".hidden") == "hidden" and sanitise_name("") == "file"
    assert inside(tmp_path, "jobs", "a.png") == (tmp_path / "jobs" / "a.png").resolve()
    for bad in (("..", "x"), ("/etc/passwd",), ("jobs", "..", "..", "x")):
        with pytest.raises(InputError, match="outside the work folder"):
            inside(tmp_path, *bad)


def test_photos_are_checked_by_decoding_and_stored_under_our_names(tmp_path):
    fake = tmp_path / "photo.jpg"
    fake.write_text("not an image")
    with pytest.raises(InputError, match="photo.jpg is not a photo we can read"):
        save_photos([fake], tmp_path / "in", UploadLimits())
    assert not (tmp_path / "in").exists()
    real = tmp_path / "we ird (1).webp"
    Image.fromarray(np.full((80, 64, 3), 128, np.uint8)).save(real)
    stored = save_photos([real], tmp_path / "in", UploadLimits())
    assert [p.name for p in stored] == ["photo_1.png"] and Image.open(stored[0]).size == (64, 80)
    with pytest.raises(InputError, match="limit is 0 MB"):
        save_photos([real], tmp_path / "in2", UploadLimits(photo_mb=1e-6))
    with pytest.raises(InputError, match="at most 4"):
        save_photos([real] * 5, tmp_path / "in3", UploadLimits())
    with pytest.raises(InputError, match="no photo"):
        save_photos([], tmp_path / "in4", UploadLimits())


def test_progress_is_read_from_the_last_complete_log_record(tmp_path):
    log = tmp_path / "log.jsonl"
    assert last_log_record(log) is None
    log.write_text(json.dumps({"iteration": 10, "splats": 5000, "elapsed_s": 5.0}) + "\n"
                   + json.dumps({"iteration": 20, "splats": 5100, "elapsed_s": 10.0}) + "\n" + '{"iteration": 3')
    assert last_log_record(log)["iteration"] == 20
    line = describe({"state": "running", "kind": "create", "iteration": 20, "iterations": 100, "splats": 5100,
                     "eta_s": 40.0})
    assert line == "running: iteration 20/100 · 5,100 splats · ETA 40 s"
    assert describe({"state": "queued", "queue_position": 2}) == "queued: 2 job(s) ahead"


def test_serve_warns_when_reachable_from_elsewhere_and_reads_auth():
    assert exposure_warning("127.0.0.1", False, None) is None
    assert "--auth" in exposure_warning("0.0.0.0", False, None)
    assert "gradio.live" in exposure_warning("127.0.0.1", True, ("a", "b"))
    assert "--auth" not in exposure_warning("0.0.0.0", False, ("a", "b"))
    assert parse_auth("alice:pa:ss") == ("alice", "pa:ss")
    for bad in ("alice", ":x", "alice:"):
        with pytest.raises(InputError, match="USER:PASS"):
            parse_auth(bad)


def _api_names(app) -> set[str]:
    return {d.get("api_name") for d in app.config["dependencies"] if d.get("api_name")}


def test_the_drive_tab_and_endpoint_appear_only_when_the_drive_module_is_installed(tmp_path, monkeypatch):
    """The Drive tab and /drive exist with ``arc2avatar.drive`` (it has landed) and vanish where the
    module is absent (an install that strips it, or an older version)."""
    pytest.importorskip("gradio")
    from arc2avatar.app import AppConfig
    from arc2avatar.app import ui
    from arc2avatar.app.service import Service
    from arc2avatar.app.ui import build_app

    config = AppConfig(work_dir=tmp_path / "work")
    service = Service(config, start_workers=False)
    assert ui.drive_available()
    with_drive = build_app(config, service=service)
    assert {"create_avatar", "job_status", "cancel_job", "express", "animate", "drive"} <= _api_names(with_drive)
    assert '"Drive"' in json.dumps(with_drive.config["components"], default=str)

    monkeypatch.setattr(ui, "drive_available", lambda: False)
    without = build_app(config, service=service)
    assert {"create_avatar", "job_status", "cancel_job", "express", "animate"} <= _api_names(without)
    assert "drive" not in _api_names(without) and "Drive" not in json.dumps(without.config["components"], default=str)


def test_with_private_jobs_another_users_job_reads_as_unknown(tmp_path):
    from arc2avatar.app import AppConfig
    from arc2avatar.app.service import Service

    photo = tmp_path / "face.png"
    Image.fromarray(np.full((64, 64, 3), 200, np.uint8)).save(photo)
    service = Service(AppConfig(work_dir=tmp_path / "work", private_jobs=True), start_workers=False)
    job = service.submit_create([str(photo)], "alice", mode="demo-photo", preset="cpu-smoke", seed=3)
    assert service.status(job.id, "alice")["state"] == "queued"
    assert (service.store.job_dir(job.id) / "inputs" / "photo_1.png").is_file()
    for owner, job_id in (("bob", job.id), ("alice", job.id[:-1] + ("y" if job.id.endswith("x") else "x")), ("alice", "../" + job.id)):
        with pytest.raises(InputError, match="no such job"):
            service.status(job_id, owner)
    assert [i for i, _, _ in service.gallery("bob")] == []
    with pytest.raises(InputError, match="weights are missing|unknown mode"):
        service.submit_create([str(photo)], "alice", mode="arc2face") if not service.weights.ok else \
            service.submit_create([str(photo)], "alice", mode="nope")
