"""Claims about ``create-batch`` (issue 8.2): jobs from a photos folder, spread over worker
processes, finished avatars skipped, a failed job retried once and reported, the rest unaffected.

Two CPU workers, the oracle prior (no weights; each job's photo goes on the target's face as in
``demo``), tiny runs: 32² renders, 2 iterations, a 5 + 5 iteration mean face. The photos are
scikit-image's astronaut (a public-domain NASA portrait the face detector finds) and its mirror.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from arc2avatar.cli.main import main
from arc2avatar.errors import InputError
from arc2avatar.pipeline.batch import SUMMARY_NAME, attempt_of, Worker, create_batch, discover_jobs

TINY = ["resolution=32", "meanface.resolution=32", "meanface.iterations=5", "meanface.head_iterations=5",
        "rgb_latent_resolution=16", "view_rings.turntable_frames=2", "outputs.size=32", "iterations=2", "log_every=1"]


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ARC2AVATAR_CACHE", str(tmp_path / "cache"))  # the workers inherit it


def _photo(path, mirrored: bool = False, side: int = 256) -> None:
    """A frontal face photo: the astronaut portrait (optionally mirrored), ``side`` pixels square."""
    from skimage.data import astronaut

    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = astronaut()[:, ::-1] if mirrored else astronaut()
    Image.fromarray(np.ascontiguousarray(pixels)).resize((side, side)).save(path)


@pytest.fixture
def photos(tmp_path):
    root = tmp_path / "photos"
    _photo(root / "alice.png")
    _photo(root / "bob" / "1.png", mirrored=True)
    _photo(root / "bob" / "2.png")
    (root / "corrupt.png").write_bytes(b"this is not a PNG")
    (root / "notes.txt").write_text("not a photo")
    _photo(root / ".hidden.png", side=16)
    return root


def test_two_workers_make_the_good_avatars_retry_the_bad_one_and_skip_finished_ones_next_time(photos, tmp_path, capsys):
    out = tmp_path / "avatars"
    sets = [a for s in TINY for a in ("--set", s)]
    code = main(["create-batch", str(photos), "-o", str(out), "--oracle", "--workers", "2", "--threads", "1", *sets])
    printed = capsys.readouterr().out
    assert code == 1  # a job failed
    summary = json.loads((out / SUMMARY_NAME).read_text())
    jobs = {j["name"]: j for j in summary["jobs"]}
    assert sorted(jobs) == ["alice", "bob", "corrupt"] and summary["workers"] == 2
    assert jobs["bob"]["photos"] == [str(photos / "bob" / "1.png"), str(photos / "bob" / "2.png")]
    for name in ("alice", "bob"):
        assert (jobs[name]["status"], jobs[name]["attempts"]) == ("done", 1)
        assert (out / name / "avatar.ply").is_file() and (out / name / "avatar" / "avatar.json").is_file()
        assert jobs[name]["metrics"]["heldout_psnr"] > 0
    bad = jobs["corrupt"]
    assert (bad["status"], bad["attempts"]) == ("failed", 2)  # retried once
    assert "corrupt.png" in bad["error"] and "\n" not in bad["error"]
    assert summary["counts"] == {"done": 2, "failed": 1}
    rows = {line.split()[0]: line.split() for line in printed.splitlines() if line.split()[:1] in (["alice"], ["bob"], ["corrupt"])}
    assert rows["corrupt"][1:3] == ["failed", "2"] and rows["alice"][1:3] == ["done", "1"]

    stamp = (out / "alice" / "avatar.ply").stat().st_mtime_ns
    _photo(photos / "corrupt.png", mirrored=True)  # mended: the second call makes it and skips the two others
    again = create_batch(photos, out, workers=2, threads_per_worker=1, oracle=True, overrides=TINY)
    status = {j.name: (j.status, j.attempts) for j in again.jobs}
    assert status == {"alice": ("skipped", 0), "bob": ("skipped", 0), "corrupt": ("done", 1)}
    assert again.ok and (out / "alice" / "avatar.ply").stat().st_mtime_ns == stamp
    assert json.loads((out / SUMMARY_NAME).read_text())["counts"] == {"done": 1, "skipped": 2}


def test_jobs_are_one_per_photo_and_one_per_folder_of_photos(photos, tmp_path):
    out = photos / "out"  # an output folder inside the photos folder is not an identity
    _photo(out / "alice" / "views.png", side=16)
    (photos / "empty").mkdir()
    jobs = discover_jobs(photos, out)
    assert [(j.name, [p.name for p in j.photos], j.out_dir) for j in jobs] == [
        ("alice", ["alice.png"], out / "alice"), ("bob", ["1.png", "2.png"], out / "bob"),
        ("corrupt", ["corrupt.png"], out / "corrupt")]


def test_bad_photo_folders_are_one_clear_message(tmp_path, capsys):
    (tmp_path / "none").mkdir()
    (tmp_path / "none" / "readme.txt").write_text("no photos here")
    with pytest.raises(InputError, match="no photos"):
        discover_jobs(tmp_path / "none", tmp_path / "out")
    _photo(tmp_path / "clash" / "a.png", side=16)
    _photo(tmp_path / "clash" / "a.jpg", side=16)
    with pytest.raises(InputError, match="same avatar folder.*a.jpg.*a.png"):
        discover_jobs(tmp_path / "clash", tmp_path / "out")
    code = main(["create-batch", str(tmp_path / "missing"), "-o", str(tmp_path / "out"), "--oracle"])
    assert code == 1 and "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has GPUs")
def test_gpus_on_a_cpu_machine_is_one_message_and_writes_nothing(photos, tmp_path, capsys):
    code = main(["create-batch", str(photos), "-o", str(tmp_path / "out"), "--oracle", "--gpus", "2"])
    err = capsys.readouterr().err
    assert code == 1 and "--gpus 2" in err and "--workers" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_a_worker_that_dies_fails_only_its_own_job_and_is_replaced():
    worker = Worker(gpu=None, threads=1)
    try:
        attempt = attempt_of(worker.pool.submit(os._exit, 3), worker)
        assert not attempt.ok and "worker process died" in attempt.error
        assert worker.pool.submit(os.getpid).result(timeout=120) > 0  # a fresh process takes the next job
    finally:
        worker.close()
