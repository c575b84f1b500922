"""Regions, colours and expression blendshapes of the built-in head, as smooth analytic fields.

Written by hand: these are the template's design (where the eyes are, how a smile moves the
mouth corners), not an algorithm any library offers. Every function takes sculpt-frame
vertices ``points`` (V, 3) float64 (see ``_builtin_shape``) and reads feature anchors from the
:class:`HeadSculpt`, so a feature's position is stated once. Displacements are sculpt units per
unit weight; ``builtin.py`` rescales them with the mesh.

Subject's left = world −x (the frontal camera at +y sees it on the image's right).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from arc2avatar.head._builtin_shape import HeadSculpt, ellipsoid_field, round_cone_field

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
RGB = tuple[float, float, float]


def smoothstep(edge0: float | FloatArray, edge1: float | FloatArray, x: FloatArray) -> FloatArray:
    """Cubic Hermite step: 0 at ``edge0``, 1 at ``edge1`` (either order), C¹."""
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def gaussian(points: FloatArray, centre: tuple[float, float, float], sigma: tuple[float, float, float]) -> FloatArray:
    """(V,) axis-aligned Gaussian bump, 1 at ``centre``; ``centre[0]`` is matched by ``|x|``."""
    q = np.stack([np.abs(points[:, 0]), points[:, 1], points[:, 2]], axis=1)
    return np.exp(-0.5 * np.sum(((q - np.asarray(centre)) / np.asarray(sigma)) ** 2, axis=1))


# ---------------------------------------------------------------------------------------------
# Regions.


@dataclass(frozen=True)
class RegionConfig:
    """Region geometry (sculpt units, degrees).

    The face is a super-ellipse in (azimuth, elevation) seen from ``face_centre``: azimuth
    within ±``face_half_width_deg`` of the +y direction, elevation between
    ``face_bottom_deg`` (under the chin) and ``face_top_deg`` (hairline), exponent
    ``face_power``. Expressions fade to zero over the outer ``support_fade`` of that
    coordinate, so they vanish outside the mask.
    """

    face_centre: tuple[float, float, float] = (0.0, -0.05, -0.15)
    face_half_width_deg: float = 68.0
    face_bottom_deg: float = -64.0
    face_top_deg: float = 40.0
    face_power: float = 2.5
    support_fade: float = 0.25
    neck_top_z: float = -0.86
    eye_half_width: float = 0.13
    eye_half_height: float = 0.085
    lips_half_width: float = 0.21
    lips_half_height: float = 0.085
    brow_inner_x: float = 0.07
    brow_outer_x: float = 0.37
    brow_arch: float = 0.025
    brow_base_z: float = 0.135
    brow_half_thickness: float = 0.035
    front_y: float = 0.35
    feature_margin: float = 0.025


def face_coordinate(points: FloatArray, cfg: RegionConfig) -> FloatArray:
    """(V,) super-elliptic face coordinate: < 1 inside the face, 0 at its centre."""
    rel = points - np.asarray(cfg.face_centre)
    azimuth = np.degrees(np.arctan2(rel[:, 0], rel[:, 1]))
    elevation = np.degrees(np.arctan2(rel[:, 2], np.hypot(rel[:, 0], rel[:, 1])))
    mid = 0.5 * (cfg.face_top_deg + cfg.face_bottom_deg)
    half = 0.5 * (cfg.face_top_deg - cfg.face_bottom_deg)
    a = np.abs(azimuth) / cfg.face_half_width_deg
    e = np.abs(elevation - mid) / half
    return (a**cfg.face_power + e**cfg.face_power) ** (1.0 / cfg.face_power)


def face_support(points: FloatArray, cfg: RegionConfig) -> FloatArray:
    """(V,) in [0, 1]: 1 in the face core, fading to exactly 0 at the face-mask border."""
    return smoothstep(1.0, 1.0 - cfg.support_fade, face_coordinate(points, cfg))


def eye_opening(points: FloatArray, s: HeadSculpt, cfg: RegionConfig) -> tuple[FloatArray, FloatArray]:
    """(V,) lateral coordinate ``u`` (−1..1 across the eye) and the almond half-height there."""
    cx, _, _ = s.eyeballs.centre
    u = (np.abs(points[:, 0]) - cx) / (0.8 * cfg.eye_half_width)
    half_height = 0.55 * cfg.eye_half_height * np.clip(1.0 - u * u, 0.0, None)
    return u, half_height


def brow_distance(points: FloatArray, cfg: RegionConfig) -> FloatArray:
    """(V,) vertical distance to the arched brow centre line, ∞ outside its x span."""
    ax = np.abs(points[:, 0])
    span = cfg.brow_outer_x - cfg.brow_inner_x
    t = np.clip((ax - cfg.brow_inner_x) / span, 0.0, 1.0)
    centre_z = cfg.brow_base_z + cfg.brow_arch * np.sin(np.pi * np.sqrt(t))
    inside_span = (ax >= cfg.brow_inner_x) & (ax <= cfg.brow_outer_x)
    return np.where(inside_span, np.abs(points[:, 2] - centre_z), np.inf)


def regions(points: FloatArray, s: HeadSculpt, cfg: RegionConfig) -> dict[str, BoolArray]:
    """Named (V,) masks. ``left``/``right`` are the subject's (left = −x)."""
    x, y, z = points[:, 0], points[:, 1], points[:, 2]
    front = y > cfg.front_y
    face = face_coordinate(points, cfg) < 1.0
    ex, _, ez = s.eyeballs.centre
    eye = front & ((((np.abs(x) - ex) / cfg.eye_half_width) ** 2 + ((z - ez) / cfg.eye_half_height) ** 2) < 1.0)
    mouth_z = s.mouth_slit.centre[2]
    lips = front & (((x / cfg.lips_half_width) ** 2 + ((z - mouth_z) / cfg.lips_half_height) ** 2) < 1.0)
    nose_field = np.minimum(
        np.minimum(round_cone_field(points, s.nose_bridge), ellipsoid_field(points, s.nose_tip)),
        ellipsoid_field(points, s.nose_wings),
    )
    nose = front & (nose_field < cfg.feature_margin) & ~eye
    brows = front & (brow_distance(points, cfg) < cfg.brow_half_thickness)
    ears = (ellipsoid_field(points, s.ears) < cfg.feature_margin) & ~face
    neck = (z < cfg.neck_top_z) & ~face
    scalp = ~face & ~neck & ~ears
    return {
        "face": face,
        "eyes": eye,
        "left_eye": eye & (x < 0),
        "right_eye": eye & (x > 0),
        "lips": lips,
        "upper_lip": lips & (z > mouth_z),
        "lower_lip": lips & (z <= mouth_z),
        "nose": nose,
        "brows": brows,
        "left_brow": brows & (x < 0),
        "right_brow": brows & (x > 0),
        "ears": ears,
        "left_ear": ears & (x < 0),
        "right_ear": ears & (x > 0),
        "neck": neck,
        "scalp": scalp,
    }


