"""What an outside probe broke in the commands and the library, each kept as a test (issue 26,
items 4, 6, 9, 10, 12 and 15; the sequence readers' limits are in tests/fuzz/test_fuzz_sequence_limits.py).

Every avatar here is a copy of ``tests/fixtures/avatar-v0.1.0`` (878 splats), with stand-ins for
the media its run would have written, so nothing is trained.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from arc2avatar.cli.main import main

FIXTURE = Path(__file__).parent / "fixtures" / "avatar-v0.1.0"


def _run(argv: list[str], capsys) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err, captured.err
    return code, captured.out, captured.err


def assert_one_line_error(code: int, err: str, *fragments: str) -> None:
    assert code != 0 and err.startswith("arc2avatar: error:") and len(err.strip().splitlines()) == 1, err
    for fragment in fragments:
        assert fragment in err, err


def _digests(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (links as such) with the SHA-256 of its bytes."""
    return {os.path.relpath(p, folder): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def avatar_dir(tmp_path) -> Path:
    """A finished avatar folder: the fixture's bundle and PLY plus what its run wrote beside them."""
    out = tmp_path / "out"
    shutil.copytree(FIXTURE / "avatar", out / "avatar")
    shutil.copy(FIXTURE / "avatar.ply", out / "avatar.ply")
    for name in ("turntable.mp4", "views.png", "progress.png", "config.yaml", "metrics.json", "log.jsonl"):
        (out / name).write_bytes(f"the run's own {name}".encode())
    return out


# ------------------------------------------------------------------ 4, 12: the avatar's own files
@pytest.mark.parametrize("target", ["avatar.ply", "avatar/head.spz", "avatar/head.glb"])
def test_export_refuses_to_write_over_the_avatars_own_files(avatar_dir, capsys, target) -> None:
    before = _digests(avatar_dir)
    code, _, err = _run(["export", str(avatar_dir), "-o", str(avatar_dir / target)], capsys)
    assert_one_line_error(code, err, target.split("/")[-1])
    assert _digests(avatar_dir) == before


def test_export_beside_the_avatar_still_works(avatar_dir, capsys) -> None:
    code, out, _ = _run(["export", str(avatar_dir), "-o", str(avatar_dir / "head.spz")], capsys)
    assert code == 0 and (avatar_dir / "head.spz").stat().st_size > 0 and "wrote" in out


def test_render_keeps_the_runs_own_turntable_and_writes_its_own_file(avatar_dir, capsys) -> None:
    before = _digests(avatar_dir)
    code, out, err = _run(["render", str(avatar_dir), "--turntable", "--size", "16", "--frames", "2",
                           "--no-progress"], capsys)
    assert code == 0, err
    written = avatar_dir / "rendered_turntable.mp4"
    assert str(written) in out and written.read_bytes()[4:8] == b"ftyp"
    assert {k: v for k, v in _digests(avatar_dir).items() if k != written.name} == before
    code, _, err = _run(["render", str(avatar_dir / "avatar"), "--sheet", "--size", "16", "--no-progress"], capsys)
    assert code == 0 and (avatar_dir / "rendered_views.png").is_file(), err  # a bundle folder: beside it, not in it
    for target in ("turntable.mp4", "views.png", "progress.png"):
        code, _, err = _run(["render", str(avatar_dir), "-o", str(avatar_dir / target), "--size", "16",
                             "--frames", "2", "--no-progress"], capsys)
        assert_one_line_error(code, err, target)
    assert _digests(avatar_dir)["turntable.mp4"] == before["turntable.mp4"]


# ------------------------------------------------------------------ 6: write failures in one line
@pytest.mark.parametrize("target", ["/proc/x.ply", "/proc/self/nowhere/x.ply", "{file}/x.ply"])
def test_a_write_failure_is_one_line_naming_the_output(avatar_dir, capsys, target) -> None:
    target = target.format(file=avatar_dir / "config.yaml")
    code, _, err = _run(["export", str(avatar_dir), "-o", target], capsys)
    assert_one_line_error(code, err, f"cannot write {target}")


def test_atomic_path_names_the_file_and_leaves_nothing(tmp_path) -> None:
    import errno

    from arc2avatar._io import atomic_path
    from arc2avatar.errors import OutputError

    target = tmp_path / "a.ply"
    with pytest.raises(OutputError, match=f"^cannot write {target}: Input/output error$"), atomic_path(target) as tmp:
        raise OSError(errno.EIO, "Input/output error", str(tmp))  # the writer failed on our temporary file
    with pytest.raises(FileNotFoundError), atomic_path(target):
        open(tmp_path / "missing-input.txt")  # an error about another file is not ours to rename
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ 9: one bundle check, no links out
def _set_template(avatar_dir: Path, **fields) -> None:
    import json

    from arc2avatar.avatar.model import Avatar

    avatar = Avatar.load(avatar_dir)
    shutil.rmtree(avatar_dir / "avatar")
    template = dict(json.loads((FIXTURE / "avatar" / "avatar.json").read_text())["template"], **fields)
    Avatar(avatar.splats, template, avatar.extra).save(avatar_dir)


@pytest.mark.parametrize("command", [["export", "{out}", "-o", "{tmp}/x.ply"],
                                     ["render", "{out}", "--sheet", "--size", "16", "-o", "{tmp}/s.png"],
                                     ["viewer", "{out}", "-o", "{tmp}/v.html"]])
def test_every_reader_refuses_the_template_levels_animate_refuses(avatar_dir, tmp_path, capsys, command) -> None:
    _set_template(avatar_dir, face_levels=9)
    argv = [word.format(out=avatar_dir, tmp=tmp_path) for word in command]
    code, _, err = _run(argv, capsys)
    assert_one_line_error(code, err, "face_levels=9")
    assert not list(tmp_path.glob("x.ply")) + list(tmp_path.glob("s.png")) + list(tmp_path.glob("v.html"))


@pytest.mark.parametrize("link", ["avatar/splats.safetensors", "avatar/avatar.json", "avatar"])
def test_no_symlink_out_of_the_avatar_folder_is_followed(avatar_dir, tmp_path, capsys, link) -> None:
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(avatar_dir / "avatar", elsewhere)  # a valid bundle: only the link is wrong
    inside = avatar_dir / link
    shutil.rmtree(inside) if inside.is_dir() else inside.unlink()
    inside.symlink_to(elsewhere / Path(link).name if link != "avatar" else elsewhere)
    code, _, err = _run(["export", str(avatar_dir), "-o", str(tmp_path / "x.ply")], capsys)
    assert_one_line_error(code, err, "symbolic link", "outside")
    assert not (tmp_path / "x.ply").exists()


def test_a_symlink_inside_the_avatar_folder_is_fine(avatar_dir, tmp_path, capsys) -> None:
    (avatar_dir / "avatar" / "splats.safetensors").rename(avatar_dir / "avatar" / "real.safetensors")
    (avatar_dir / "avatar" / "splats.safetensors").symlink_to("real.safetensors")
    code, _, err = _run(["export", str(avatar_dir), "-o", str(tmp_path / "x.ply")], capsys)
    assert code == 0, err


# ------------------------------------------------------------------ 10: values accepted without complaint
@pytest.mark.parametrize("setting", ["iterations=1000000000000", "iterations=1e12", "meanface.iterations=100000000"])
def test_absurd_iteration_counts_are_refused(tmp_path, capsys, setting) -> None:
    out = tmp_path / "demo"
    code, _, err = _run(["demo", "-o", str(out), "--no-progress", "--set", setting], capsys)
    assert_one_line_error(code, err, "100000")
    assert not out.exists()


# ------------------------------------------------------------------ 15: small things
def test_dir_lists_the_lazy_exports() -> None:
    import arc2avatar
    import arc2avatar.prior

    names = dir(arc2avatar)
    assert {"Avatar", "create", "demo", "drive", "render_avatar"} <= set(names)
    assert "Any" not in names and "annotations" not in names
    assert "Arc2FaceGuidance" in dir(arc2avatar.prior)


def test_doctor_and_create_without_weights_point_to_the_offline_demo(tmp_path, capsys, monkeypatch) -> None:
    import numpy as np
    from PIL import Image

    empty = tmp_path / "weights"
    empty.mkdir()
    code, out, _ = _run(["doctor", "--weights", str(empty)], capsys)
    assert code == 2 and "`arc2avatar demo -o demo/`" in out
    photo = tmp_path / "me.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (128, 128, 3), dtype=np.uint8)).save(photo)
    monkeypatch.setenv("ARC2AVATAR_WEIGHTS", str(empty))
    code, _, err = _run(["create", str(photo), "-o", str(tmp_path / "out")], capsys)
    assert code == 2 and "`arc2avatar demo -o demo/`" in err and not (tmp_path / "out").exists()


def test_drive_quiet_prints_only_what_it_wrote(tmp_path, capsys, caplog, monkeypatch) -> None:
    import arc2avatar.drive.run as run

    def fake_drive(avatar, video, out, **options):
        logging.getLogger("arc2avatar.drive.run").info("tracking 3 frames")
        report = {"frames": 3, "frames_without_face": 0, "mean_confidence": 1.0, "stage_fps": {}}
        return SimpleNamespace(report=report, paths={"report": Path(out).with_suffix(".report.json")})

    monkeypatch.setattr(run, "drive", fake_drive)
    caplog.set_level(logging.INFO)
    argv = ["drive", str(tmp_path / "a"), str(tmp_path / "v.mp4"), "-o", str(tmp_path / "o.mp4")]
    code, out, _ = _run(argv, capsys)
    assert code == 0 and "tracking 3 frames" in caplog.text and '"frames": 3' in out
    caplog.clear()
    code, out, _ = _run(argv + ["-q"], capsys)
    assert code == 0 and caplog.text == "" and out.strip().splitlines() == [out.strip()] and out.startswith("wrote")
    assert logging.getLogger().level == logging.INFO  # the quiet level ended with the command


def test_a_finished_folder_keeps_no_lock_file(tmp_path) -> None:
    from arc2avatar._guard import LOCK_NAME, folder_lock

    with folder_lock(tmp_path / "run") as folder:
        assert (folder / LOCK_NAME).is_file()
    assert list((tmp_path / "run").iterdir()) == []
    with pytest.raises(RuntimeError), folder_lock(tmp_path / "run"):  # a failed run: no lock file either
        raise RuntimeError("boom")
    assert list((tmp_path / "run").iterdir()) == []


def test_express_logs_the_viewer_where_it_ends_up(avatar_dir, tmp_path, caplog) -> None:
    from arc2avatar.animate.express import express

    caplog.set_level(logging.INFO, logger="arc2avatar.viewer.folder")
    express(avatar_dir, tmp_path / "smile", {"smile": 0.5}, size=16)
    line = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("viewer "))
    assert line.startswith(f"viewer {tmp_path / 'smile' / 'viewer.html'}:"), line


def test_the_demo_turntable_is_a_smooth_full_turn() -> None:
    from arc2avatar.pipeline.presets import resolve_config

    for preset in ("cpu-smoke", "photo-demo"):
        config = resolve_config(preset, None, [])
        frames, fps = config.view_rings.turntable_frames, config.outputs.video_fps
        assert 360 / frames <= 6 and fps >= 24 and frames / fps >= 2.5, (preset, frames, fps)
