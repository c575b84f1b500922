"""The inside of FLAME's mouth (issue 24 item 2; docs/expressions.md, "The inside of the mouth").

No FLAME data ships here: the head is the synthetic FLAME's mouth variant (``testing.flame``:
FLAME's counts and file layout, the lips parted by a slit as FLAME's are, the lower lip skinned
to the jaw), made into an untrained avatar (one splat per template vertex, template colours).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import binary_fill_holes

from arc2avatar.avatar.model import Avatar
from arc2avatar.avatar.rig import FaceRig, apply_expression, setup_for_avatar
from arc2avatar.avatar.template import TemplateConfig, build_head
from arc2avatar.cameras.model import orbit_cameras
from arc2avatar.drive.flame import frontal_embedding
from arc2avatar.drive.landmarks import load_landmark_table
from arc2avatar.errors import InputError
from arc2avatar.head.flame_mouth import inner_lip_loop
from arc2avatar.head.frame import to_world_frame
from arc2avatar.pipeline.oracle import photo_texture
from arc2avatar.testing.flame import synthetic_flame_arrays, synthetic_flame_head
from arc2avatar.testing.photos import photo_avatar

SIZE, RADIUS, FOVY, LOOK_AT_Z = 320, 3.0, 0.7, -0.1
JAW_OPEN = {"jaw": [0.45, 0.0, 0.0]}  # rad: a human jaw opens ≈ 0.4–0.5 rad
GREEN = (0.0, 1.0, 0.0)


@pytest.fixture(scope="module")
def flame_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("flame_mouth") / "flame.npz"
    np.savez(path, **synthetic_flame_arrays(seed=0, mouth=True))
    return path


@pytest.fixture(scope="module")
def avatars(flame_file):
    """The synthetic FLAME avatar with the mouth's inside, and one made as before it (bare skin),
    each with its template as ``setup_for_avatar`` rebuilds it from the bundle's info."""
    made = {"new": photo_avatar(None, None, face_levels=1, flame=flame_file),
            "old": photo_avatar(None, None, face_levels=1, flame=flame_file, flame_mouth=False)}
    return {key: (avatar, setup_for_avatar(avatar, flame=flame_file)) for key, avatar in made.items()}


def _render(rigged, pose, azimuths=(0.0,), face_only: bool = False) -> np.ndarray:
    """(C, SIZE, SIZE, 3) int renders on green; ``face_only``: the face splats alone (without the
    rest of the head, which an open mouth would otherwise show from the inside)."""
    cameras = orbit_cameras(RADIUS, 90.0, torch.tensor(azimuths, dtype=torch.float32), FOVY, SIZE, SIZE,
                            target=torch.tensor([[0.0, 0.0, LOOK_AT_Z]]))
    posed = apply_expression(*rigged, None, pose)
    if face_only:
        posed = Avatar(posed.splats.select(posed.splats.face_mask.nonzero().squeeze(-1)), posed.template)
    return (posed.render_cameras(cameras, GREEN) * 255).round().to(torch.uint8).numpy().astype(int)


def _is_background(image: np.ndarray) -> np.ndarray:
    return (image[..., 1] > 200) & (image[..., 0] < 60) & (image[..., 2] < 60)


def _background_share(image: np.ndarray) -> float:
    """The share of the silhouette (its holes filled) where the green background shows."""
    hole = _is_background(image)
    filled = binary_fill_holes(~hole)
    return float((filled & hole).sum() / filled.sum())


def test_the_mouth_is_the_lip_loop_that_opens_with_the_jaw_whatever_the_vertex_order():
    arrays = synthetic_flame_arrays(seed=0, mouth=True)
    world = to_world_frame(torch.from_numpy(arrays["v_template"]))[0].numpy()
    faces, jaw = arrays["f"].astype(np.int64), arrays["weights"][:, 2]
    loop = inner_lip_loop(world, faces, jaw)
    assert loop is not None and sorted(jaw[loop].round(6)) == [0.0] * 7 + [1.0] * 7  # upper lip, lower lip
    assert world[loop, 1].min() > 0.6  # on the front of the face
    # The same mesh with its vertices renumbered: the same loop (no vertex id is built in).
    order = np.random.default_rng(0).permutation(len(world))
    renumber = np.argsort(order)  # old id -> new id
    again = inner_lip_loop(world[order], renumber[faces], jaw[order])
    assert again is not None and set(order[again]) == set(loop)
    # Lips that do not part (the plain synthetic FLAME has no opening): no inside, FLAME's arrays as they are.
    plain = synthetic_flame_head(seed=0)
    assert plain.num_vertices == 5023 and "mouth_interior" not in plain.regions


def test_the_inside_is_sized_to_the_mouth_and_the_jaw_opens_the_lower_parts_rigidly():
    head = synthetic_flame_head(seed=0, mouth=True)
    regions = head.regions
    assert head.num_vertices > 5023 and bool(head.face_mask[5023:].all())  # FLAME's ids first; bound face splats
    assert {"oral_cavity", "upper_teeth", "lower_teeth", "tongue"} <= set(regions)
    loop_x = head.vertices[:5023][torch.from_numpy(_loop(head))][:, 0]
    mouth_width = float(loop_x.max() - loop_x.min())
    teeth_width = float(np.ptp(head.vertices[regions["upper_teeth"], 0].numpy()))
    assert 0.6 * mouth_width < teeth_width < mouth_width, (teeth_width, mouth_width)
    assert float(head.expression_basis[regions["mouth_interior"]].abs().max()) == 0.0

    posed = head.deform(pose={"jaw": torch.tensor(JAW_OPEN["jaw"])})
    upper = regions["upper_teeth"]
    assert torch.equal(posed[upper], head.vertices[upper])  # fixed to the skull
    for part in ("lower_teeth", "tongue"):
        before, after = head.vertices[regions[part]].double(), posed[regions[part]].double()
        assert torch.allclose(torch.cdist(before, before), torch.cdist(after, after), atol=1e-5)  # rigid
        assert abs(_rotation_angle(before, after) - 0.45) < 1e-4, part  # the jaw's turn
        assert float((after - before)[:, 2].mean()) < -0.1  # down: the mouth opens
    cavity = regions["oral_cavity"]
    moved = (posed[cavity] - head.vertices[cavity]).norm(dim=-1)
    assert float(moved.min()) == 0.0 and float(moved.max()) > 0.2  # its roof stays, its floor follows the jaw