# ---------------------------------------------------------------------------------------------
# Colours.


@dataclass(frozen=True)
class PaletteConfig:
    """Mean colours (linear RGB in [0, 1]) and the widths of their soft borders (sculpt units).

    The hair-less scalp is a slightly darker cap above a hairline given as elevations (deg)
    seen from ``cap_centre`` at the front, the sides and the back of the head.
    """

    skin: RGB = (0.86, 0.68, 0.57)
    scalp: RGB = (0.70, 0.54, 0.45)
    lips: RGB = (0.74, 0.36, 0.36)
    mouth_line: RGB = (0.35, 0.12, 0.12)
    brows: RGB = (0.30, 0.21, 0.16)
    sclera: RGB = (0.94, 0.92, 0.89)
    iris: RGB = (0.33, 0.22, 0.14)
    pupil: RGB = (0.05, 0.04, 0.04)
    lash_line: RGB = (0.22, 0.15, 0.12)
    nostrils: RGB = (0.45, 0.28, 0.24)
    blush: RGB = (0.04, -0.03, -0.02)
    cap_centre: tuple[float, float, float] = (0.0, -0.10, -0.05)
    hairline_front_deg: float = 40.0
    hairline_side_deg: float = 15.0
    hairline_back_deg: float = -40.0
    hairline_soft_deg: float = 5.0
    iris_radius: float = 0.042
    pupil_radius: float = 0.018
    lash_thickness: float = 0.012
    soft: float = 0.012
    mouth_line_half_height: float = 0.012
    nostril_centre: tuple[float, float, float] = (0.05, 0.72, -0.30)
    nostril_sigma: tuple[float, float, float] = (0.025, 0.03, 0.02)
    blush_centre: tuple[float, float, float] = (0.30, 0.45, -0.22)
    blush_sigma: tuple[float, float, float] = (0.09, 0.2, 0.08)


