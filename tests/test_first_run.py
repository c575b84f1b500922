"""Claims of issue 20 (first-run friction): a thread count that survives a busy machine, the
CPU-only install line, progress bars and a resumable Ctrl-C message, one clear offline message
from ``weights download``, 512² outputs of a small run, self-describing ``--help`` and early
name checks in ``express``, and the detection rate beside the match rate in ``evaluate``.
(The pytest ≥ 9.2 item is test_prior_models.py's guidance test, which compares floats now.)"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import numpy as np
import pytest
import torch

from arc2avatar._threads import ThreadPolicy, choose_threads
from arc2avatar.cli.main import main
from arc2avatar.avatar.template import TemplateConfig
from arc2avatar.avatar.model import Avatar

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.fixture(scope="module")
def avatar_dir(tmp_path_factory) -> Path:
    """An untrained built-in-template avatar folder (the bundle only; no optimisation)."""
    from arc2avatar.avatar.template import build_head
    from arc2avatar.pipeline.meanface import initial_splats

    setup = build_head(TemplateConfig(face_levels=0, rest_levels=0))
    folder = tmp_path_factory.mktemp("first-run") / "avatar"
    Avatar(initial_splats(setup), template=dict(setup.info)).save(folder)
    return folder


# ----------------------------------------------------------------- 2. threads
def test_thread_count_is_half_the_cores_unless_the_user_chose_one(monkeypatch):
    assert choose_threads(None, {}, cores=2).threads == 1          # a 2-core machine: 1 (not 2)
    assert choose_threads(None, {}, cores=16).threads == 8
    assert choose_threads(None, {}, cores=128).threads == ThreadPolicy().max_threads
    assert choose_threads(None, {"OMP_NUM_THREADS": "3"}, cores=16).threads is None   # torch read it already
    assert choose_threads(None, {"ARC2AVATAR_THREADS": "5", "OMP_NUM_THREADS": "3"}, cores=16).threads == 5
    assert choose_threads(2, {"ARC2AVATAR_THREADS": "5"}, cores=16).threads == 2
    before = torch.get_num_threads()
    try:
        assert main(["--threads", "1", "weights", "path"]) == 0
        assert torch.get_num_threads() == 1
        monkeypatch.setenv("ARC2AVATAR_THREADS", "many")
        assert main(["weights", "path"]) == 1                      # one line, not a traceback
    finally:
        torch.set_num_threads(before)


# ----------------------------------------------------------------- 3. README
def test_readme_gives_the_cpu_only_torch_install_line():
    text = README.read_text()
    assert "pip install torch --index-url https://download.pytorch.org/whl/cpu" in text


# ----------------------------------------------------------------- 4. progress bars, Ctrl-C
def test_render_animate_and_evaluate_show_progress_bars(avatar_dir, tmp_path, capsys, monkeypatch):
    from arc2avatar.evaluate.run import EvaluateConfig, evaluate
    from arc2avatar.evaluate.views import EvalViews
    from arc2avatar.avatar.render import render_avatar
    from arc2avatar.animate.render import AnimationConfig, animate

    render_avatar(avatar_dir, tmp_path / "t.mp4", size=32, frames=3, progress=True)
    err = capsys.readouterr().err
    assert "turntable" in err and "3/3" in err
    render_avatar(avatar_dir, tmp_path / "v.png", turntable=False, size=32, progress=True)
    assert "16/16" in capsys.readouterr().err
    render_avatar(avatar_dir, tmp_path / "quiet.mp4", size=32, frames=3, progress=False)
    assert capsys.readouterr().err == ""

    (tmp_path / "seq.json").write_text(json.dumps({"fps": 10, "frames": [{"smile": 0.2}, {"smile": 0.4}]}))
    animate(avatar_dir, tmp_path / "a.mp4", sequence=tmp_path / "seq.json", config=AnimationConfig(size=32),
            progress=True)
    err = capsys.readouterr().err
    assert "animate" in err and "2/2" in err

    _fake_recognizer(monkeypatch, faces=[True, True])
    photo = _reference_photo(tmp_path)
    config = EvaluateConfig(views=EvalViews(azimuth_min_deg=0.0, azimuth_max_deg=0.0, polar_deg=(90.0,), size=64),
                            fid_mode="off", expressions=None)
    evaluate(avatar_dir, [photo], tmp_path / "report", config, progress=True)
    err = capsys.readouterr().err
    assert "evaluate" in err and "4/4" in err                       # render, 1 recogniser, FID/KID, expressions


def test_ctrl_c_names_the_checkpoint_and_the_resume_command(tmp_path, capsys, monkeypatch):
    from arc2avatar.pipeline import api
    from arc2avatar.pipeline.trainer import TrainingInterrupted

    out = tmp_path / "my out"
    checkpoint = out / "checkpoint.pt"

    def interrupted(*args, **kwargs):
        raise TrainingInterrupted("interrupted", checkpoint=checkpoint, iteration=7)

    monkeypatch.setattr(api, "demo", interrupted)
    assert main(["demo", "-o", str(out), "--set", "iterations=9", "--no-progress"]) == 130
    err = capsys.readouterr().err
    assert f"interrupted at iteration 7; checkpoint {checkpoint} written" in err
    assert f"continue with: arc2avatar demo -o '{out}' --set iterations=9 --no-progress --resume" in err

    def before_checkpoint(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(api, "demo", before_checkpoint)
    assert main(["demo", "-o", str(out), "--no-progress"]) == 130
    assert "nothing to resume; the same command starts over" in capsys.readouterr().err
    out.mkdir()
    checkpoint.write_bytes(b"")                                      # a periodic checkpoint, then a second Ctrl-C
    assert main(["demo", "-o", str(out), "--no-progress"]) == 130
    assert f"the last checkpoint is {checkpoint}; continue with: arc2avatar demo -o '{out}' --no-progress --resume" \
        in capsys.readouterr().err


# ----------------------------------------------------------------- 5. weights download offline
def _refused_endpoint() -> str:
    """A loopback port nothing listens on (bound, then closed): connections are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_offline_download_says_so_once_with_the_copy_by_hand_route(tmp_path, capsys, monkeypatch):
    import huggingface_hub
    from huggingface_hub import constants

    endpoint = _refused_endpoint()
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(constants, "ENDPOINT", endpoint)
    calls = []
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda *a, **k: calls.append(a))

    assert main(["weights", "download", "--to", str(tmp_path / "w"), "--only", "detector", "identity"]) == 2
    err = capsys.readouterr().err
    assert calls == []                                               # no request, no retries
    assert err.count("no network") == 1 and "Connection refused" in err
    assert f"{endpoint}/FoivosPar/Arc2Face/resolve/" in err and "arcface.onnx" in err
    assert str(tmp_path / "w" / "models" / "antelopev2" / "scrfd_10g_bnkps.onnx") in err
    assert "arc2avatar demo" in err and "arc2avatar weights download" not in err


