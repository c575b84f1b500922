"""Faults (issue 19): a `demo` killed by SIGINT, SIGTERM or SIGKILL at several points (mid-loop,
inside a checkpoint write, while writing the final outputs) finishes with `--resume` into a
complete folder: no temp files left, no repeated log lines. A full disk is one line and keeps the
previous checkpoint; two processes share the mean-face cache without corrupting it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from arc2avatar.cli.main import main

# A tiny complete run: 32² renders, the unsubdivided built-in head, 8 iterations, checkpoints every 3.
TINY = ["resolution=32", "meanface.resolution=32", "meanface.iterations=4", "meanface.head_iterations=4",
        "rgb_latent_resolution=16", "view_rings.turntable_frames=2", "log_every=1", "checkpoint_every=3",
        "iterations=8", "template.face_levels=0", "template.rest_levels=0"]
OUTPUTS = ("avatar.ply", "avatar/avatar.json", "avatar/splats.safetensors", "views.png", "turntable.mp4",
           "viewer.html", "config.yaml", "log.jsonl", "metrics.json")

# The child: patches one point of the run to signal itself there, then runs the CLI.
DRIVER = textwrap.dedent("""
    import os, sys, time
    point, signame, argv = sys.argv[1], sys.argv[2], sys.argv[3:]
    sig = getattr(__import__("signal"), signame)
    kind, _, arg = point.partition(":")

    def hit():
        os.kill(os.getpid(), sig)
        time.sleep(0.5)  # SIGINT is handled after this returns; the others never come back

    if kind == "checkpoint":  # the arg-th checkpoint: its temp file is written, the rename not yet done
        import torch, arc2avatar.pipeline.trainer as trainer
        calls, save = [0], torch.save
        def patched(obj, f, *a, **k):
            save(obj, f, *a, **k)
            calls[0] += 1
            if calls[0] == int(arg):
                hit()
        trainer.torch.save = patched
    elif kind == "iteration":
        from arc2avatar.pipeline.trainer import Trainer
        step = Trainer.step
        def patched(self, iteration):
            record = step(self, iteration)
            if iteration == int(arg):
                hit()
            return record
        Trainer.step = patched
    elif kind == "video":  # while writing the final outputs: after the PLY, bundle and sheet
        import arc2avatar.avatar.outputs as media  # the final outputs' writer looks write_video up there
        def patched(*a, **k):
            hit()
        media.write_video = patched
    elif kind == "bundle":  # half-way through the bundle's tensor file
        import arc2avatar._io as io_, arc2avatar.splats.bundle as bundle
        def patched(path, data):
            with io_.atomic_path(path) as tmp:
                tmp.write_bytes(data[: len(data) // 2])
                hit()
        bundle.atomic_write_bytes = patched
    from arc2avatar.cli.main import main
    sys.exit(main(argv))
""")


def _argv(out: Path, resume: bool) -> list[str]:
    return ["demo", "-o", str(out), "--no-progress", *(["--resume"] if resume else []),
            *sum((["--set", s] for s in TINY), [])]


def _killed_run(tmp_path: Path, out: Path, point: str, signame: str, resume: bool) -> int:
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(script), point, signame, *_argv(out, resume)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode


def _interrupted_here(out: Path, monkeypatch, iteration: int) -> int:
    """--resume in this process, with a real SIGINT sent to it after ``iteration`` (the trainer's
    handler turns it into a checkpoint and exit 130; nothing else of pytest sees it)."""
    from arc2avatar.pipeline.trainer import Trainer

    step = Trainer.step

    def interrupting(self, it):
        record = step(self, it)
        if it == iteration:
            os.kill(os.getpid(), signal.SIGINT)
        return record

    monkeypatch.setattr(Trainer, "step", interrupting)
    try:
        return main(_argv(out, resume=True))
    finally:
        monkeypatch.setattr(Trainer, "step", step)


def _log_iterations(out: Path) -> list[int]:
    return [json.loads(line)["iteration"] for line in (out / "log.jsonl").read_text().splitlines()]


def test_a_demo_killed_at_several_points_resumes_into_a_complete_folder(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("ARC2AVATAR_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "out"
    # 1. SIGKILL inside the first checkpoint write (iteration 3): its temp file stays, no checkpoint yet.
    assert _killed_run(tmp_path, out, "checkpoint:1", "SIGKILL", resume=False) == -signal.SIGKILL
    assert list(out.glob(".checkpoint.pt.*.tmp")) and not (out / "checkpoint.pt").exists()
    # 2. --resume starts over with the saved settings; SIGINT at iteration 5 writes a checkpoint there (exit 130).
    assert _interrupted_here(out, monkeypatch, iteration=5) == 130
    assert not list(out.glob(".*.tmp"))  # the resumed run removed what the killed one left
    assert _log_iterations(out) == list(range(1, 6))  # the first attempt's records were dropped
    # 3. SIGTERM while writing the final outputs (the video), 4. SIGKILL half-way through the bundle.
    assert _killed_run(tmp_path, out, "video", "SIGTERM", resume=True) == -signal.SIGTERM
    assert (out / "checkpoint.pt").is_file() and not (out / "turntable.mp4").exists()
    assert _killed_run(tmp_path, out, "bundle", "SIGKILL", resume=True) == -signal.SIGKILL
    assert list((out / "avatar").glob(".*.tmp"))
    # 5. The last --resume finishes.
    assert main(_argv(out, resume=True)) == 0
    for name in OUTPUTS:
        assert (out / name).is_file(), name
    assert not (out / "checkpoint.pt").exists()
    assert not [p for p in out.rglob("*.tmp")]
    assert _log_iterations(out) == list(range(1, 9))  # every iteration once, in order
    assert json.loads((out / "metrics.json").read_text())["iterations"] == 8


def test_a_full_disk_is_one_line_and_keeps_the_previous_checkpoint(tmp_path, monkeypatch, capsys) -> None:
    """Simulated at the write call (mounting a tmpfs needs privileges a CI runner may lack): the
    checkpoint write fails as a full disk makes torch.save fail."""
    import torch

    import arc2avatar.pipeline.trainer as trainer

    monkeypatch.setenv("ARC2AVATAR_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "out"
    real_save, calls = torch.save, [0]

    def full_disk(obj, f, *a, **k):
        calls[0] += 1
        if calls[0] == 2:
            with open(f, "wb") as handle:
                handle.write(b"partial")
            raise RuntimeError("[enforce fail at inline_container.cc:595] . PytorchStreamWriter failed writing "
                               "file data/0: file write failed")
        real_save(obj, f, *a, **k)

    monkeypatch.setattr(trainer.torch, "save", full_disk)
    code = main(_argv(out, resume=False))
    err = capsys.readouterr().err
    assert code == 1 and "cannot write checkpoint" in err and "disk full" in err and len(err.strip().splitlines()) == 1
    assert not list(out.glob(".*.tmp"))
    payload = torch.load(out / "checkpoint.pt", weights_only=True)  # the previous one, intact
    assert payload["iteration"] == 3
    monkeypatch.setattr(trainer.torch, "save", real_save)
    assert main(_argv(out, resume=True)) == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_a_real_full_disk_on_a_small_tmpfs(tmp_path, monkeypatch, capsys) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()[:120]}")
    try:
        monkeypatch.setenv("ARC2AVATAR_CACHE", str(tmp_path / "cache"))
        code = main(_argv(disk / "out", resume=False))
        err = capsys.readouterr().err
        assert code == 1 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
        assert not list((disk / "out").rglob(".*.tmp"))
        if (disk / "out" / "checkpoint.pt").exists():
            import torch

            assert torch.load(disk / "out" / "checkpoint.pt", weights_only=True)["iteration"] in (3, 6)
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)  # lazy: a writer (ffmpeg) may still hold a file


def test_two_processes_share_the_mean_face_cache(tmp_path) -> None:
    """Two runs at once on one cache: one fits the mean face while the other waits for its lock
    and reads the finished entry; both finish, and the entry is complete."""
    from safetensors.torch import load_file

    script = textwrap.dedent("""
        import sys
        from arc2avatar.pipeline.presets import resolve_config
        from arc2avatar.avatar.template import build_head
        from arc2avatar.pipeline.meanface import fit_mean_face, initial_splats
        config = resolve_config("cpu-smoke", None, sys.argv[2:])
        setup = build_head(config.template)
        _, stats = fit_mean_face(setup, initial_splats(setup, config.splat_init), config.meanface,
                                 config.face_cameras, head_cameras=config.cameras, init=config.splat_init)
        print("cached", int(stats["cached"]))
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "OMP_NUM_THREADS": "1",
           "ARC2AVATAR_CACHE": str(tmp_path / "cache")}
    sets = [s for s in TINY if s.startswith(("meanface", "template"))]
    children = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path / f"t{k}"), *sets], env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for k in range(2)]
    results = [child.communicate(timeout=120) for child in children]
    assert all(child.returncode == 0 for child in children), results
    assert sorted(out.strip().splitlines()[-1] for out, _ in results) == ["cached 0", "cached 1"]
    entries = list((tmp_path / "cache" / "meanface").glob("*.safetensors"))
    assert len(entries) == 1 and load_file(str(entries[0]))["means"].shape[0] > 0
    assert not list((tmp_path / "cache" / "meanface").glob(".*.tmp"))
