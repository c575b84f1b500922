"""Claims about ``arc2avatar serve`` (issue 17), proven against a real server process on 127.0.0.1
in oracle mode with a tiny schedule, driven by headless Chromium (selenium) and by gradio_client:

* a text file named photo.jpg is refused with a message (decoded, not judged by its name);
* the astronaut photo becomes an avatar: the progress line updates at least twice, the embedded
  viewer appears and draws something, the downloaded ``avatar.ply`` parses;
* two jobs queued at once both finish, one of them after the server was stopped mid-job and
  started again (it resumes from its checkpoint: no iteration runs twice);
* the named API works end to end from gradio_client (create → status → .ply and zip);
* 20 clients polling ``job_status`` for a few seconds while a job runs: no error, p95 ≤ 200 ms
  (the 30-second version is ``benchmarks/bench_serve.py``; figures in docs/benchmarks.md).

Set ``ARC2AVATAR_SERVE_SCREENSHOT=docs/serve.png`` to also save the README's screenshot.
"""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import imageio.v3 as iio
import pytest
from headless_chromium import headless_chromium
from PIL import Image

from arc2avatar.app.bench import poll_status
from arc2avatar.splats.ply import read_ply
from polling import wait_for

SETTINGS = ("resolution=32", "meanface.resolution=32", "meanface.iterations=5", "meanface.head_iterations=5",
            "rgb_latent_resolution=16", "view_rings.turntable_frames=2", "template.face_levels=0",
            "iterations=20", "log_every=1", "outputs.video_fps=2")
