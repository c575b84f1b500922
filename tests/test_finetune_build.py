"""Claims about the dataset builders (from a saved avatar, from a folder of renders)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from arc2avatar.cli.main import main
from arc2avatar.errors import InputError
from arc2avatar.finetune.build import AvatarRenderConfig, build_from_avatar, build_from_folder
from arc2avatar.finetune.dataset import DatasetLimits, check_dataset

LIMITS = DatasetLimits(min_views=4, min_side=16)


def _avatar_dir(tmp_path):
    from arc2avatar.avatar.model import Avatar
    from arc2avatar.splats.model import GaussianSplats

    g = torch.Generator().manual_seed(0)
    n = 200
    splats = GaussianSplats({
        "means": torch.randn(n, 3, generator=g) * 0.3,
        "f_dc": torch.randn(n, 3, generator=g),
        "log_scales": torch.full((n, 3), -3.0),
        "opacity_logits": torch.full((n,), 2.0),
        "quats": torch.nn.functional.normalize(torch.randn(n, 4, generator=g), dim=-1),
    })
    out = tmp_path / "avatar"
    Avatar(splats).save(out)
    vec = np.random.default_rng(0).normal(size=512)
    np.save(out / "identity.npy", (vec / np.linalg.norm(vec)).astype(np.float32))
    return out


def test_avatar_is_rendered_into_a_valid_identity_with_its_embedding(tmp_path) -> None:
    avatar = _avatar_dir(tmp_path)
    config = AvatarRenderConfig(views_per_ring=(4, 2), elevations_deg=(0.0, 15.0), size=16)
    out = build_from_avatar(avatar, tmp_path / "data" / "a", config)
    report = check_dataset(tmp_path / "data", LIMITS)
    assert report.ok, report.summary()
    views = json.loads((out / "views.json").read_text())["views"]
    assert [(v["azimuth_deg"], v["elevation_deg"]) for v in views] == [
        (0.0, 0.0), (90.0, 0.0), (180.0, 0.0), (-90.0, 0.0), (0.0, 15.0), (180.0, 15.0)]
    assert np.array_equal(np.load(out / "id.npy"), np.load(avatar / "identity.npy"))
    frontal = np.asarray(Image.open(out / "frontal.png"))
    assert np.array_equal(frontal, np.asarray(Image.open(out / "views/000.png")))
    assert frontal.std() > 1  # the splats are visible, not just background
    assert AvatarRenderConfig().angles().__len__() == 26
    with pytest.raises(InputError, match="already exists"):
        build_from_avatar(avatar, out, config)


def test_folder_of_renders_with_a_sidecar_becomes_a_valid_identity(tmp_path) -> None:
    renders = tmp_path / "renders"
    renders.mkdir()
    angles = {}
    for k, az in enumerate([10.0, 100.0, 190.0, 280.0, 350.0]):
        Image.new("RGB", (16, 16), (k * 40, 0, 0)).save(renders / f"img_{k}.png")
        angles[f"img_{k}.png"] = {"azimuth_deg": az}
    (renders / "angles.json").write_text(json.dumps(angles))
    assert main(["finetune", "build", "--from-folder", str(renders), "-o", str(tmp_path / "d" / "b")]) == 0
    report = check_dataset(tmp_path / "d", LIMITS)
    assert report.ok, report.summary()
    assert [v.azimuth_deg for v in report.identities[0].views] == [10.0, 100.0, -170.0, -80.0, -10.0]
    # the frontal image is the render nearest azimuth 0 (10° and −10° tie: the first wins)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "d/b/frontal.png")), np.asarray(Image.open(renders / "img_0.png")))


def test_sidecar_listing_a_missing_render_is_refused_and_nothing_is_written(tmp_path) -> None:
    renders = tmp_path / "renders"
    renders.mkdir()
    Image.new("RGB", (16, 16)).save(renders / "a.png")
    (renders / "angles.json").write_text(json.dumps({"a.png": {"azimuth_deg": 0}, "gone.png": {"azimuth_deg": 90}}))
    with pytest.raises(InputError, match="gone.png"):
        build_from_folder(renders, tmp_path / "out" / "x")
    assert not (tmp_path / "out" / "x").exists()
    assert not [p for p in (tmp_path / "out").iterdir()] if (tmp_path / "out").exists() else True