def test_a_connection_error_during_a_download_gives_the_same_message_after_one_file(tmp_path, monkeypatch):
    import huggingface_hub

    from arc2avatar.errors import MissingWeightsError
    from arc2avatar.weights import resolver

    calls = []

    def no_route(*args, **kwargs):
        calls.append(args)
        raise RuntimeError("the Hub client gave up") from ConnectionResetError("connection reset by peer")

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(resolver, "probe_hub", lambda *a, **k: None)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", no_route)
    with pytest.raises(MissingWeightsError, match="no network") as info:
        resolver.download_weights(resolver.WeightsConfig(), tmp_path, {"detector", "identity"})
    assert len(calls) == 1 and "arc2avatar demo" in str(info.value)


# ----------------------------------------------------------------- 6. output size
def test_a_small_run_writes_its_views_and_turntable_at_outputs_size(avatar_dir, tmp_path):
    import imageio.v3 as iio
    from PIL import Image

    from arc2avatar.pipeline.api import _finish
    from arc2avatar.avatar.rig import setup_for_avatar
    from arc2avatar.pipeline.presets import resolve_config

    assert resolve_config("cpu-smoke", None, []).outputs.size == 512   # trains at 128², shows 512²
    config = resolve_config("cpu-smoke", None, ["resolution=32", "outputs.size=48", "view_rings.turntable_frames=2"])
    avatar = Avatar.load(avatar_dir)
    files = _finish(tmp_path, avatar, config, {}, setup_for_avatar(avatar))
    with Image.open(files["sheet"]) as sheet:
        width, height = sheet.size                                   # 16 test views, 8 per row, thin gutters
    gutter = (width - 8 * 48) / 9
    assert gutter == (height - 2 * 48) / 3 and 0 <= gutter < 8
    assert iio.imread(files["video"], index=0).shape[:2] == (48, 48)


