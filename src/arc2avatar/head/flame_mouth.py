"""The inside of FLAME's mouth: the built-in head's cavity, teeth and tongue, placed in FLAME's lips.

FLAME's skin is open between the lips (its inner-lip edge is a boundary loop of the mesh) and
has nothing behind them, so an opened jaw shows the inside of the back of the head, or the
background. ``flame_mouth`` finds that loop and puts behind it the parts the built-in head has
(``_builtin_mouth``: a dark oral cavity closed at the back, upper and lower teeth, a tongue),
scaled to the mouth's width, each with FLAME skinning weights: the upper teeth and the upper
half of the cavity take the skull's weights (the upper lip's, without the jaw's share), the
lower teeth, the tongue and the lower half of the cavity the jaw joint's, so a jaw pose opens
them. The design is versioned with the bundles (``avatar.template.FLAME_MOUTH_VERSION``): a
change to it, or to ``MouthConfig``'s defaults, needs a new version for avatars made before.

Finding the mouth (no FLAME vertex id is hard-coded; the rule works on any FLAME-like mesh):
the mouth is the boundary loop of the mesh on the front of the face (its centroid's world y at
least ``min_front`` of the mesh's front-most y: the neck's opening sits further back) along
which the jaw's skinning weight varies the most (the upper lip stays with the skull, the lower lip follows the jaw); a
spread below ``min_jaw_spread`` means no loop opens with the jaw (a mesh closed at the lips),
and the mesh gets no inside: nothing could show it.

Placement: the built-in design is drawn in its own sculpt frame (same axes as the world frame)
and moved by a similarity: its mouth's reference point (the lips' contact line at the midline)
onto FLAME's (midway between the corners in x, the loop's front at the midline in y, the loop's
mean height there in z), scaled by FLAME's mouth half-width over the built-in's.

Written by hand: the loop rule and the placement are this template's design (no library finds a
mesh's mouth); boundary loops are the connected components (scipy) of the edges used once.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray
from scipy.sparse.csgraph import connected_components

from arc2avatar.head._builtin_mouth import PART_NAMES, MouthConfig, mouth_parts
from arc2avatar.head._builtin_shape import HeadSculpt

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


@dataclass(frozen=True)
class FlameMouthConfig:
    """How FLAME gets a mouth inside (docs/expressions.md, "The inside of the mouth").

    Attributes:
        parts: the built-in head's design (``_builtin_mouth.MouthConfig``, sculpt units) with a
            wider cavity (FLAME's lip opening reaches the corners, so the cavity's rim does too)
            and the teeth's edges lower (FLAME's upper lip does not roll back as the built-in's
            does: the upper incisors show ≈ 4 mm below the mouth line, as a human's do), on a
            coarser grid (16 × 8: the 32 vertices of the built-in's ring next to the back pole,
            scaled up, gave splats too small to close it and a light ring showed there).
        reference_contact: the built-in sculpt's lips' contact point at the midline (x, y, z):
            ``HeadSculpt.mouth_slit`` centre, its y less the slit's depth (sculpt units; copied
            here so that FLAME's mouth stays as it is when the built-in sculpt changes).
        reference_half_width: the built-in mouth's half-width (``mouth_slit`` x radius).
        setback: the whole inside moved this many FLAME mouth half-widths further back.
        min_front: least world y of a loop's centroid, as a share of the mesh's largest y (the
            face looks toward +y; the head's bounding-box centre is at y = 0).
        min_jaw_spread: least (max − min) of the jaw weight along the mouth loop.
        upper_lip_max_jaw: loop vertices with at most this jaw weight are the upper lip's, whose
            weights (less the jaw's share) the skull-fixed parts take.
        midline_share: loop vertices within this share of the half-width of the mouth's centre
            in x give the contact point's y (their front-most) and z (their mean).
    """

    parts: MouthConfig = field(default_factory=lambda: MouthConfig(
        cavity_radii=(0.19, 0.30, 0.16), upper_teeth_edge=-0.035, lower_teeth_edge=-0.02, cavity_segments=16, cavity_rings=8))
    reference_contact: tuple[float, float, float] = (0.0, 0.62, -0.475)
    reference_half_width: float = 0.17
    setback: float = 0.0
    min_front: float = 0.4
    min_jaw_spread: float = 0.5
    upper_lip_max_jaw: float = 0.5
    midline_share: float = 0.35


@dataclass(frozen=True)
class FlameMouth:
    """The inside of the mouth in the world frame (indices local to ``points``).

    Attributes:
        points: (M, 3) world frame; faces: (G, 3), facing into the mouth (cavity) or out of it
        (teeth, tongue); labels: (M,) part ids (``_builtin_mouth.PART_NAMES``); colours: (M, 3)
        in [0, 1]; weights: (M, J) skinning weights, rows summing to 1; loop: the inner-lip
        loop's vertex indices of the FLAME mesh it was placed in.
    """

    points: FloatArray
    faces: IntArray
    labels: IntArray
    colours: FloatArray
    weights: FloatArray
    loop: IntArray

    def region_masks(self) -> dict[str, NDArray[np.bool_]]:
        """(M,) masks: ``mouth_interior`` (all) and one per part (``oral_cavity`` …)."""
        masks = {"mouth_interior": np.ones(len(self.points), dtype=bool)}
        for label, name in PART_NAMES.items():
            masks[name] = self.labels == label
        return masks


def boundary_loops(faces: IntArray, num_vertices: int) -> list[IntArray]:
    """The vertex sets of the mesh's boundary loops (edges used by one triangle), each sorted."""
    edges = np.sort(faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)
    unique, counts = np.unique(edges, axis=0, return_counts=True)
    boundary = unique[counts == 1]
    if len(boundary) == 0:
        return []
    graph = sp.coo_matrix((np.ones(len(boundary)), (boundary[:, 0], boundary[:, 1])), shape=(num_vertices,) * 2)
    _, labels = connected_components(graph, directed=False)
    on_loop = np.zeros(num_vertices, dtype=bool)
    on_loop[boundary.reshape(-1)] = True
    return [np.flatnonzero(on_loop & (labels == label)) for label in np.unique(labels[on_loop])]


def inner_lip_loop(vertices: FloatArray, faces: IntArray, jaw_weight: FloatArray,
                   config: FlameMouthConfig = FlameMouthConfig()) -> IntArray | None:
    """The vertex indices of the mouth's boundary loop (module docstring), or None if none opens
    with the jaw. ``vertices`` world frame (V, 3); ``jaw_weight`` (V,) the jaw joint's weight."""
    front = config.min_front * float(vertices[:, 1].max())
    best, best_spread = None, config.min_jaw_spread
    for loop in boundary_loops(faces, len(vertices)):
        if vertices[loop, 1].mean() < front:
            continue
        spread = float(jaw_weight[loop].max() - jaw_weight[loop].min())
        if spread >= best_spread:
            best, best_spread = loop, spread
    return best


def flame_mouth(vertices: FloatArray, faces: IntArray, weights: FloatArray, jaw_joint: int,
                config: FlameMouthConfig = FlameMouthConfig()) -> FlameMouth | None:
    """The inside of the mouth of a world-frame FLAME mesh, or None when its lips do not open.

    Args:
        vertices: (V, 3) world-frame vertices (z up, face toward +y).
        faces: (F, 3) triangles.
        weights: (V, J) FLAME skinning weights.
        jaw_joint: the jaw's joint index (FLAME: 2).
        config: placement and design.
    """
    loop = inner_lip_loop(vertices, faces, weights[:, jaw_joint], config)
    if loop is None:
        return None
    ring = vertices[loop]
    low, high = ring[:, 0].min(), ring[:, 0].max()
    centre_x, half_width = 0.5 * (low + high), 0.5 * (high - low)
    midline = ring[np.abs(ring[:, 0] - centre_x) <= config.midline_share * half_width]
    if len(midline) == 0:
        midline = ring
    scale = half_width / config.reference_half_width
    anchor = np.array([centre_x, midline[:, 1].max() - config.setback * half_width, midline[:, 2].mean()])
    reference = np.asarray(config.reference_contact)
    sculpt = HeadSculpt()  # mouth_parts reads only the mouth line's height from it: ours, frozen here
    sculpt = replace(sculpt, mouth_slit=replace(sculpt.mouth_slit, centre=config.reference_contact))
    parts = mouth_parts(sculpt, config.parts)
    points = anchor + scale * (parts.points - reference)

    jaw = weights[:, jaw_joint]
    upper_lip = jaw[loop] <= max(config.upper_lip_max_jaw, float(jaw[loop].min()))  # at least the least-jaw vertex
    skull_rows = weights[loop[upper_lip]].copy()
    skull_rows[:, jaw_joint] = 0.0
    skull = skull_rows.mean(axis=0)
    skull /= skull.sum()
    jaw_row = np.eye(weights.shape[1])[jaw_joint]
    share = parts.jaw_share[:, None]
    return FlameMouth(points=points, faces=parts.faces, labels=parts.labels, colours=parts.colours,
                      weights=(1.0 - share) * skull + share * jaw_row, loop=loop)


__all__ = ["FlameMouth", "FlameMouthConfig", "boundary_loops", "flame_mouth", "inner_lip_loop"]