def _mix(base: FloatArray, colour: RGB, weight: FloatArray) -> FloatArray:
    return base + weight[:, None] * (np.asarray(colour) - base)


def vertex_colours(points: FloatArray, s: HeadSculpt, rcfg: RegionConfig, p: PaletteConfig) -> FloatArray:
    """(V, 3) per-vertex mean colour in [0, 1]."""
    x, y, z = points[:, 0], points[:, 1], points[:, 2]
    colour = np.tile(np.asarray(p.skin), (points.shape[0], 1))
    # Scalp cap: hairline elevation interpolated by cos(azimuth), cos(2·azimuth).
    rel = points - np.asarray(p.cap_centre)
    azimuth = np.arctan2(rel[:, 0], rel[:, 1])
    elevation = np.degrees(np.arctan2(rel[:, 2], np.hypot(rel[:, 0], rel[:, 1])))
    c1 = 0.5 * (p.hairline_front_deg - p.hairline_back_deg)
    c0 = 0.5 * (0.5 * (p.hairline_front_deg + p.hairline_back_deg) + p.hairline_side_deg)
    c2 = c0 - p.hairline_side_deg
    hairline = c0 + c1 * np.cos(azimuth) + c2 * np.cos(2.0 * azimuth)
    colour = _mix(colour, p.scalp, smoothstep(hairline - p.hairline_soft_deg, hairline + p.hairline_soft_deg, elevation))
    colour = colour + gaussian(points, p.blush_centre, p.blush_sigma)[:, None] * np.asarray(p.blush)
    front = smoothstep(rcfg.front_y, rcfg.front_y + 0.1, y)
    # Lips and the dark line between them.
    mouth_z = s.mouth_slit.centre[2]
    lip_r = np.sqrt((x / rcfg.lips_half_width) ** 2 + ((z - mouth_z) / (0.8 * rcfg.lips_half_height)) ** 2)
    colour = _mix(colour, p.lips, front * smoothstep(1.0, 0.8, lip_r))
    line = smoothstep(p.mouth_line_half_height * 1.5, 0.0, np.abs(z - mouth_z)) * smoothstep(
        rcfg.lips_half_width * 0.85, rcfg.lips_half_width * 0.6, np.abs(x)
    )
    colour = _mix(colour, p.mouth_line, front * line)
    # Brows.
    colour = _mix(colour, p.brows, front * smoothstep(rcfg.brow_half_thickness, rcfg.brow_half_thickness - p.soft, brow_distance(points, rcfg)))
    # Eyes: almond opening with sclera, iris, pupil and an upper lash line.
    ex, _, ez = s.eyeballs.centre
    u, half_height = eye_opening(points, s, rcfg)
    dz = z - ez
    in_opening = smoothstep(half_height, half_height - 0.5 * p.soft, np.abs(dz)) * (half_height > 0)
    colour = _mix(colour, p.sclera, front * in_opening)
    radial = np.hypot(np.abs(x) - ex, dz)
    colour = _mix(colour, p.iris, front * in_opening * smoothstep(p.iris_radius, p.iris_radius - p.soft, radial))
    colour = _mix(colour, p.pupil, front * in_opening * smoothstep(p.pupil_radius, p.pupil_radius - p.soft, radial))
    lash = smoothstep(p.lash_thickness, 0.0, np.abs(dz - half_height)) * (np.abs(u) < 1.1) * (dz > 0)
    colour = _mix(colour, p.lash_line, front * lash)
    colour = _mix(colour, p.nostrils, gaussian(points, p.nostril_centre, p.nostril_sigma))
    return np.clip(colour, 0.0, 1.0)