# ----------------------------------------------------------------- 7. --help and express names
def test_help_describes_commands_and_express_rejects_a_misspelt_name_before_building(avatar_dir, tmp_path, capsys,
                                                                                       monkeypatch):
    from arc2avatar.animate import express as expressions

    for command in ("render", "animate", "express"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = capsys.readouterr().out
        assert text.split("\n\n")[1].strip(), command                # a description under the usage
    with pytest.raises(SystemExit):
        main(["express", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "jaw_open, smile, blink_left" in text and "FLAME file" in text

    def no_template(*args, **kwargs):
        raise AssertionError("the template was built before the names were checked")

    monkeypatch.setattr(expressions, "setup_for_avatar", no_template)
    assert main(["express", str(avatar_dir), "--set", "smiel=0.8", "-o", str(tmp_path / "x")]) == 1
    err = capsys.readouterr().err
    assert "unknown expression name(s) smiel" in err and "did you mean 'smiel' → 'smile'" in err
    assert not (tmp_path / "x").exists()


# ----------------------------------------------------------------- 8. detection rate beside match rate
class _FakeRecognizer:
    """Finds a face in the images of ``faces`` (in call order); every embedding the same."""

    name, metric, threshold, guidance = "fake", "euclidean", 0.6, False

    def __init__(self, faces: list[bool]) -> None:
        self.faces = list(faces)

    def align(self, image):
        from arc2avatar.evaluate.recognizers import AlignedFace

        if not self.faces.pop(0):
            return None
        return AlignedFace(np.zeros((4, 4, 3), np.uint8), np.array([0, 0, 4, 4], np.float32), 1.0, 1)

    def embed(self, faces):
        return np.zeros((len(faces), 2), np.float32)


def _fake_recognizer(monkeypatch, faces: list[bool]) -> None:
    from arc2avatar.evaluate import run

    monkeypatch.setattr(run, "load_recognizers", lambda *a, **k: [_FakeRecognizer(faces)])


def _reference_photo(tmp_path: Path) -> Path:
    from PIL import Image

    path = tmp_path / "ref.png"
    Image.fromarray(np.full((64, 64, 3), 200, np.uint8)).save(path)
    return path


def test_evaluate_reports_the_detection_rate_beside_the_match_rate(avatar_dir, tmp_path, capsys, monkeypatch):
    _fake_recognizer(monkeypatch, faces=[True, False, True, False])  # the reference, then 3 views: 1 face
    report_dir = tmp_path / "report"
    code = main(["evaluate", str(avatar_dir), "--refs", str(_reference_photo(tmp_path)), "--report", str(report_dir),
                 "--size", "64", "--azimuth-max", "30", "--azimuth-step", "30", "--polar", "90", "--fid", "off",
                 "--no-expressions", "--no-progress"])
    assert code == 0
    out = capsys.readouterr().out
    assert "faces found in 1/3 (33%) views; match rate 1.00 of those, 0.33 of all views" in out
    section = json.loads((report_dir / "report.json").read_text())["identity"][0]
    assert section["detection_rate"] == pytest.approx(1 / 3) and section["match_rate"] == 1.0
    summary = (report_dir / "summary.md").read_text()
    assert "| faces found | match rate (views with a face) | match rate (all views) |" in summary
    assert "| 1/3 (33%) | 1.00 | 0.33 |" in summary
