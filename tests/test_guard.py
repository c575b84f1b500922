"""Claims about what arc2avatar may delete, replace or share (``arc2avatar._guard``; issue 19)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
from PIL import Image

from arc2avatar._guard import check_output_file, check_replaceable, folder_lock, mark_owned, remove_stale_temporaries
from arc2avatar.cli.main import main
from arc2avatar.errors import InputError
from arc2avatar.finetune.build import DATASET_KIND, build_from_folder
from arc2avatar.finetune.dataset import DatasetLimits


def _renders(tmp_path):
    renders = tmp_path / "renders"
    renders.mkdir()
    for k in range(2):
        Image.new("RGB", (16, 16), (k * 90, 10, 10)).save(renders / f"r{k}.png")
    (renders / "angles.json").write_text(json.dumps({"r0.png": {"azimuth_deg": 0}, "r1.png": {"azimuth_deg": 90}}))
    return renders


@pytest.mark.parametrize("target", ["cwd", "input", "parent_of_input", "avatar", "foreign", "home"])
def test_build_overwrite_refuses_every_folder_it_did_not_build(tmp_path, monkeypatch, capsys, target) -> None:
    renders = _renders(tmp_path)
    work = tmp_path / "work"
    (work / "keep").mkdir(parents=True)
    (work / "keep" / "precious.txt").write_text("x")
    monkeypatch.chdir(work)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    (tmp_path / "avatar" / "avatar").mkdir(parents=True)
    out = {"cwd": ".", "input": str(renders), "parent_of_input": str(tmp_path), "avatar": str(tmp_path / "avatar"),
           "foreign": str(work / "keep"), "home": str(tmp_path / "home")}[target]
    before = sorted(p for p in tmp_path.rglob("*"))
    code = main(["finetune", "build", "--from-folder", str(renders), "-o", out, "--overwrite"])
    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith("arc2avatar: error:") and "refusing to replace" in err and len(err.strip().splitlines()) == 1
    assert sorted(p for p in tmp_path.rglob("*")) == before  # nothing deleted, nothing left behind


def test_build_overwrite_replaces_its_own_folder_only(tmp_path) -> None:
    renders = _renders(tmp_path)
    limits = DatasetLimits(min_views=1, min_side=1)
    out = build_from_folder(renders, tmp_path / "data" / "a", limits=limits)
    (out / "stale.txt").write_text("old")
    build_from_folder(renders, out, overwrite=True, limits=limits)
    assert not (out / "stale.txt").exists() and (out / "views.json").is_file()
    link = tmp_path / "data" / "link"
    link.symlink_to(out)
    with pytest.raises(InputError, match="symbolic link"):
        build_from_folder(renders, link, overwrite=True, limits=limits)
    assert out.is_dir()


def test_root_is_never_replaceable(tmp_path) -> None:
    with pytest.raises(InputError, match="root|holds"):
        check_replaceable("/", DATASET_KIND)
    mark_owned(tmp_path, DATASET_KIND)
    check_replaceable(tmp_path, DATASET_KIND)  # owned and outside cwd/home: fine
    with pytest.raises(InputError, match="holds input"):
        check_replaceable(tmp_path, DATASET_KIND, [tmp_path / "x" / "in.png"])


def test_a_second_lock_on_one_folder_is_refused_across_processes(tmp_path) -> None:
    script = textwrap.dedent(f"""
        import sys, time
        from arc2avatar._guard import folder_lock
        with folder_lock({str(tmp_path)!r}):
            print("locked", flush=True)
            time.sleep(30)
    """)
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    try:
        assert child.stdout.readline().strip() == "locked"
        with pytest.raises(InputError, match="in use by another arc2avatar run"):
            with folder_lock(tmp_path):
                pass
    finally:
        child.kill()
        child.wait()
    with folder_lock(tmp_path):  # released when its holder died
        pass


def test_output_files_never_land_on_inputs_or_in_a_bundle(tmp_path) -> None:
    bundle = tmp_path / "out" / "avatar"
    bundle.mkdir(parents=True)
    (bundle / "splats.safetensors").write_bytes(b"x")
    with pytest.raises(InputError, match="inside the avatar bundle"):
        check_output_file(bundle / "splats.safetensors", bundles=[bundle])
    with pytest.raises(InputError, match="is the input"):
        check_output_file(bundle / "splats.safetensors", inputs=[bundle / "splats.safetensors"])
    with pytest.raises(InputError, match="is a folder"):
        check_output_file(tmp_path / "out", bundles=[bundle])
    assert check_output_file(tmp_path / "out" / "turntable.mp4", bundles=[bundle]).name == "turntable.mp4"


def _fake_avatar(tmp_path):
    out = tmp_path / "out"
    (out / "avatar").mkdir(parents=True)
    for name in ("avatar/avatar.json", "avatar/splats.safetensors", "avatar.ply", "config.yaml"):
        (out / name).write_text("original")
    return out


def test_a_second_demo_on_a_locked_folder_stops_with_one_line(tmp_path, capsys) -> None:
    out = tmp_path / "demo"
    with folder_lock(out):
        code = main(["demo", "-o", str(out), "--set", "iterations=2", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1 and "in use by another arc2avatar run" in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in out.iterdir()) == []  # nothing of the refused run, and the holder's lock file went


@pytest.mark.parametrize("argv", [
    ["template", "-o", "{out}"],
    ["render", "{out}", "-o", "{out}/avatar/splats.safetensors"],
    ["render", "{out}/avatar", "-o", "{out}/avatar/avatar.json", "--sheet"],
    ["render", "{out}", "-o", "{out}/config.yaml"],
    ["render", "{out}/avatar.ply", "-o", "{out}/avatar.ply"],
    ["viewer", "{out}", "-o", "{out}/avatar/viewer.html"],
    ["viewer", "{out}", "-o", "{out}/avatar.ply"],
])
def test_derived_outputs_never_replace_the_avatars_own_files(tmp_path, capsys, argv) -> None:
    out = _fake_avatar(tmp_path)
    code = main([a.format(out=out) for a in argv])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("arc2avatar: error:") and len(err.strip().splitlines()) == 1, err
    assert all(p.read_text() == "original" for p in out.rglob("*") if p.is_file())
    assert not (out / "avatar" / "viewer.html").exists()


@pytest.mark.parametrize("flag,value", [("--frames", "0"), ("--size", "0"), ("--fps", "0"), ("--polar", "nan")])
def test_render_settings_are_checked_before_loading(tmp_path, capsys, flag, value) -> None:
    out = _fake_avatar(tmp_path)
    assert main(["render", str(out), flag, value]) == 1
    assert "render:" in capsys.readouterr().err


def test_animate_never_writes_over_the_avatars_own_files(tmp_path, capsys) -> None:
    out = _fake_avatar(tmp_path)
    assert main(["animate", str(out), "--preset", "talk", "-o", str(out / "avatar.ply")]) == 1
    assert "avatar.ply" in capsys.readouterr().err
    assert (out / "avatar.ply").read_text() == "original"


@pytest.mark.parametrize("code_name", ["ENOSPC", "EROFS", "EACCES"])
def test_a_full_disk_or_read_only_folder_is_one_line(monkeypatch, capsys, code_name) -> None:
    import errno

    import arc2avatar.avatar.render as render

    def failing(*args, **kwargs):
        raise OSError(getattr(errno, code_name), os.strerror(getattr(errno, code_name)), "out/views.png")

    monkeypatch.setattr(render, "render_avatar", failing)
    assert main(["render", "whatever", "--sheet"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("arc2avatar: error: cannot write out/views.png") and len(err.strip().splitlines()) == 1


def test_the_resume_sweep_removes_every_temporary_file_atomic_path_makes_and_nothing_else(tmp_path) -> None:
    from arc2avatar._io import atomic_path

    left = []
    for name, suffix in (("avatar.ply", ""), ("turntable.mp4", ".mp4")):
        with pytest.raises(KeyboardInterrupt), atomic_path(tmp_path / name, suffix=suffix) as tmp:
            left.append(tmp.name)
            raise KeyboardInterrupt
    for name in left:  # what a killed writer leaves behind: its temporary file
        (tmp_path / name).write_bytes(b"")
    kept = [".keep", "notes.tmp", "turntable.mp4"]
    for name in kept:
        (tmp_path / name).write_bytes(b"x")
    assert sorted(p.name for p in remove_stale_temporaries(tmp_path)) == sorted(left)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(kept)