def test_neither_the_photo_nor_the_drive_landmarks_land_on_the_inside():
    """The photo's lips would paint a face on the teeth (``pipeline.oracle.photo_texture``); the
    landmarks carried onto FLAME must sit on the skin, not on the teeth seen through the lips."""
    head = synthetic_flame_head(seed=0, mouth=True)
    inside = head.regions["mouth_interior"]
    weight = photo_texture(head, head.vertices, np.full((64, 64, 3), 200, np.uint8), None).uvw[:, 2]
    assert float(weight[inside].abs().max()) == 0.0 and float(weight[~inside].max()) == 1.0
    embedding = frontal_embedding(head, np.asarray(load_landmark_table()["positions"], dtype=np.float64))
    assert not bool(inside[head.faces[torch.from_numpy(embedding.face_index)]].any())


def _loop(head) -> np.ndarray:
    weights = head.pose_fn.weights[:5023, 2].numpy()
    return inner_lip_loop(head.vertices[:5023].double().numpy(), head.faces[:9976].numpy(), weights)


def _rotation_angle(before: torch.Tensor, after: torch.Tensor) -> float:
    """The angle (radians) of the rotation that best maps ``before`` onto ``after`` (Kabsch)."""
    a, b = before - before.mean(0), after - after.mean(0)
    u, _, vt = torch.linalg.svd(a.T @ b)
    rotation = vt.T @ u.T
    return float(torch.arccos(((torch.trace(rotation) - 1) / 2).clamp(-1, 1)))


def test_an_opened_jaw_shows_teeth_and_a_dark_mouth_never_the_background(avatars):
    """A 0.45 rad jaw, front and ±30°. The face splats alone (the rest of the head can only cover
    more) let no background through the face (< 0.5 % of its silhouette; measured 0 %), where the
    bare skin of avatars made before shows it through the open lips (measured 7.5 %, 4.1 %, 4.0 %).
    The front view's opened mouth holds dark (the cavity) and light (the teeth) pixels (measured
    35 % and 2.7 % of the mouth's box; 0 and 0 on the bare skin, whose hollow head shows skin)."""
    azimuths = (0.0, -30.0, 30.0)
    for key, bound in (("new", (0.0, 0.005)), ("old", (0.02, 1.0))):
        shares = [_background_share(image) for image in _render(avatars[key], JAW_OPEN, azimuths, True)]
        assert all(bound[0] <= share < bound[1] for share in shares), (key, shares)

    open_mouth = _render(avatars["new"], JAW_OPEN)[0]
    assert _background_share(open_mouth) < 0.005
    # The opened mouth: the box of the pixels inside the face that opening the jaw changed.
    neutral = _render(avatars["new"], None)[0]
    changed = (np.abs(open_mouth - neutral).sum(axis=-1) > 60) & ~_is_background(neutral) & ~_is_background(open_mouth)
    ys, xs = np.nonzero(changed)
    box = np.s_[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    dark, light = _shades(open_mouth[box])
    assert dark > 0.15 and light > 0.01, (dark, light)
    old_dark, old_light = _shades(_render(avatars["old"], JAW_OPEN)[0][box])
    assert old_dark < 0.01 and old_light < 0.01, (old_dark, old_light)


def _shades(pixels: np.ndarray) -> tuple[float, float]:
    """Shares of dark (RGB sum < 150) and light (every channel > 150: the skin's blue is 133) pixels."""
    return float((pixels.sum(axis=-1) < 150).mean()), float((pixels.min(axis=-1) > 150).mean())


def test_closed_lips_hide_the_inside(avatars):
    new, old = (_render(avatars[key], None)[0] for key in ("new", "old"))
    assert np.abs(new - old).max() <= 8  # measured: 3 levels of 255


def test_bundles_record_the_inside_and_old_ones_express_exactly_as_before(avatars, flame_file, tmp_path):
    new, old = avatars["new"][0], avatars["old"][0]
    assert new.template["mouth"] == 1 and "mouth" not in old.template
    old.save(tmp_path / "old")
    loaded = Avatar.load(tmp_path / "old")
    setup = setup_for_avatar(loaded, flame=flame_file)
    assert setup.base.num_vertices == 5023 and "mouth_interior" not in setup.base.regions
    bare = build_head(TemplateConfig(kind="flame", flame_path=str(flame_file), face_levels=1, rest_levels=0),
                      flame_mouth=False)
    expression, pose = torch.linspace(-1, 1, 100), {"jaw": [0.3, 0.0, 0.0]}
    expected = FaceRig(old.splats, bare).pose(expression, pose)
    assert torch.equal(apply_expression(loaded, setup, expression, pose).splats.means, expected.means)

    new.save(tmp_path / "new")
    assert setup_for_avatar(Avatar.load(tmp_path / "new"), flame=flame_file).base.num_vertices > 5023
    future = Avatar(new.splats, template={**new.template, "mouth": 2})
    with pytest.raises(InputError, match="template.mouth=2"):
        setup_for_avatar(future, flame=flame_file)