# ---------------------------------------------------------------------------------------------
# Expressions.


@dataclass(frozen=True)
class ExpressionConfig:
    """Blendshape design: amplitudes in sculpt units (≈ world units; 1 unit ≈ 14 cm, see
    ``HeadSculpt``) at weight 1, radians. The defaults are ``builtin-v3``'s human-range design
    (docs/expressions.md, "How far each expression goes"); :meth:`v1` and :meth:`v2` are
    ``builtin-v1``'s and ``builtin-v2``'s.

    jaw_open: the lower face rotates by ``jaw_angle`` about an x-parallel axis at
    (y, z) = ``jaw_hinge_yz`` and shifts by ``jaw_shift_yz``: v2's axis is the effective centre
    of the mandible's turn plus the condyle's forward glide, low in the ramus, so the chin goes
    down more than back and the skin under it does not fold (v1: a hinge in front of the ears); the
    moving part lies below a boundary at the mouth line (``jaw_lip_softness`` wide at the lips,
    ``jaw_cheek_softness`` in the cheeks, blending over ``jaw_cheek_blend`` × the mouth
    half-width) that rises toward the hinge behind ``jaw_rise_y``. The two rows of skin that
    meet at the mouth line roll ``jaw_tuck`` back into the mouth (within ``jaw_tuck_band`` of
    the line, fading out at the corners), so the skin between the lips lines the mouth instead
    of spanning its opening. Blink: ``blink_sink`` pushes the closed opening back under the lids
    (v2: 0, the lid shells of ``_builtin_lids`` cover it, and a sunk, squashed opening folded).
    """

    jaw_hinge_yz: tuple[float, float] = (-0.05, -0.25)
    jaw_angle: float = 0.45
    jaw_shift_yz: tuple[float, float] = (0.20, -0.02)
    jaw_lip_softness: float = 0.012
    jaw_cheek_softness: float = 0.16
    jaw_cheek_blend: tuple[float, float] = (0.25, 1.8)
    jaw_rise_y: tuple[float, float] = (0.45, 0.0)
    jaw_tuck: float = 0.60
    jaw_tuck_band: tuple[float, float] = (0.03, 0.012)
    smile_corner: tuple[float, float, float] = (0.07, -0.05, 0.06)
    smile_corner_sigma: tuple[float, float, float] = (0.10, 0.14, 0.08)
    smile_cheek: tuple[float, float, float] = (0.0, 0.015, 0.025)
    smile_cheek_centre: tuple[float, float, float] = (0.27, 0.5, -0.22)
    smile_cheek_sigma: tuple[float, float, float] = (0.1, 0.2, 0.08)
    blink_closed_fraction: float = 0.3
    blink_lid_height: float = 0.09
    blink_squash: float = 0.06
    blink_sink: float = 0.0
    blink_opening_scale: float = 1.6
    blink_width_scale: float = 1.2
    brow_raise: float = 0.07
    brow_raise_sigma_x: float = 0.17
    brow_raise_band_z: tuple[float, float, float, float] = (0.03, 0.12, 0.25, 0.50)
    frown_inner_brow: tuple[float, float, float] = (-0.025, 0.0, -0.03)
    frown_inner_brow_centre: tuple[float, float, float] = (0.12, 0.55, 0.14)
    frown_inner_brow_sigma: tuple[float, float, float] = (0.08, 0.2, 0.06)
    frown_corner: tuple[float, float, float] = (0.0, 0.0, -0.04)
    pucker_forward: float = 0.08
    pucker_contract: float = 0.45
    pucker_sigma: tuple[float, float, float] = (0.13, 0.2, 0.08)
    cheek_puff: float = 0.09
    cheek_puff_direction: tuple[float, float, float] = (0.75, 0.55, -0.10)
    cheek_puff_centre: tuple[float, float, float] = (0.30, 0.35, -0.38)
    cheek_puff_sigma: tuple[float, float, float] = (0.1, 0.25, 0.1)
    mouth_shift: float = 0.08
    mouth_shift_sigma: tuple[float, float, float] = (0.15, 0.25, 0.1)

    @classmethod
    def v2(cls) -> "ExpressionConfig":
        """``builtin-v2``'s design (human range; the jaw about a hinge in front of the ears, the
        blink's opening sunk under the lids, no lid shells): avatars made on it keep expressing
        as they did."""
        return cls(jaw_hinge_yz=(-0.05, -0.10), jaw_shift_yz=(0.12, -0.02), blink_lid_height=0.07, blink_squash=0.01,
                   blink_sink=0.02)

    @classmethod
    def v1(cls) -> "ExpressionConfig":
        """``builtin-v1``'s design (avatars made on it keep expressing as they did)."""
        return cls(jaw_hinge_yz=(-0.05, -0.10), jaw_angle=0.21, jaw_shift_yz=(0.10, -0.02), jaw_cheek_softness=0.08, jaw_cheek_blend=(0.8, 1.6),
                   jaw_tuck=0.0, smile_corner=(0.035, -0.03, 0.045), smile_corner_sigma=(0.08, 0.12, 0.07),
                   smile_cheek=(0.0, 0.015, 0.025), blink_lid_height=0.07, blink_squash=0.06, blink_sink=0.0, blink_opening_scale=1.0, blink_width_scale=1.0, brow_raise=0.05,
                   frown_inner_brow=(-0.025, 0.0, -0.03), frown_corner=(0.0, 0.0, -0.025), pucker_forward=0.05,
                   pucker_contract=0.3, cheek_puff=0.06, mouth_shift=0.05)