PREVIEW_EVERY = 5  # also the checkpoint interval
START_S = 180.0  # server start-up (imports torch and gradio) on a busy 2-core machine
JOB_S = 240.0  # one tiny job, queue included
# The bound. A machine shared with other heavy work may relax it (ARC2AVATAR_SERVE_P95_S): one
# status call costs ~11 ms of server CPU, so a saturated machine queues (docs/benchmarks.md).
LOAD_CLIENTS, LOAD_S = 20, 8.0
P95_LIMIT_S = float(os.environ.get("ARC2AVATAR_SERVE_P95_S", "0.200"))
WINDOW = (1280, 1700)  # pixels: the whole Create tab in one screenshot


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """``arc2avatar serve`` as a child process (stop = SIGTERM, as Ctrl-C or a service manager would)."""

    def __init__(self, work: Path, log: Path) -> None:
        self.work, self.log, self.port = work, log, _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> "Server":
        command = [sys.executable, "-m", "arc2avatar.cli.main", "serve", "--work", str(self.work), "--port",
                   str(self.port), "--preview-every", str(PREVIEW_EVERY), *sum((["--set", s] for s in SETTINGS), [])]
        before = self.log.read_text().count("arc2avatar: serving on")
        handle = open(self.log, "a")
        self.process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=os.environ.copy())
        deadline = time.monotonic() + START_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"serve exited with {self.process.returncode}:\n{self.log.read_text()[-3000:]}")
            if self.log.read_text().count("arc2avatar: serving on") > before:
                return self
            time.sleep(0.3)
        raise AssertionError(f"serve did not start in {START_S} s:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=120)
        self.process = None


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    pytest.importorskip("gradio")
    pytest.importorskip("gradio_client")
    root = tmp_path_factory.mktemp("serve")
    os.environ.setdefault("ARC2AVATAR_CACHE", str(root / "cache"))  # the mean-face cache, private to the test
    srv = Server(root / "work", root / "serve.log")
    srv.log.write_text("")
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def browser():
    with headless_chromium("the serve browser test", window=WINDOW) as driver:
        yield driver


@pytest.fixture(scope="module")
def astronaut(tmp_path_factory) -> Path:
    from skimage.data import astronaut as pixels

    path = tmp_path_factory.mktemp("photos") / "astronaut.png"
    Image.fromarray(pixels()).resize((256, 256)).save(path)
    return path


def _open(driver, url: str):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    WebDriverWait(driver, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#photos input[type=file]"))
    return By


def _status(driver) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, "#status").text


def _wait_status(driver, done, timeout: float) -> list[str]:
    """Every distinct status line until ``done(line)``."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = _status(driver)
        if not seen or line != seen[-1]:
            seen.append(line)
        if done(line):
            return seen
        time.sleep(0.2)
    raise AssertionError(f"status did not reach the expected state in {timeout} s; seen: {seen}")


# ======================================================================= browser
def test_a_text_file_named_photo_jpg_is_refused_with_a_message(server, browser, tmp_path):
    fake = tmp_path / "photo.jpg"
    fake.write_text("this is not a photo\n" * 20)
    by = _open(browser, server.url)
    browser.find_element(by.CSS_SELECTOR, "#photos input[type=file]").send_keys(str(fake))
    time.sleep(1.0)  # the upload
    browser.find_element(by.CSS_SELECTOR, "#create").click()
    lines = _wait_status(browser, lambda line: "Refused" in line, 60)
    assert "photo.jpg is not a photo we can read" in lines[-1] and "JPEG, PNG or WebP" in lines[-1]
    assert not list((server.work / "jobs").iterdir())  # nothing was queued or kept


def test_the_astronaut_becomes_an_avatar_with_live_progress_a_viewer_and_downloads(server, browser, astronaut, tmp_path):
    by = _open(browser, server.url)
    browser.find_element(by.CSS_SELECTOR, "#photos input[type=file]").send_keys(str(astronaut))
    time.sleep(1.0)
    browser.find_element(by.CSS_SELECTOR, "#create").click()
    lines = _wait_status(browser, lambda line: line.startswith(("done", "failed")), JOB_S)
    assert lines[-1].startswith("done: iteration 20/20"), lines
    progress = {line.split(" · ")[0] for line in lines if "running: iteration" in line}
    assert len(progress) >= 2, f"the progress line changed fewer than twice: {lines}"

    # the embedded viewer appears and draws the avatar (not a blank canvas)
    from selenium.webdriver.support.ui import WebDriverWait

    frame = WebDriverWait(browser, 60).until(lambda d: d.find_element(by.CSS_SELECTOR, "#avatar-viewer"))
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", frame)
    browser.switch_to.frame(frame)
    try:
        WebDriverWait(browser, 90).until(lambda d: d.execute_script("return window.viewerReady === true || !!window.viewerError"))
        assert browser.execute_script("return window.viewerError || null") is None
    finally:
        browser.switch_to.default_content()
    time.sleep(1.0)
    pixels = np.asarray(Image.open(io.BytesIO(frame.screenshot_as_png)).convert("RGB")).astype(np.int16)
    background = np.median(pixels.reshape(-1, 3), axis=0)
    drawn = (np.abs(pixels - background).max(axis=-1) > 24).mean()
    assert drawn > 0.02, f"the viewer looks blank ({drawn:.1%} of its pixels differ from the background)"
    assert browser.find_elements(by.CSS_SELECTOR, "#model3d canvas"), "gr.Model3D shows no canvas"

    # the downloads come from the job's folder; the .ply parses
    links = {a.text.strip(): a.get_attribute("href") for a in browser.find_elements(by.CSS_SELECTOR, "#downloads a")}
    ply_url = next(url for url in links.values() if url.endswith("avatar.ply"))
    assert any(url.endswith("avatar.zip") for url in links.values()) and any(url.endswith("turntable.mp4") for url in links.values())
    (tmp_path / "avatar.ply").write_bytes(urllib.request.urlopen(ply_url, timeout=60).read())
    splats = read_ply(tmp_path / "avatar.ply")
    count = int(lines[-1].split(" · ")[1].split()[0].replace(",", ""))
    assert splats.num_splats == count and bool(np.isfinite(splats.means.detach().numpy()).all())

    shot = os.environ.get("ARC2AVATAR_SERVE_SCREENSHOT")
    if shot:
        browser.execute_script("window.scrollTo(0, document.querySelector('#status').getBoundingClientRect().top"
                               " + window.scrollY - 220)")
        time.sleep(1.0)
        Path(shot).write_bytes(browser.get_screenshot_as_png())


# ======================================================================= API, queue, restart, load
def test_two_jobs_queued_at_once_both_finish_across_a_server_restart_via_the_named_api(server, browser, astronaut, tmp_path):
    from gradio_client import Client, handle_file

    clients = [Client(server.url, verbose=False), Client(server.url, verbose=False)]
    ids: list[str] = [""] * 2

    def submit(k: int) -> None:
        ids[k] = clients[k].predict([handle_file(str(astronaut))], "cpu-smoke", k, api_name="/create_avatar")

    threads = [threading.Thread(target=submit, args=(k,)) for k in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(len(i) == 32 for i in ids) and ids[0] != ids[1]
    states = {i: clients[0].predict(i, api_name="/job_status")[0]["state"] for i in ids}
    assert sorted(states.values()) in (["queued", "queued"], ["queued", "running"]), states

    # stop the server once the running job has a checkpoint; start it again
    running = wait_for(lambda: next((i for i in ids if (server.work / "jobs" / i / "out" / "checkpoint.pt").is_file()), None),
                        JOB_S, "a checkpoint of a running job")
    server.stop()
    from arc2avatar.app.jobs import JobStore

    assert {j.id: j.state for j in JobStore(server.work).list()}[running] == "queued"
    server.start()

    client = Client(server.url, verbose=False)

    # while a job runs (the fair queue may start the other owner's job first): 20 clients poll its
    # status; the browser shows a blank page meanwhile (an open 3D viewer redraws on the CPU)
    browser.get("about:blank")
    busy = wait_for(lambda: next((i for i in ids if client.predict(i, api_name="/job_status")[0]["state"] == "running"
                                   and (server.work / "jobs" / i / "out" / "log.jsonl").is_file()), None),
                     JOB_S, "a job to run after the restart")
    report = poll_status(server.url, busy, clients=LOAD_CLIENTS, seconds=LOAD_S, interval_s=1.0)
    print("load:", report)
    assert report["errors"] == 0, report
    assert report["calls"] >= LOAD_CLIENTS * (LOAD_S - 2), report
    assert report["p95_s"] <= P95_LIMIT_S, report

    for job_id in ids:
        status = wait_for(lambda: _final(client, job_id), JOB_S, f"job {job_id} to finish")
        assert status["state"] == "done", status
        _, ply, archive = client.predict(job_id, api_name="/job_status")
        assert read_ply(ply).num_splats == status["splats"]
        with zipfile.ZipFile(archive) as folder:
            names = set(folder.namelist())
        assert {"avatar/avatar.ply", "avatar/viewer.html", "avatar/avatar/avatar.json"} <= names
        assert "avatar/checkpoint.pt" not in names
    # the resumed job went on from its checkpoint: no iteration ran twice
    iterations = [json.loads(line)["iteration"] for line in
                  (server.work / "jobs" / running / "out" / "log.jsonl").read_text().splitlines() if line.strip()]
    assert iterations[0] == 1 and iterations[-1] == 20 and iterations.count(1) == 1, iterations

    # an expression of a finished avatar, through its endpoint (rendered by the render worker)
    image, folder = client.predict(running, "smile=0.8,jaw_open=0.5", api_name="/express")
    neutral = (server.work / "jobs" / running / "out" / "views.png")
    assert Image.open(image).size == (512, 512) and neutral.is_file()
    with zipfile.ZipFile(folder) as archive:
        assert "avatar/avatar/avatar.json" in archive.namelist()

    # a face video drives the finished avatar through /drive (the drive package has landed)
    video = _driver_video(tmp_path / "driver.mp4", frames=16)
    driven = client.predict(running, handle_file(str(video)), api_name="/drive")
    driven = driven["video"] if isinstance(driven, dict) else driven
    frames = iio.imread(driven, index=None)
    assert frames.shape[0] == 16 and frames.shape[1:3] == (512, 512), frames.shape
    assert frames.std() > 5  # an avatar, not a blank frame

    # the page of the restarted server follows a job given in its link
    _open(browser, f"{server.url}/?job={running}")
    assert _wait_status(browser, lambda line: line.startswith("done"), 60)[-1].startswith("done: iteration 20/20")


def test_a_job_can_be_cancelled_and_the_api_refuses_unknown_job_ids_and_bad_photos(server, astronaut, tmp_path):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    client = Client(server.url, verbose=False)
    with pytest.raises(AppError, match="no such job"):
        client.predict("../../jobs.sqlite", api_name="/job_status")
    with pytest.raises(AppError, match="no such job"):
        client.predict("A" * 32, api_name="/job_status")
    job_id = client.predict([handle_file(str(astronaut))], "cpu-smoke", 7, api_name="/create_avatar")
    assert client.predict(job_id, api_name="/cancel_job")["state"] == "cancelled"
    time.sleep(2.0)
    assert client.predict(job_id, api_name="/job_status")[0]["state"] == "cancelled"  # a worker's end does not undo it
    fake = tmp_path / "photo.jpg"
    fake.write_text("not a photo")
    with pytest.raises(AppError, match="photo.jpg is not a photo we can read"):
        client.predict([handle_file(str(fake))], "cpu-smoke", 0, api_name="/create_avatar")


def _final(client, job_id: str):
    status = client.predict(job_id, api_name="/job_status")[0]
    return status if status["state"] in ("done", "failed", "cancelled") else None


def _driver_video(path: Path, frames: int) -> Path:
    """A short face video: the astronaut's photo on the built-in head performing the drive tests'
    known sequence (``arc2avatar.testing.drive``), 320² MP4."""
    from skimage.data import astronaut as pixels

    from arc2avatar.avatar.media import write_video
    from arc2avatar.identity.dlib_faces import DlibFaceDetector
    from arc2avatar.testing.drive import KnownPerformance, known_sequence, render_textured_driver

    photo = pixels()
    keypoints = DlibFaceDetector().largest_face(photo).keypoints
    sequence = known_sequence(KnownPerformance(frames=frames))
    write_video(render_textured_driver(photo, keypoints, sequence, 320), path, fps=int(sequence.fps))
    return path
