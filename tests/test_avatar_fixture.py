"""Avatar folders written by arc2avatar 0.1.0 (before the product layer moved out of the
optimiser) still load, render and express exactly as they did.

``tests/fixtures/avatar-v0.1.0`` was written by that version's ``Avatar.save`` (a template avatar of
the built-in head, thinned to 878 splats); ``expected-renders.npz`` holds its renders at that time.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import arc2avatar

FIXTURE = Path(__file__).parent / "fixtures" / "avatar-v0.1.0"


@pytest.fixture(scope="module")
def expected() -> dict[str, np.ndarray]:
    with np.load(FIXTURE / "expected-renders.npz") as data:
        return {k: data[k] for k in data.files}


def test_v0_1_folder_renders_as_it_did(expected: dict[str, np.ndarray]) -> None:
    avatar = arc2avatar.Avatar.load(FIXTURE)
    assert avatar.template["kind"] == "builtin"
    images = avatar.render(azimuths_deg=[0, 60], size=64).numpy()
    assert np.abs(images - expected["neutral"]).max() < 1e-4


def test_v0_1_folder_expresses_as_it_did(expected: dict[str, np.ndarray]) -> None:
    from arc2avatar.avatar.rig import apply_expression, setup_for_avatar

    avatar = arc2avatar.Avatar.load(FIXTURE)
    smiling = apply_expression(avatar, setup_for_avatar(avatar), {"smile": 0.8, "jaw_open": 0.5})
    images = smiling.render(azimuths_deg=[0, 60], size=64).numpy()
    assert np.abs(images - expected["smile_0p8_jaw_0p5"]).max() < 1e-4
    assert np.abs(images - expected["neutral"]).max() > 0.1  # the expression moved the face


def test_v0_1_ply_alone_loads_without_binding() -> None:
    avatar = arc2avatar.Avatar.load(FIXTURE / "avatar.ply")
    assert avatar.splats.means.shape == (878, 3)
    assert avatar.template == {}