EXPRESSION_NAMES: tuple[str, ...] = (
    "jaw_open",
    "smile",
    "blink_left",
    "blink_right",
    "brow_raise",
    "frown",
    "pucker",
    "cheek_puff",
    "mouth_left",
    "mouth_right",
)


def _mirrored(vector: tuple[float, float, float], x: FloatArray) -> FloatArray:
    """(V, 3) ``vector`` with its x component pointing away from the midline on each side."""
    out = np.tile(np.asarray(vector), (x.shape[0], 1))
    out[:, 0] *= np.where(x < 0, -1.0, 1.0)
    return out


def jaw_motion(points: FloatArray, e: ExpressionConfig) -> FloatArray:
    """(V, 3) where the jaw's rigid motion (rotation about the hinge, then the shift) takes
    ``points``, minus ``points``: the displacement of a point fully on the jaw."""
    y, z = points[:, 1], points[:, 2]
    hy, hz = e.jaw_hinge_yz
    ry, rz = y - hy, z - hz
    c, s_ = np.cos(e.jaw_angle), np.sin(e.jaw_angle)
    disp = np.zeros_like(points)
    disp[:, 1] = ry * c + rz * s_ + hy + e.jaw_shift_yz[0] - y
    disp[:, 2] = -ry * s_ + rz * c + hz + e.jaw_shift_yz[1] - z
    return disp


def jaw_open(points: FloatArray, s: HeadSculpt, e: ExpressionConfig) -> FloatArray:
    """(V, 3) lower lip, chin and jaw rotate down about the hinge; upper lip fixed; the skin
    between the lips rolls into the mouth (``jaw_tuck``)."""
    x, y, z = points[:, 0], points[:, 1], points[:, 2]
    mouth_z = s.mouth_slit.centre[2]
    boundary_z = mouth_z + (e.jaw_hinge_yz[1] - mouth_z) * smoothstep(e.jaw_rise_y[0], e.jaw_rise_y[1], y)
    corner_x = s.mouth_slit.radii[0]
    softness = e.jaw_lip_softness + (e.jaw_cheek_softness - e.jaw_lip_softness) * smoothstep(
        e.jaw_cheek_blend[0] * corner_x, e.jaw_cheek_blend[1] * corner_x, np.abs(x)
    )
    below = smoothstep(softness, -softness, z - boundary_z)
    disp = jaw_motion(points, e) * below[:, None]
    if e.jaw_tuck:
        disp[:, 1] -= e.jaw_tuck * lip_seam(points, s, e)
    return disp


