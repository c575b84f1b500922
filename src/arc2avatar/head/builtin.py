"""The built-in head template ``builtin-v3`` (docs/method.md §3 "Built-in template"; paper §3.4, E.2).

A licence-free stand-in for FLAME, generated deterministically by our own code, no data file:
a smooth, closed, manifold, outward-oriented triangle mesh of a bald mannequin head with neck,
brow ridge, eye sockets with eyeballs, nose, lips, chin, cheeks and ears (the skin); inside it
a mouth (oral cavity, upper and lower teeth, tongue: ``_builtin_mouth``), separate open
components that belong to the face; a face mask; named regions; ten expression blendshapes of
human range (docs/expressions.md); per-vertex mean colours. Same :class:`HeadModel` interface
as FLAME.

``builtin-v1`` (:data:`BUILTIN_V1`: the same skin, weaker blendshapes, no mouth inside) and
``builtin-v2`` (:data:`BUILTIN_V2`: human range and the mouth inside, but no lid shells and a jaw
that folded the cheeks) are still built for avatars that were made on them (their bundles name
them).

World frame (``arc2avatar.cameras.model``): z up, the face looks toward +y, symmetric in x,
bounding-box centre at the origin, crown to the bottom of the neck = ``config.height``.
Left/right names are the subject's: the subject's left is world −x.

What is hand-written and why: the sculpt (``_builtin_shape``) and the regions, colours and
expressions (``_builtin_fields``) are the template's design, which no library provides. The
sphere triangulation is scipy's convex hull; meshes are checked with trimesh in the tests.

>>> head = builtin_head()
>>> head.deform({"jaw_open": 1.0, "smile": 0.5}).shape
torch.Size([5970, 3])
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from arc2avatar.head._builtin_fields import (
    EXPRESSION_NAMES,
    ExpressionConfig,
    PaletteConfig,
    RegionConfig,
    expression_basis,
    regions,
    vertex_colours,
)
from arc2avatar.head._builtin_fields import jaw_motion, lip_seam
from arc2avatar.head._builtin_lids import SIDE_NAMES, LidConfig, lid_parts, meeting_elevation
from arc2avatar.head._builtin_mouth import PART_NAMES, MouthConfig, mouth_parts
from arc2avatar.head._builtin_shape import ShapeConfig, mesh_head
from arc2avatar.head.model import HeadModel

BUILTIN_NAME = "builtin-v3"
BUILTIN_V2_NAME = "builtin-v2"
BUILTIN_V1_NAME = "builtin-v1"


@dataclass(frozen=True)
class BuiltinHeadConfig:
    """How the built-in head is generated.

    Attributes:
        height: crown to the bottom of the neck, world units (2.0: the orbit cameras of
            docs/method.md §5, r ≈ 5.6 and fovy ≈ 0.5 rad, frame it).
        shape: sculpt and meshing (``shape.num_vertices`` is the exact vertex count).
        regions: face-mask and region geometry.
        palette: mean colours.
        expressions: blendshape design.
        mouth: the inside of the mouth (``None``: none, as ``builtin-v1``).
        lids: the lid shells that cover a blinking eye (``None``: none, as ``builtin-v1``).
        name: the template's name, stored in avatar bundles.
    """

    height: float = 2.0
    shape: ShapeConfig = field(default_factory=ShapeConfig)
    regions: RegionConfig = field(default_factory=RegionConfig)
    palette: PaletteConfig = field(default_factory=PaletteConfig)
    expressions: ExpressionConfig = field(default_factory=ExpressionConfig)
    mouth: MouthConfig | None = field(default_factory=MouthConfig)
    lids: LidConfig | None = field(default_factory=LidConfig)
    name: str = BUILTIN_NAME


# The first built-in template: the same skin, the blendshapes of before issue 24, no mouth inside.
BUILTIN_V1 = BuiltinHeadConfig(expressions=ExpressionConfig.v1(), mouth=None, lids=None, name=BUILTIN_V1_NAME)
# The second: human-range blendshapes and a mouth inside, the jaw about a hinge in front of the
# ears (its cheeks folded at 0.45 rad), the blink's opening sunk under the skin, no lid shells.
BUILTIN_V2 = BuiltinHeadConfig(expressions=ExpressionConfig.v2(), mouth=MouthConfig.v2(), lids=None, name=BUILTIN_V2_NAME)
BUILTIN_VERSIONS = {BUILTIN_NAME: BuiltinHeadConfig(), BUILTIN_V2_NAME: BUILTIN_V2, BUILTIN_V1_NAME: BUILTIN_V1}


def builtin_head(config: BuiltinHeadConfig = BuiltinHeadConfig()) -> HeadModel:
    """Generate the built-in head template (deterministic: equal configs give equal tensors).

    Returns a :class:`HeadModel` named ``config.name`` with ``vertices`` (V, 3) float32,
    ``faces`` (F, 3) int64 counter-clockwise seen from outside (the mouth's inside: facing into
    the mouth), ``face_mask`` (V,) bool, ``regions`` (``face``, ``eyes``, ``left_eye``,
    ``right_eye``, ``lips``, ``upper_lip``, ``lower_lip``, ``nose``, ``brows``, ``left_brow``,
    ``right_brow``, ``ears``, ``left_ear``, ``right_ear``, ``neck``, ``scalp``, ``skin``,
    ``off_lip_seam`` (all but the skin that rolls into the opening mouth; ``builtin-v2``); with a
    mouth also ``mouth_interior``, ``oral_cavity``, ``upper_teeth``, ``lower_teeth``,
    ``tongue``), ``expression_basis`` (V, 3, 10) float32 in world units per unit weight for
    :data:`EXPRESSION_NAMES` (non-zero only on the face mask) and ``vertex_colors`` (V, 3)
    float32 in [0, 1]. The skin's vertices come first (5000 by default), then the mouth's. No
    joints (``pose_fn`` is None).
    """
    sculpt = config.shape.sculpt
    points, faces = mesh_head(config.shape)  # (V, 3) sculpt frame, (F, 3)
    masks = regions(points, sculpt, config.regions)
    colours = vertex_colours(points, sculpt, config.regions, config.palette)
    basis = expression_basis(points, sculpt, config.regions, config.expressions)  # (V, 3, E)
    masks["skin"] = np.ones(len(points), dtype=bool)
    if config.expressions.jaw_tuck:
        # Stored as its complement: upsampled regions keep a vertex only if all its parents are in
        # the region, so a vertex between the seam and the lip's front counts as seam.
        seam = lip_seam(points, sculpt, config.expressions)
        masks["off_lip_seam"] = seam < 0.05
    if config.mouth is not None:
        mouth = mouth_parts(sculpt, config.mouth)
        count = len(mouth.points)
        mouth_basis = np.zeros((count, 3, len(EXPRESSION_NAMES)))
        mouth_basis[:, :, EXPRESSION_NAMES.index("jaw_open")] = jaw_motion(mouth.points, config.expressions) * mouth.jaw_share[:, None]
        masks = {name: np.concatenate([mask, np.zeros(count, dtype=bool)]) for name, mask in masks.items()}
        masks["face"][len(points):] = True
        masks["mouth_interior"] = np.concatenate([np.zeros(len(points), dtype=bool), np.ones(count, dtype=bool)])
        for label, part in PART_NAMES.items():
            masks[part] = np.concatenate([np.zeros(len(points), dtype=bool), mouth.labels == label])
        faces = np.concatenate([faces, mouth.faces + len(points)])
        points = np.concatenate([points, mouth.points])
        colours = np.concatenate([colours, mouth.colours])
        basis = np.concatenate([basis, mouth_basis])

    if config.lids is not None:
        points, faces, colours, basis, masks = _add_lids(config, points, faces, colours, basis, masks)

    skin = points[masks["skin"]]
    lo, hi = skin.min(axis=0), skin.max(axis=0)
    scale = config.height / (hi[2] - lo[2])
    world = (points - 0.5 * (lo + hi)) * scale
    return HeadModel(
        name=config.name,
        vertices=torch.from_numpy(world.astype(np.float32)),
        faces=torch.from_numpy(faces.astype(np.int64)),
        face_mask=torch.from_numpy(masks["face"].copy()),
        regions={name: torch.from_numpy(mask.copy()) for name, mask in masks.items()},
        expression_names=list(EXPRESSION_NAMES),
        expression_basis=torch.from_numpy((basis * scale).astype(np.float32)),
        vertex_colors=torch.from_numpy(colours.astype(np.float32)),
    )


def _add_lids(config: BuiltinHeadConfig, points, faces, colours, basis, masks):
    """Append the lid shells (``_builtin_lids``) as face vertices whose blink closes them."""
    e, r = config.expressions, config.regions
    lids = lid_parts(config.shape.sculpt, config.lids, lambda azimuth: meeting_elevation(
        azimuth, config.shape.sculpt, r.eye_half_width, r.eye_half_height, e.blink_closed_fraction,
        e.blink_opening_scale, e.blink_width_scale))
    count = len(lids.points)
    lid_basis = np.zeros((count, 3, len(EXPRESSION_NAMES)))
    for side, name in SIDE_NAMES.items():
        blink = EXPRESSION_NAMES.index("blink_left" if name.startswith("left") else "blink_right")
        lid_basis[lids.sides == side, :, blink] = lids.closing[lids.sides == side]
    masks = {name: np.concatenate([mask, np.zeros(count, dtype=bool)]) for name, mask in masks.items()}
    masks["face"][len(points):] = True
    masks["eyelids"] = np.concatenate([np.zeros(len(points), dtype=bool), np.ones(count, dtype=bool)])
    masks["eyelid_lash"] = np.concatenate([np.zeros(len(points), dtype=bool), lids.lash])
    for side, name in SIDE_NAMES.items():
        masks[name] = np.concatenate([np.zeros(len(points), dtype=bool), lids.sides == side])
    return (np.concatenate([points, lids.points]), np.concatenate([faces, lids.faces + len(points)]),
            np.concatenate([colours, lids.colours]), np.concatenate([basis, lid_basis]), masks)


__all__ = ["BUILTIN_NAME", "BUILTIN_V1", "BUILTIN_V1_NAME", "BUILTIN_V2", "BUILTIN_V2_NAME", "BUILTIN_VERSIONS", "BuiltinHeadConfig", "builtin_head"]
