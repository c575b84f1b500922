"""Presets are data, and visible: ``configs/<preset>.yaml`` holds each one resolved, and the files
agree with the code (regenerate with ``python -m arc2avatar.pipeline.presets configs/``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from arc2avatar.confkit import to_dict
from arc2avatar.pipeline.presets import PRESETS, preset_yaml, resolve_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_committed_preset_file_matches_the_code(name: str) -> None:
    path = CONFIGS / f"{name}.yaml"
    assert path.is_file(), f"{path} is missing: run python -m arc2avatar.pipeline.presets configs/"
    assert path.read_text(encoding="utf-8") == preset_yaml(name), (
        f"{path} is stale: run python -m arc2avatar.pipeline.presets configs/")


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_file_reproduces_the_preset(name: str) -> None:
    assert to_dict(resolve_config(None, CONFIGS / f"{name}.yaml")) == to_dict(resolve_config(name))


def test_every_file_in_configs_is_a_preset() -> None:
    assert {p.stem for p in CONFIGS.glob("*.yaml")} == set(PRESETS)


def test_photo_demo_is_cpu_smoke_with_a_finer_face() -> None:
    smoke, photo = to_dict(resolve_config("cpu-smoke")), to_dict(resolve_config("photo-demo"))
    assert photo["template"]["face_levels"] == 1 > smoke["template"]["face_levels"]
    assert photo["iterations"] == 600 and photo["face_phase_fraction"] == 0.5
    assert photo["resolution"] == smoke["resolution"] == 128