def lip_seam(points: FloatArray, s: HeadSculpt, e: ExpressionConfig) -> FloatArray:
    """(V,) in [0, 1]: how far each vertex belongs to the seam between the lips that rolls into
    the mouth as the jaw opens (``jaw_tuck``)."""
    x, y, z = points[:, 0], points[:, 1], points[:, 2]
    corner_x = s.mouth_slit.radii[0]
    return (smoothstep(e.jaw_tuck_band[0], e.jaw_tuck_band[1], np.abs(z - s.mouth_slit.centre[2]))
            * smoothstep(corner_x, 0.6 * corner_x, np.abs(x)) * (y > 0.5 * s.mouth_slit.centre[1]))


def smile(points: FloatArray, s: HeadSculpt, e: ExpressionConfig) -> FloatArray:
    """(V, 3) mouth corners up, back and out; cheeks lifted."""
    corner = (s.mouth_slit.radii[0] + 0.02, s.mouth_slit.centre[1] - 0.08, s.mouth_slit.centre[2])
    x = points[:, 0]
    disp = gaussian(points, corner, e.smile_corner_sigma)[:, None] * _mirrored(e.smile_corner, x)
    disp += gaussian(points, e.smile_cheek_centre, e.smile_cheek_sigma)[:, None] * _mirrored(e.smile_cheek, x)
    return disp


def _piecewise_linear(z: FloatArray, knots_in: list[FloatArray], knots_out: list[FloatArray]) -> FloatArray:
    """(V,) per-vertex piecewise-linear map of ``z`` through increasing knots (identity outside)."""
    out = z.copy()
    for a, b, fa, fb in zip(knots_in[:-1], knots_in[1:], knots_out[:-1], knots_out[1:]):
        inside = (z >= a) & (z <= b) & (b > a)
        t = (z - a) / np.where(b > a, b - a, 1.0)
        out = np.where(inside, fa + t * (fb - fa), out)
    return out


def blink(points: FloatArray, s: HeadSculpt, rcfg: RegionConfig, e: ExpressionConfig, side: float) -> FloatArray:
    """(V, 3) the eyelids of one side (``side`` = −1: subject's left, +1: right) close.

    Per vertical line through the almond, z is mapped piecewise-linearly: the upper lid margin
    comes down and the lower one up to a closing line, the opening between them is squashed
    into a thin band, the lid skin above and below stretches; y follows the eyeball sphere.
    """
    x, y, z = points[:, 0], points[:, 1], points[:, 2]
    ex, ey, ez = s.eyeballs.centre
    u, _ = eye_opening(points, s, rcfg)
    half = 0.55 * rcfg.eye_half_height * e.blink_opening_scale * np.clip(1.0 - (u / e.blink_width_scale) ** 2, 0.0, None)
    top, bottom = ez + half, ez - half
    close = bottom + e.blink_closed_fraction * (top - bottom)
    band = e.blink_squash * (top - bottom)
    lid_top, lid_bottom = top + e.blink_lid_height, bottom - 0.5 * e.blink_lid_height
    knots_in = [lid_bottom, bottom, close, top, lid_top]
    knots_out = [lid_bottom, close - band, close, close + band, lid_top]
    new_z = _piecewise_linear(z, knots_in, knots_out)
    radius = s.eyeballs.radii[0]
    dx = np.abs(x) - ex
    surf_old = np.sqrt(np.clip(radius**2 - dx**2 - (z - ez) ** 2, 0.0, None))
    surf_new = np.sqrt(np.clip(radius**2 - dx**2 - (new_z - ez) ** 2, 0.0, None))
    on_side = smoothstep(0.0, 0.5 * ex, side * x)
    safe = np.maximum(half, 1e-9)
    in_opening = smoothstep(safe, 0.6 * safe, np.abs(z - ez)) * (half > 0)
    disp = np.zeros_like(points)
    disp[:, 2] = (new_z - z) * on_side
    disp[:, 1] = ((surf_new - surf_old) * (y > ey) - e.blink_sink * in_opening) * on_side
    return disp


