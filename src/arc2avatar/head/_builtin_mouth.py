"""The inside of the built-in head's mouth: an oral cavity, two rows of teeth and a tongue.

Written by hand: the template's design (where the teeth sit behind the lips), which no library
provides. Three kinds of open surfaces, generated as parametric grids in the sculpt frame of
``_builtin_shape`` (z up, face toward +y), all inside the closed skin at neutral:

* the **oral cavity**: the back part of an ellipsoid (a cup open toward the lips, closed at the
  back), its normals facing into the mouth; its lower half follows the jaw, its upper half
  stays with the skull, the back wall stretches between them;
* the **upper teeth**: a band along an elliptic dental arch just behind the lips, fixed to the
  skull; the **lower teeth**: the same arch below the mouth line, following the jaw;
* the **tongue**: the top of a flattened ellipsoid on the cavity floor, following the jaw.

Every part is a separate connected component (no edge joins it to the skin), so meshes stay
manifold and the skin stays a closed surface. ``mouth_parts`` returns the points, triangles,
per-vertex labels, colours and the share of the jaw's motion each vertex takes (0 = skull,
1 = jaw); ``_builtin_fields.jaw_open`` turns that share into the blendshape.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from arc2avatar.head._builtin_shape import HeadSculpt

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
RGB = tuple[float, float, float]

CAVITY, UPPER_TEETH, LOWER_TEETH, TONGUE = 0, 1, 2, 3
PART_NAMES = {CAVITY: "oral_cavity", UPPER_TEETH: "upper_teeth", LOWER_TEETH: "lower_teeth", TONGUE: "tongue"}


@dataclass(frozen=True)
class MouthConfig:
    """Geometry and colours of the mouth's inside (sculpt units ≈ 14 cm each, see ``HeadSculpt``).

    Attributes:
        cavity_centre_y, cavity_radii: the cavity ellipsoid, centred at the mouth line's height
            (x, y, z radii); ``cavity_rim_cos``: the cup keeps the directions whose cosine to +y is
            below this (the opening faces the lips); ``cavity_rings``, ``cavity_segments``: grid.
        cavity_jaw_band: the cavity follows the jaw fully this far below the mouth line, not at
            all this far above it (a smooth step between).
        arch_front_y: y of the incisors' front at the midline; ``arch_half_width``,
            ``arch_depth``: the elliptic dental arch x = w·sin φ, y = front − d·(1 − cos φ),
            |φ| ≤ ``arch_max_deg``; ``arch_segments``, ``teeth_rows``: grid.
        upper_teeth_edge, lower_teeth_edge: height of the upper teeth's lower edge and of the
            lower teeth's upper edge relative to the mouth line (the lower teeth stand
            ``overbite`` behind the upper ones). Set so that an open mouth shows the upper
            teeth's edge under the upper lip and the lower teeth low behind the lower lip, the
            dark mouth between: a tracker then puts the inner lips at the lips, not on the teeth
            (issue 24: a lower edge at −0.004 read the top of the lower teeth as the lower lip);
            ``teeth_height``: crown height (≈ 8 mm; an upper incisor's crown is ≈ 10 mm).
        tooth_width: width of one tooth along the arch (the colour darkens between teeth).
        tongue_centre, tongue_radii: the tongue ellipsoid (its top half is kept);
            ``tongue_rings``, ``tongue_segments``: grid.
        cavity_colour, throat_colour, teeth_colour, tooth_gap_colour, tongue_colour: linear RGB.
    """

    cavity_centre_y: float = 0.44
    cavity_radii: tuple[float, float, float] = (0.15, 0.30, 0.16)
    cavity_rim_cos: float = 0.33
    cavity_rings: int = 10
    cavity_segments: int = 32
    cavity_jaw_band: float = 0.06
    arch_front_y: float = 0.585
    arch_half_width: float = 0.15
    arch_depth: float = 0.20
    arch_max_deg: float = 80.0
    arch_segments: int = 24
    teeth_rows: int = 3
    upper_teeth_edge: float = 0.0
    lower_teeth_edge: float = -0.03
    overbite: float = 0.02
    teeth_height: float = 0.06
    tooth_width: float = 0.045
    tongue_centre: tuple[float, float, float] = (0.0, 0.41, -0.62)
    tongue_radii: tuple[float, float, float] = (0.11, 0.15, 0.06)
    tongue_rings: int = 6
    tongue_segments: int = 16
    cavity_colour: RGB = (0.13, 0.045, 0.05)
    throat_colour: RGB = (0.06, 0.02, 0.025)
    teeth_colour: RGB = (0.84, 0.80, 0.70)
    tooth_gap_colour: RGB = (0.62, 0.56, 0.48)
    tongue_colour: RGB = (0.66, 0.30, 0.32)

    @classmethod
    def v2(cls) -> "MouthConfig":
        """``builtin-v2``'s inside (its teeth higher, the tongue 0.045 higher)."""
        return cls(upper_teeth_edge=-0.012, lower_teeth_edge=-0.004, tongue_centre=(0.0, 0.41, -0.575))


@dataclass(frozen=True)
class MouthParts:
    """The inside of the mouth as one mesh (indices local to ``points``).

    Attributes:
        points: (M, 3) sculpt frame; faces: (G, 3); labels: (M,) part ids (``PART_NAMES``);
        colours: (M, 3) in [0, 1]; jaw_share: (M,) in [0, 1], the share of the jaw's motion.
    """

    points: FloatArray
    faces: IntArray
    labels: IntArray
    colours: FloatArray
    jaw_share: FloatArray


def _smoothstep(edge0: float, edge1: float, x: FloatArray) -> FloatArray:
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _grid_faces(rows: int, columns: int, wrap: bool) -> IntArray:
    """Two triangles per cell of a rows × columns vertex grid (row-major), optionally wrapped."""
    out = []
    last = columns if wrap else columns - 1
    for r in range(rows - 1):
        for c in range(last):
            a, b = r * columns + c, r * columns + (c + 1) % columns
            d, e = a + columns, b + columns
            out += [(a, b, e), (a, e, d)]
    return np.asarray(out, dtype=np.int64).reshape(-1, 3)


def _cap(rows: int, columns: int, pole_first: bool) -> IntArray:
    """Triangles of a fan from a pole vertex (index 0 or last) to the nearest ring of a grid
    that follows it (or precedes it)."""
    if pole_first:
        return np.asarray([(0, 1 + (c + 1) % columns, 1 + c) for c in range(columns)], dtype=np.int64)
    pole = rows * columns
    base = (rows - 1) * columns
    return np.asarray([(pole, base + c, base + (c + 1) % columns) for c in range(columns)], dtype=np.int64)


def _orient(points: FloatArray, faces: IntArray, toward: FloatArray) -> IntArray:
    """Flip triangles whose normal points away from ``toward`` (per-triangle target points)."""
    tri = points[faces]
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    flip = np.einsum("fc,fc->f", normal, toward - tri.mean(axis=1)) < 0
    faces = faces.copy()
    faces[flip] = faces[flip][:, ::-1]
    return faces


def cavity(s: HeadSculpt, c: MouthConfig) -> tuple[FloatArray, IntArray]:
    """The cup: rings from the rim (cosine to +y = ``cavity_rim_cos``) to the back pole."""
    centre = np.array([0.0, c.cavity_centre_y, s.mouth_slit.centre[2]])
    alpha = np.linspace(np.arccos(c.cavity_rim_cos), np.pi, c.cavity_rings + 1)[:-1]  # the pole apart
    beta = np.linspace(0.0, 2.0 * np.pi, c.cavity_segments, endpoint=False)
    a, b = np.meshgrid(alpha, beta, indexing="ij")
    directions = np.stack([np.sin(a) * np.cos(b), np.cos(a), np.sin(a) * np.sin(b)], axis=-1).reshape(-1, 3)
    points = np.concatenate([directions, [[0.0, -1.0, 0.0]]]) * np.asarray(c.cavity_radii) + centre
    faces = np.concatenate([_grid_faces(c.cavity_rings, c.cavity_segments, wrap=True),
                            _cap(c.cavity_rings, c.cavity_segments, pole_first=False)])
    return points, _orient(points, faces, np.tile(centre, (len(faces), 1)))


def teeth(s: HeadSculpt, c: MouthConfig, upper: bool) -> tuple[FloatArray, IntArray, FloatArray]:
    """A band of teeth along the arch; also each vertex's arc-length coordinate (for the gaps)."""
    mouth_z = s.mouth_slit.centre[2]
    phi = np.deg2rad(np.linspace(-c.arch_max_deg, c.arch_max_deg, c.arch_segments))
    if upper:
        heights = mouth_z + c.upper_teeth_edge + np.linspace(0.0, c.teeth_height, c.teeth_rows)
        front = c.arch_front_y
    else:
        heights = mouth_z + c.lower_teeth_edge - np.linspace(0.0, c.teeth_height, c.teeth_rows)
        front = c.arch_front_y - c.overbite
    p, z = np.meshgrid(phi, heights, indexing="ij")
    x = c.arch_half_width * np.sin(p)
    y = front - c.arch_depth * (1.0 - np.cos(p))
    points = np.stack([x, y, z], axis=-1).reshape(-1, 3)
    faces = _grid_faces(c.arch_segments, c.teeth_rows, wrap=False)
    inside = np.array([0.0, c.arch_front_y - c.arch_depth, mouth_z])
    faces = _orient(points, faces, 2.0 * points[faces].mean(axis=1) - inside)  # normals face out of the arch
    step = np.hypot(np.gradient(c.arch_half_width * np.sin(phi)), np.gradient(c.arch_depth * np.cos(phi)))
    arc = np.cumsum(step) - step[0]
    arc = arc - arc[len(arc) // 2]
    return points, faces, np.repeat(arc, c.teeth_rows)


def tongue(c: MouthConfig) -> tuple[FloatArray, IntArray]:
    """The top half of the tongue ellipsoid, from its top pole down to its equator."""
    alpha = np.linspace(0.0, 0.5 * np.pi, c.tongue_rings + 1)[1:]
    beta = np.linspace(0.0, 2.0 * np.pi, c.tongue_segments, endpoint=False)
    a, b = np.meshgrid(alpha, beta, indexing="ij")
    directions = np.stack([np.sin(a) * np.cos(b), np.sin(a) * np.sin(b), np.cos(a)], axis=-1).reshape(-1, 3)
    points = np.concatenate([[[0.0, 0.0, 1.0]], directions]) * np.asarray(c.tongue_radii) + np.asarray(c.tongue_centre)
    faces = np.concatenate([_cap(c.tongue_rings, c.tongue_segments, pole_first=True),
                            1 + _grid_faces(c.tongue_rings, c.tongue_segments, wrap=True)])
    below = np.asarray(c.tongue_centre) - np.array([0.0, 0.0, 1.0])
    return points, _orient(points, faces, 2.0 * points[faces].mean(axis=1) - below)


def mouth_parts(s: HeadSculpt, c: MouthConfig) -> MouthParts:
    """Cavity, upper teeth, lower teeth and tongue as one mesh (see the module docstring)."""
    mouth_z = s.mouth_slit.centre[2]
    cup, cup_faces = cavity(s, c)
    top, top_faces, top_arc = teeth(s, c, upper=True)
    bottom, bottom_faces, bottom_arc = teeth(s, c, upper=False)
    tip, tip_faces = tongue(c)
    pieces = [(cup, cup_faces, CAVITY), (top, top_faces, UPPER_TEETH), (bottom, bottom_faces, LOWER_TEETH),
              (tip, tip_faces, TONGUE)]
    points, faces, labels, offset = [], [], [], 0
    for part_points, part_faces, label in pieces:
        points.append(part_points)
        faces.append(part_faces + offset)
        labels.append(np.full(len(part_points), label, dtype=np.int64))
        offset += len(part_points)
    points_m3 = np.concatenate(points)
    labels_m = np.concatenate(labels)
    colours = np.zeros_like(points_m3)
    # Cavity: dark, darker toward the throat (the back).
    depth = _smoothstep(c.cavity_centre_y, c.cavity_centre_y - c.cavity_radii[1], cup[:, 1])
    colours[labels_m == CAVITY] = (np.asarray(c.cavity_colour) * (1 - depth[:, None])
                                   + np.asarray(c.throat_colour) * depth[:, None])
    arc = np.concatenate([top_arc, bottom_arc])
    gap = np.abs(np.cos(np.pi * arc / c.tooth_width)) ** 8  # 1 at the boundary between two teeth
    teeth_rows = (labels_m == UPPER_TEETH) | (labels_m == LOWER_TEETH)
    colours[teeth_rows] = (np.asarray(c.teeth_colour) * (1 - gap[:, None]) + np.asarray(c.tooth_gap_colour) * gap[:, None])
    colours[labels_m == TONGUE] = c.tongue_colour
    share = np.zeros(len(points_m3))
    share[labels_m == CAVITY] = _smoothstep(mouth_z + c.cavity_jaw_band, mouth_z - c.cavity_jaw_band, cup[:, 2])
    share[(labels_m == LOWER_TEETH) | (labels_m == TONGUE)] = 1.0
    return MouthParts(points=points_m3, faces=np.concatenate(faces), labels=labels_m, colours=colours, jaw_share=share)


__all__ = ["MouthConfig", "MouthParts", "PART_NAMES", "mouth_parts"]
