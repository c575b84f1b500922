"""Fitting FLAME expression coefficients and the jaw to landmarks (issue 16, ``drive.flame``).

No FLAME file ships here: the head is the synthetic FLAME (``testing.flame``), and its landmark
embedding is a synthetic one in FLAME's layout (51 triangles + barycentric coordinates, iBUG
landmarks 17–67), placed where the built-in table's landmarks fall on the synthetic face. Landmarks
of known coefficients, jaw openings and head turns are projected through the drive camera and the
fit must give the coefficients and the jaw back.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from arc2avatar.avatar.pose import rotation_from_angles
from arc2avatar.drive.fit import DriveCamera, FitConfig, FrameFitter
from arc2avatar.drive.flame import (
    JAW_NAME,
    FlameFitConfig,
    LandmarkEmbedding,
    flame_landmark_model,
    read_landmark_embedding,
)
from arc2avatar.drive.landmarks import load_landmark_table
from arc2avatar.errors import InputError
from arc2avatar.testing.flame import synthetic_flame_head

COEFFICIENTS, FRAMES, SIZE = 10, 12, 320


@pytest.fixture(scope="module")
def head():
    return synthetic_flame_head(seed=0)


@pytest.fixture(scope="module")
def embedding(head) -> LandmarkEmbedding:
    """51 front-facing triangles nearest (in the frontal image plane) to the built-in table's
    landmarks 17–67, with random barycentric coordinates."""
    vertices, faces = head.vertices.double().numpy(), head.faces.numpy()
    centroids = vertices[faces].mean(axis=1)
    front = np.flatnonzero(head.face_mask.numpy()[faces].all(axis=1) & (centroids[:, 1] > 0.3))
    table = np.asarray(load_landmark_table()["positions"])[17:]
    chosen = [front[np.linalg.norm(centroids[front][:, [0, 2]] - p[[0, 2]], axis=1).argmin()] for p in table]
    return LandmarkEmbedding(np.array(chosen), np.random.default_rng(1).dirichlet(np.ones(3), size=51), 17)


def _landmarks(head, embedding, coefficients, jaw_rad, yaw_deg, pitch_deg, camera) -> np.ndarray:
    """(68, 2) pixel landmarks of the posed synthetic FLAME (the jaw by FLAME's own skinning)."""
    basis = head.expression_basis[:, :, :COEFFICIENTS].double()
    vertices = head.vertices.double() + torch.einsum("vck,k->vc", basis, torch.from_numpy(coefficients))
    vertices = head.pose_fn(vertices, {"jaw": torch.tensor([jaw_rad, 0.0, 0.0], dtype=torch.float64)}).numpy()
    corners = vertices[head.faces.numpy()[embedding.face_index]]
    points = (corners * embedding.barycentric[:, :, None]).sum(axis=1) @ rotation_from_angles(yaw_deg, pitch_deg, 0.0).T
    full = np.concatenate([np.repeat(points.mean(axis=0, keepdims=True), 17, axis=0), points])  # no contour
    return camera.project(full)[0]


def test_flame_coefficients_and_jaw_are_recovered_through_head_turns(head, embedding):
    model = flame_landmark_model(head, embedding, FlameFitConfig(num_expressions=COEFFICIENTS))
    assert model.names[-1] == JAW_NAME and model.names[:2] == ("exp_000", "exp_001")
    assert not model.present[:17].any() and model.present[17:].all()
    rng = np.random.default_rng(0)
    coefficients = rng.uniform(-1.5, 1.5, (FRAMES, COEFFICIENTS))
    jaw = rng.uniform(0.0, 0.3, FRAMES)
    yaw, pitch = rng.uniform(-15, 15, FRAMES), rng.uniform(-8, 8, FRAMES)
    coefficients[0], jaw[0], yaw[0], pitch[0] = 0.0, 0.0, 0.0, 0.0  # the neutral frame
    camera = DriveCamera(SIZE, SIZE, FitConfig())
    frames = [_landmarks(head, embedding, c, j, y, p, camera) for c, j, y, p in zip(coefficients, jaw, yaw, pitch)]
    fitter = FrameFitter(model, camera, FitConfig())
    fitter.set_neutral(frames[0])
    fitted = np.array([fitter.fit(landmarks).weights for landmarks in frames])
    assert np.abs(fitted[:, :COEFFICIENTS] - coefficients).max() < 0.1, np.abs(fitted[:, :COEFFICIENTS] - coefficients)
    # the jaw is linearised at 0.1 rad: a few per cent of its opening off at 0.3 rad
    assert np.abs(fitted[:, -1] - jaw).max() < 0.02, np.c_[fitted[:, -1], jaw]


def test_the_embedding_file_is_read_as_flame_ships_it_and_bad_ones_are_refused(head, embedding, tmp_path):
    pkl = tmp_path / "flame_static_embedding.pkl"
    with pkl.open("wb") as handle:  # FLAME's file: a dict of numpy arrays, pickle protocol 2
        pickle.dump({"lmk_face_idx": embedding.face_index.astype(np.uint32), "lmk_b_coords": embedding.barycentric,
                     "full_lmk_faces_idx": np.zeros((1, 68), np.int64)}, handle, protocol=2)
    read = read_landmark_embedding(pkl)
    assert read.first == 17 and np.array_equal(read.face_index, embedding.face_index)
    assert np.allclose(read.barycentric, embedding.barycentric)
    npz = tmp_path / "embedding68.npz"
    np.savez(npz, lmk_face_idx=np.zeros(68, np.int64), lmk_b_coords=np.full((68, 3), 1 / 3))
    assert read_landmark_embedding(npz).first == 0

    np.savez(npz, lmk_face_idx=np.zeros(40, np.int64), lmk_b_coords=np.full((40, 3), 1 / 3))
    with pytest.raises(InputError, match="expected 51 or 68 landmarks"):
        read_landmark_embedding(npz)
    np.savez(npz, something_else=np.zeros(3))
    with pytest.raises(InputError, match="no lmk_face_idx and lmk_b_coords"):
        read_landmark_embedding(npz)
    beyond = LandmarkEmbedding(embedding.face_index + head.faces.shape[0], embedding.barycentric, 17)
    with pytest.raises(InputError, match="is it the embedding of this FLAME version"):
        flame_landmark_model(head, beyond)
