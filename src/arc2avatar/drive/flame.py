"""The fit's landmark model for a FLAME head: expression coefficients and the jaw (docs/driving.md).

FLAME places its landmarks by a *landmark embedding*: for each landmark a triangle of the mesh
(``lmk_face_idx``) and barycentric coordinates in it (``lmk_b_coords``). The file distributed with
FLAME (``flame_static_embedding.pkl``, ``--flame-landmarks``) holds the 51 inner points of the
iBUG 300-W scheme (brows, nose, eyes, mouth: landmarks 17–67; the jaw contour slides along the
silhouette and is not embedded statically); a 68-point embedding with the same two keys is taken
as it is. Landmarks the embedding lacks get no weight in the fit.

**Without the embedding file** the built-in template's landmark table (``landmarks``) is carried
over: each of its 68 neutral positions is moved along the viewing direction onto the front-most
triangle of the FLAME skin under it (``frontal_embedding``; both templates live in the same world
frame, height 2, face toward +y). That places the landmarks only approximately (FLAME's face has
other proportions than the built-in head), so, as for the built-in head, each landmark then
follows the FLAME surface under the actor's landmark in the neutral frame
(``fit.FrameFitter._follow_surface``), and the actor's offsets absorb the rest. The embedding file
is the more faithful of the two (docs/driving.md).

The fitted quantities are FLAME's first ``num_expressions`` expression coefficients (the head's
``exp_000``, ``exp_001``, … columns, bounded to ±``coefficient_bound``) and the jaw's opening, a
rotation of FLAME's jaw joint about its x axis (``jaw_open_rad`` radians, bounded to
``[0, max_jaw_rad]``). The fit (``fit.FrameFitter``) is linear in its weights, so the jaw enters
linearised: its column is the landmarks' displacement per radian under FLAME's skinning, measured
at ``linearise_at_rad`` (a central difference). That is exact to first order; at 0.3 rad the
landmark error of the linearisation is a few per cent of the jaw's displacement.

Written by hand: reading the two arrays, the barycentric sums and the frontal projection; skinning
is the head's own (``head.flame.FlameSkinning``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from arc2avatar.drive.fit import LandmarkModel
from arc2avatar.drive.landmarks import NUM_LANDMARKS, load_landmark_table
from arc2avatar.errors import InputError
from arc2avatar.head.flame import safe_unpickle

JAW_NAME = "jaw_open_rad"
STATIC_FIRST = 17  # a 51-point embedding starts at iBUG landmark 17 (the first brow point)


@dataclass(frozen=True)
class FlameFitConfig:
    """What the fit solves for on a FLAME head.

    Attributes:
        num_expressions: FLAME expression coefficients fitted (the first ones: they carry the
            most variance); the rest stay 0.
        coefficient_bound: each coefficient is bounded to ±this (FLAME's are unit-variance).
        max_jaw_rad: the jaw opens at most this far, radians (0.5 ≈ 29°, a wide-open mouth).
        linearise_at_rad: the jaw's column is the landmarks' central-difference derivative at
            this opening, radians.
        step_rad: the difference step, radians.
    """

    num_expressions: int = 10
    coefficient_bound: float = 3.0
    max_jaw_rad: float = 0.5
    linearise_at_rad: float = 0.1
    step_rad: float = 0.01


@dataclass(frozen=True)
class LandmarkEmbedding:
    """``face_index`` (L,) mesh triangles, ``barycentric`` (L, 3), ``first`` the iBUG index of the
    first landmark (17 for FLAME's 51-point static embedding, 0 for 68 points)."""

    face_index: np.ndarray
    barycentric: np.ndarray
    first: int


def read_landmark_embedding(path: str | Path) -> LandmarkEmbedding:
    """FLAME's landmark embedding (``.pkl`` as distributed, or ``.npz``) with ``lmk_face_idx`` and
    ``lmk_b_coords`` for 51 or 68 landmarks; ``InputError`` for anything else."""
    path = Path(path)
    if path.suffix.lower() == ".npz":
        try:
            with np.load(path, allow_pickle=False) as data:
                raw = {key: data[key] for key in data.files}
        except (OSError, ValueError) as error:
            raise InputError(f"FLAME landmark embedding {path} cannot be read: {error}") from None
    else:
        raw = safe_unpickle(path, what="FLAME landmark embedding")
    if not isinstance(raw, dict) or not {"lmk_face_idx", "lmk_b_coords"} <= set(raw):
        raise InputError(f"FLAME landmark embedding {path} has no lmk_face_idx and lmk_b_coords: pass FLAME's "
                         "flame_static_embedding.pkl (or an .npz with those two arrays)")
    faces = np.asarray(raw["lmk_face_idx"]).astype(np.int64).reshape(-1)
    coords = np.asarray(raw["lmk_b_coords"], dtype=np.float64)
    count = faces.shape[0]
    if count not in (NUM_LANDMARKS - STATIC_FIRST, NUM_LANDMARKS) or coords.shape != (count, 3):
        raise InputError(f"FLAME landmark embedding {path}: expected 51 or 68 landmarks with (L, 3) barycentric "
                         f"coordinates, got lmk_face_idx {faces.shape} and lmk_b_coords {coords.shape}")
    return LandmarkEmbedding(faces, coords, NUM_LANDMARKS - count)


def _embed(values_v: torch.Tensor, faces_f3: torch.Tensor, embedding: LandmarkEmbedding) -> np.ndarray:
    """(L, ...) barycentric sums of per-vertex ``values_v`` (V, ...) at the embedded landmarks."""
    corners = values_v[faces_f3[torch.from_numpy(embedding.face_index)]].double().numpy()  # (L, 3, ...)
    weights = embedding.barycentric.reshape(embedding.barycentric.shape + (1,) * (corners.ndim - 2))
    return (corners * weights).sum(axis=1)


def _skin_triangles(head) -> np.ndarray:
    """Indices of the triangles of ``head`` that touch no eyeball vertex (``regions["eyes"]``)
    and none of the mouth's inside (``mouth_interior``: the teeth show through FLAME's lips)."""
    faces = head.faces.numpy()
    off_skin = np.zeros(head.num_vertices, dtype=bool)
    for region in ("eyes", "mouth_interior"):
        if region in head.regions:
            off_skin |= head.regions[region].numpy()
    return np.flatnonzero(~off_skin[faces].any(axis=1))


def frontal_embedding(head, positions_l3: np.ndarray) -> LandmarkEmbedding:
    """A 68-point ``LandmarkEmbedding`` of ``head``: each position (world frame) moved along the
    viewing direction (y) onto the front-most skin triangle whose x–z footprint holds it; a
    position over no triangle takes the triangle whose centroid is nearest in x–z."""
    vertices = head.vertices.double().numpy()
    faces = head.faces.numpy()
    skin = _skin_triangles(head)
    corners = vertices[faces[skin]]  # (F, 3, 3)
    a, b, c = corners[:, 0, [0, 2]], corners[:, 1, [0, 2]], corners[:, 2, [0, 2]]
    e1, e2 = b - a, c - a
    det = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    valid = np.abs(det) > 1e-12
    face_index = np.empty(len(positions_l3), dtype=np.int64)
    barycentric = np.empty((len(positions_l3), 3))
    for i, point in enumerate(np.asarray(positions_l3, dtype=np.float64)):
        d = point[[0, 2]] - a
        with np.errstate(divide="ignore", invalid="ignore"):
            u = (d[:, 0] * e2[:, 1] - d[:, 1] * e2[:, 0]) / det
            v = (e1[:, 0] * d[:, 1] - e1[:, 1] * d[:, 0]) / det
            inside = valid & (u >= 0) & (v >= 0) & (u + v <= 1)  # edge-on triangles: inf + (−inf), not valid
        if inside.any():
            hits = np.flatnonzero(inside)
            depth = (1 - u[hits] - v[hits]) * corners[hits, 0, 1] + u[hits] * corners[hits, 1, 1] + v[hits] * corners[hits, 2, 1]
            best = hits[depth.argmax()]  # the front-most: largest y (the face looks toward +y)
            weights = np.array([1 - u[best] - v[best], u[best], v[best]])
        else:
            best = np.linalg.norm(corners[:, :, [0, 2]].mean(axis=1) - point[[0, 2]], axis=1).argmin()
            weights = np.full(3, 1 / 3)
        face_index[i], barycentric[i] = skin[best], weights
    return LandmarkEmbedding(face_index, barycentric, NUM_LANDMARKS - len(positions_l3))


def flame_landmark_model(head, embedding: LandmarkEmbedding | None = None, config: FlameFitConfig = FlameFitConfig(),
                         residual_px: np.ndarray | None = None) -> LandmarkModel:
    """The ``LandmarkModel`` of a FLAME ``HeadModel`` (the base template, whose triangles the
    embedding names): weights ``exp_000`` … and ``jaw_open_rad``. Without ``embedding`` the
    built-in table is carried over (``frontal_embedding``) and the landmarks follow the surface
    under the actor's landmarks; ``residual_px`` (the table's, ``landmarks.landmark_residuals``)
    then weights them as for the built-in head."""
    if head.pose_fn is None or "jaw" not in (head.pose_names or ()):
        raise InputError(f"template {head.name} is not a FLAME head (no jaw joint): use the built-in landmark table")
    frontal = embedding is None
    if embedding is None:
        embedding = frontal_embedding(head, np.asarray(load_landmark_table()["positions"], dtype=np.float64))
    num_faces = head.faces.shape[0]
    if embedding.face_index.min() < 0 or embedding.face_index.max() >= num_faces:
        raise InputError(f"the FLAME landmark embedding names triangles up to {embedding.face_index.max()}, "
                         f"but {head.name} has {num_faces}: is it the embedding of this FLAME version?")
    count = min(config.num_expressions, head.num_expressions)
    names = tuple(head.expression_names[:count]) + (JAW_NAME,)
    vertices = head.vertices.double()

    def jaw(angle: float) -> torch.Tensor:
        return head.pose_fn(vertices, {"jaw": torch.tensor([angle, 0.0, 0.0], dtype=torch.float64)})

    at, step = config.linearise_at_rad, config.step_rad
    jaw_column = (jaw(at + step) - jaw(at - step)) / (2 * step)  # (V, 3) per radian
    basis_v = torch.cat([head.expression_basis[:, :, :count].double(), jaw_column[:, :, None]], dim=2)
    points = np.zeros((NUM_LANDMARKS, 3))
    basis = np.zeros((NUM_LANDMARKS, 3, len(names)))
    rows = slice(embedding.first, NUM_LANDMARKS)
    points[rows] = _embed(vertices, head.faces, embedding)
    basis[rows] = _embed(basis_v, head.faces, embedding)
    present = np.zeros(NUM_LANDMARKS, dtype=bool)
    present[rows] = True
    points[~present] = points[present].mean(axis=0)  # unused (weight 0); finite for the projection
    bound = config.coefficient_bound
    lower = np.array([-bound] * count + [0.0])
    upper = np.array([bound] * count + [config.max_jaw_rad])
    model = LandmarkModel(points, basis, names, present=present, lower=lower, upper=upper)
    if frontal:
        skin = np.zeros(head.num_vertices, dtype=bool)
        skin[head.faces.numpy()[_skin_triangles(head)].ravel()] = True
        face = np.flatnonzero(head.face_mask.numpy() & skin)
        model.surface = vertices.numpy()[face]
        model.surface_basis = basis_v.numpy()[face]
        model.residual_px = residual_px
    return model


__all__ = ["FlameFitConfig", "JAW_NAME", "LandmarkEmbedding", "flame_landmark_model", "frontal_embedding",
           "read_landmark_embedding"]