def brow_raise(points: FloatArray, e: ExpressionConfig, rcfg: RegionConfig) -> FloatArray:
    """(V, 3) brows and lower forehead move up."""
    z = points[:, 2]
    lo0, lo1, hi0, hi1 = e.brow_raise_band_z
    band = smoothstep(lo0, lo1, z) * smoothstep(hi1, hi0, z)
    across = np.exp(-0.5 * ((np.abs(points[:, 0]) - 0.5 * (rcfg.brow_inner_x + rcfg.brow_outer_x)) / e.brow_raise_sigma_x) ** 2)
    disp = np.zeros_like(points)
    disp[:, 2] = e.brow_raise * band * across * (points[:, 1] > rcfg.front_y)
    return disp


def frown(points: FloatArray, s: HeadSculpt, e: ExpressionConfig) -> FloatArray:
    """(V, 3) inner brows down and together, mouth corners down."""
    x = points[:, 0]
    disp = gaussian(points, e.frown_inner_brow_centre, e.frown_inner_brow_sigma)[:, None] * _mirrored(e.frown_inner_brow, x)
    corner = (s.mouth_slit.radii[0] + 0.02, s.mouth_slit.centre[1] - 0.08, s.mouth_slit.centre[2])
    disp += gaussian(points, corner, e.smile_corner_sigma)[:, None] * _mirrored(e.frown_corner, x)
    return disp


def pucker(points: FloatArray, s: HeadSculpt, e: ExpressionConfig) -> FloatArray:
    """(V, 3) lips pushed forward and drawn toward the mouth centre."""
    centre = (0.0, s.mouth_slit.centre[1], s.mouth_slit.centre[2])
    g = gaussian(points, centre, e.pucker_sigma)
    disp = np.zeros_like(points)
    disp[:, 0] = -e.pucker_contract * points[:, 0] * g
    disp[:, 1] = e.pucker_forward * g
    return disp


def cheek_puff(points: FloatArray, e: ExpressionConfig) -> FloatArray:
    """(V, 3) both cheeks inflate outward (a fixed direction per side: smooth, no folds)."""
    direction = np.asarray(e.cheek_puff_direction) / np.linalg.norm(e.cheek_puff_direction)
    bump = gaussian(points, e.cheek_puff_centre, e.cheek_puff_sigma)
    return e.cheek_puff * bump[:, None] * _mirrored(tuple(direction), points[:, 0])


def mouth_shift(points: FloatArray, s: HeadSculpt, e: ExpressionConfig, direction_x: float) -> FloatArray:
    """(V, 3) the mouth slides sideways (``direction_x`` = −1: toward the subject's left)."""
    centre = (0.0, s.mouth_slit.centre[1], s.mouth_slit.centre[2])
    disp = np.zeros_like(points)
    disp[:, 0] = direction_x * e.mouth_shift * gaussian(points, centre, e.mouth_shift_sigma)
    return disp


def expression_basis(points: FloatArray, s: HeadSculpt, rcfg: RegionConfig, e: ExpressionConfig) -> FloatArray:
    """(V, 3, E) displacements per unit weight for :data:`EXPRESSION_NAMES`, zero off the face."""
    fields = {
        "jaw_open": jaw_open(points, s, e),
        "smile": smile(points, s, e),
        "blink_left": blink(points, s, rcfg, e, side=-1.0),
        "blink_right": blink(points, s, rcfg, e, side=+1.0),
        "brow_raise": brow_raise(points, e, rcfg),
        "frown": frown(points, s, e),
        "pucker": pucker(points, s, e),
        "cheek_puff": cheek_puff(points, e),
        "mouth_left": mouth_shift(points, s, e, -1.0),
        "mouth_right": mouth_shift(points, s, e, +1.0),
    }
    support = face_support(points, rcfg)[:, None]
    return np.stack([fields[name] * support for name in EXPRESSION_NAMES], axis=-1)
