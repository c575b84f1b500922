"""The built-in head's closing eyelids: one thin shell per eye that covers the eye when it blinks.

Written by hand: the template's design (how a closed eye looks), which no library provides.

The skin's blink (``_builtin_fields.blink``) brings the lids together, but its closed opening is
squashed from the eye's own colours (sclera, iris; on a photo avatar the photo's eye), so a
closed eye read as smeared and a tracker did not see it closed (issue 24). Each eye therefore
has a **lid shell**: a patch of a sphere concentric with the eyeball, a separate open component
of the template (no edge joins it to the skin, as the mouth's inside), coloured as lid skin with
a dark lash line along the curve where the lids meet. At neutral it lies ``rest_depth`` inside
the eyeball, hidden behind the eye; the blink of its side moves it straight out to
``closed_height`` in front of the eyeball, where it covers the whole exposed eyeball. Its rim
reaches past the socket's opening, so beyond the eye it stays behind the skin and only the eye
shows it. Linear blendshapes move it on a straight line, so it comes out from about 0.45 of a
blink on, when the skin's lids have half met (deeper at rest, it comes out later and its
splats, sized at rest, spread thinner when closed: ``drive``'s closed loop then misreads blinks).

Sculpt frame as ``_builtin_shape`` (z up, face toward +y, subject's left = −x).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from arc2avatar.head._builtin_shape import HeadSculpt

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
RGB = tuple[float, float, float]

LEFT, RIGHT = 0, 1
SIDE_NAMES = {LEFT: "left_eyelid", RIGHT: "right_eyelid"}


@dataclass(frozen=True)
class LidConfig:
    """Geometry and colours of the lid shells (sculpt units ≈ 14 cm each, degrees).

    Attributes:
        half_width_deg: the shell spans ± this azimuth about the eye's forward axis.
        top_deg, bottom_deg: its elevation above and below the eye centre (past the socket's
            opening, ≈ ±40°, so its rim stays behind the skin).
        rest_depth: the shell's depth inside the eyeball's surface at neutral.
        closed_height: its height in front of the eyeball's surface when the eye is closed.
        columns, rows_above, rows_below: grid; rows crowd toward the lash line by ``row_power``.
        lash_rows: rows on each side of the meeting line painted as lash (0: the line alone).
        lid_colour, lash_colour, crease_colour: linear RGB; the crease darkens the lid
            ``crease_deg`` above the meeting line over ``crease_width_deg``.
    """

    half_width_deg: float = 62.0
    top_deg: float = 58.0
    bottom_deg: float = -55.0
    rest_depth: float = 0.012
    closed_height: float = 0.016
    columns: int = 17
    rows_above: int = 7
    rows_below: int = 4
    row_power: float = 1.7
    lash_rows: int = 1
    lid_colour: RGB = (0.86, 0.68, 0.57)
    lash_colour: RGB = (0.10, 0.06, 0.05)
    crease_colour: RGB = (0.66, 0.48, 0.40)
    crease_deg: float = 22.0
    crease_width_deg: float = 8.0


@dataclass(frozen=True)
class LidParts:
    """Both lid shells as one mesh (indices local to ``points``).

    Attributes:
        points: (L, 3) sculpt frame, at neutral; faces: (G, 3), facing out of the eye;
        sides: (L,) ``LEFT`` or ``RIGHT``; colours: (L, 3) in [0, 1]; lash: (L,) bool, the
        lash line; closing: (L, 3) the displacement that closes the eye (the blink of its side).
    """

    points: FloatArray
    faces: IntArray
    sides: IntArray
    colours: FloatArray
    lash: NDArray[np.bool_]
    closing: FloatArray


def _grid_faces(rows: int, columns: int) -> IntArray:
    out = []
    for r in range(rows - 1):
        for c in range(columns - 1):
            a, b = r * columns + c, r * columns + c + 1
            out += [(a, b, b + columns), (a, b + columns, a + columns)]
    return np.asarray(out, dtype=np.int64)


def _facing_out(points: FloatArray, faces: IntArray, centre: FloatArray) -> IntArray:
    """``faces`` with each triangle's normal turned away from ``centre`` (the eyeball's)."""
    tri = points[faces]
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    flip = np.einsum("fc,fc->f", normal, tri.mean(axis=1) - centre) < 0
    faces = faces.copy()
    faces[flip] = faces[flip][:, ::-1]
    return faces


def meeting_elevation(azimuth: FloatArray, s: HeadSculpt, eye_half_width: float, eye_half_height: float,
                      close_fraction: float, opening_scale: float, width_scale: float) -> FloatArray:
    """(N,) elevation (radians) of the line where the lids meet, over the azimuths ``azimuth``:
    ``close_fraction`` of the way up the opening the skin's blink closes (the almond half-height
    ``0.55 · eye_half_height · opening_scale · (1 − (u / width_scale)²)``, ``_builtin_fields.blink``)."""
    radius = s.eyeballs.radii[0]
    dx = radius * np.sin(azimuth)
    u = dx / (0.8 * eye_half_width)
    half = 0.55 * eye_half_height * opening_scale * np.clip(1.0 - (u / width_scale) ** 2, 0.0, None)
    dz = -half + 2.0 * close_fraction * half
    return np.arcsin(np.clip(dz / radius, -1.0, 1.0))


def lid_parts(s: HeadSculpt, c: LidConfig, meeting: Callable[[FloatArray], FloatArray]) -> LidParts:
    """Both shells. ``meeting(azimuth)`` gives the lash line's elevation (radians) per azimuth
    (``meeting_elevation`` with the template's eye and blink design)."""
    ex, ey, ez = s.eyeballs.centre
    radius = s.eyeballs.radii[0]
    azimuth = np.deg2rad(np.linspace(-c.half_width_deg, c.half_width_deg, c.columns))
    line = meeting(azimuth)  # (C,)
    top, bottom = np.deg2rad(c.top_deg), np.deg2rad(c.bottom_deg)
    t_above = np.linspace(0.0, 1.0, c.rows_above + 1) ** c.row_power
    t_below = np.linspace(0.0, 1.0, c.rows_below + 1)[1:] ** c.row_power
    # Rows from the bottom rim up: below the line (reversed), the line, above it.
    elevation = np.concatenate([(line[None] + t_below[::-1, None] * (bottom - line[None])),
                                line[None] + t_above[:, None] * (top - line[None])])  # (R, C)
    rows = elevation.shape[0]
    line_row = c.rows_below
    a = np.broadcast_to(azimuth[None], elevation.shape)
    direction = np.stack([np.sin(a) * np.cos(elevation), np.cos(a) * np.cos(elevation), np.sin(elevation)], axis=-1)
    direction = direction.reshape(-1, 3)
    grid_faces = _grid_faces(rows, c.columns)
    row_index = np.repeat(np.arange(rows), c.columns)
    lash = np.abs(row_index - line_row) <= c.lash_rows
    above_line = (elevation - line[None]).reshape(-1)
    crease = np.exp(-0.5 * ((np.rad2deg(above_line) - c.crease_deg) / c.crease_width_deg) ** 2)
    colour = np.asarray(c.lid_colour) + crease[:, None] * (np.asarray(c.crease_colour) - np.asarray(c.lid_colour))
    colour[lash] = c.lash_colour
    points, faces, sides, colours, lashes, closing = [], [], [], [], [], []
    for side, sign in ((LEFT, -1.0), (RIGHT, 1.0)):
        d = direction * np.array([sign, 1.0, 1.0])
        centre = np.array([sign * ex, ey, ez])
        points.append(centre + (radius - c.rest_depth) * d)
        faces.append(_facing_out(points[-1], grid_faces, centre) + side * len(d))
        sides.append(np.full(len(d), side, dtype=np.int64))
        colours.append(colour)
        lashes.append(lash)
        closing.append((c.rest_depth + c.closed_height) * d)
    return LidParts(points=np.concatenate(points), faces=np.concatenate(faces), sides=np.concatenate(sides),
                    colours=np.clip(np.concatenate(colours), 0.0, 1.0), lash=np.concatenate(lashes),
                    closing=np.concatenate(closing))


__all__ = ["LEFT", "LidConfig", "LidParts", "RIGHT", "SIDE_NAMES", "lid_parts", "meeting_elevation"]
