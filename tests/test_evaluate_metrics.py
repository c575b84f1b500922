"""Claims about the evaluation's numbers (issue 7.3–7.4): FID and KID come from the library and
agree with hand-computed values on small arrays; the Inception features are read from a local
file (a clear one-line error names it when absent); the per-view bookkeeping counts detection
failures as the report says."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

from arc2avatar.errors import InputError, MissingWeightsError
from arc2avatar.evaluate.fid import (
    INCEPTION_FILENAME,
    FidConfig,
    InceptionFeatures,
    clean_resize,
    fid_kid,
    frechet_distance,
    kernel_distance,
    require_inception,
)
from arc2avatar.evaluate.recognizers import AlignedFace
from arc2avatar.evaluate.similarity import Observations, distribution, score_matrix, summarise_views
from arc2avatar.testing.photos import write_stand_in_inception
from arc2avatar.evaluate.views import EvalViews

A = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0]])
B = np.array([[1.0, 1.0], [3.0, 1.0], [1.0, 4.0], [2.0, 2.0]])


def _hand_fid(a: np.ndarray, b: np.ndarray) -> float:
    diff = a.mean(0) - b.mean(0)
    sa, sb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    return float(diff @ diff + np.trace(sa + sb - 2 * scipy.linalg.sqrtm(sa @ sb).real))


def _hand_kid(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD² with k(u, v) = (u·v/d + 1)³ (Bińkowski et al. 2018), equal set sizes."""
    d, m = x.shape[1], len(x)
    k = lambda p, q: (p @ q.T / d + 1.0) ** 3  # noqa: E731
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    off = lambda K: K.sum() - np.trace(K)  # noqa: E731
    return float(off(kxx) / (m * (m - 1)) + off(kyy) / (m * (m - 1)) - 2 * kxy.sum() / m**2)


def test_fid_matches_the_hand_computed_frechet_distance():
    assert frechet_distance(torch.tensor(A), torch.tensor(B)) == pytest.approx(_hand_fid(A, B), rel=1e-9)
    assert _hand_fid(A, B) == pytest.approx(3.0577036728518, rel=1e-9)


def test_fid_of_a_set_with_itself_is_zero_and_of_a_shifted_set_is_the_squared_shift():
    assert frechet_distance(torch.tensor(B), torch.tensor(B)) == pytest.approx(0.0, abs=1e-9)
    assert frechet_distance(torch.tensor(B + [3.0, 4.0]), torch.tensor(B)) == pytest.approx(25.0, rel=1e-9)


def test_kid_matches_the_hand_computed_unbiased_mmd_when_the_subset_is_the_whole_set():
    mean, std = kernel_distance(torch.tensor(A), torch.tensor(B[:3]), FidConfig(kid_subsets=4))
    assert mean == pytest.approx(_hand_kid(A, B[:3]), rel=1e-9)
    assert mean == pytest.approx(44.0 / 9.0, rel=1e-9)  # by hand: (K_xx, K_yy, K_xy sums) → 4.888…
    assert std == pytest.approx(0.0, abs=1e-12)


def test_kid_subsets_are_seeded_and_average_subset_mmds():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(9, 3)), rng.normal(1.0, 1.0, size=(6, 3))
    config = FidConfig(kid_subsets=20, seed=3)
    first = kernel_distance(torch.tensor(x), torch.tensor(y), config)
    assert first == kernel_distance(torch.tensor(x), torch.tensor(y), config)
    assert first[0] > 0 and first[1] > 0


def test_fid_and_kid_need_two_images_per_set():
    with pytest.raises(InputError, match="at least 2"):
        frechet_distance(torch.tensor(A[:1]), torch.tensor(B))
    with pytest.raises(InputError, match="at least 2"):
        fid_kid([np.zeros((8, 8, 3), np.uint8)] * 3, [np.zeros((8, 8, 3), np.uint8)])


def test_missing_inception_weights_give_one_line_naming_the_file(tmp_path):
    config = FidConfig(inception_path=tmp_path / "nowhere" / INCEPTION_FILENAME)
    with pytest.raises(MissingWeightsError) as error:
        require_inception(config)
    message = str(error.value)
    assert "\n" not in message and str(tmp_path / "nowhere" / INCEPTION_FILENAME) in message
    assert "--inception" in message
    with pytest.raises(MissingWeightsError):
        fid_kid([np.zeros((8, 8, 3), np.uint8)] * 2, [np.zeros((8, 8, 3), np.uint8)] * 2, config)


def test_default_inception_location_is_the_weights_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("ARC2AVATAR_WEIGHTS", str(tmp_path))
    write_stand_in_inception(tmp_path / INCEPTION_FILENAME, features=16)
    assert require_inception(FidConfig()) == tmp_path / INCEPTION_FILENAME


def test_clean_resize_keeps_constant_images_constant_and_values_unquantised():
    flat = np.full((40, 60, 3), 77, np.uint8)
    out = clean_resize(flat, 299)
    assert out.shape == (299, 299, 3) and out.dtype == np.float32
    assert np.allclose(out, 77.0, atol=1e-3)
    ramp = np.tile(np.arange(0, 256, 16, dtype=np.uint8)[None, :, None], (16, 1, 3))
    values = clean_resize(ramp, 37)
    assert not np.allclose(values, np.round(values))  # bicubic in float mode: not re-quantised


def test_inception_features_come_from_the_local_torchscript_file(tmp_path):
    path = write_stand_in_inception(tmp_path / INCEPTION_FILENAME, features=32)
    config = FidConfig(inception_path=path, feature_dim=32)
    network = InceptionFeatures(path, config)
    images = [np.full((50, 40, 3), v, np.uint8) for v in (10, 200, 120)]
    features = network.features(images)
    assert features.shape == (3, 32) and features.dtype == torch.float64
    assert not torch.allclose(features[0], features[1])
    result = fid_kid(images[:2], images[1:], config)
    assert result["fid"] > 0 and result["num_renders"] == 2 and result["kid_subset_size"] == 2
    same = fid_kid(images[:2], images[:2], config)
    assert abs(same["fid"]) < 1e-6 * result["fid"] + 1e-4  # (KID is unbiased: it may be negative here)


def test_a_file_that_is_not_torchscript_is_named_in_the_error(tmp_path):
    bad = tmp_path / INCEPTION_FILENAME
    bad.write_bytes(b"not a model")
    with pytest.raises(InputError, match=str(bad)):
        InceptionFeatures(bad)


def test_distribution_matches_hand_values_and_ignores_failures():
    stats = distribution([1.0, 2.0, np.nan, 3.0, 4.0])
    assert stats["count"] == 4 and stats["mean"] == 2.5 and stats["median"] == 2.5
    assert stats["std"] == pytest.approx(np.sqrt(1.25)) and stats["min"] == 1.0 and stats["max"] == 4.0
    assert stats["q25"] == 1.75 and stats["q75"] == 3.25
    assert distribution([np.nan])["mean"] is None


class _FakeRecognizer:
    name, metric, threshold, guidance = "fake", "euclidean", 0.6, False

    def align(self, image):  # pragma: no cover - not used
        return None

    def embed(self, faces):  # pragma: no cover - not used
        return np.zeros((0, 2), np.float32)


def _face() -> AlignedFace:
    return AlignedFace(np.zeros((4, 4, 3), np.uint8), np.array([0, 0, 4, 4], np.float32), 1.0, 1)


def test_view_summary_counts_failures_and_matches_on_hand_made_embeddings():
    recognizer = _FakeRecognizer()
    views = Observations([_face(), None, _face(), _face()],
                         np.array([[0, 0], [np.nan, np.nan], [0.5, 0], [3, 4]], dtype=np.float32))
    refs = Observations([_face(), _face()], np.array([[0, 0], [0, 0.4]], dtype=np.float32))
    scores = score_matrix(recognizer, views, refs)
    assert np.isnan(scores[1]).all()
    assert np.allclose(scores[[0, 2, 3]], [[0, 0.4], [0.5, np.sqrt(0.41)], [5, np.sqrt(9 + 3.6**2)]])
    grid = [(-15.0, 90.0), (0.0, 90.0), (15.0, 90.0), (0.0, 75.0)]
    summary = summarise_views(recognizer, grid, views, scores)
    assert summary["detection_failures"] == 1 and summary["detection_failure_rate"] == 0.25
    assert summary["distribution"]["count"] == 6
    assert summary["match_rate"] == pytest.approx(3 / 6)               # 0, 0.4, 0.5 are < 0.6
    assert summary["match_rate_counting_failures"] == pytest.approx(3 / 8)
    verdicts = [v["same_person"] for v in summary["views"]]
    assert verdicts == [True, None, False, False]                       # a view matches when every reference does
    assert summary["per_ring"]["75"]["count"] == 2


def test_evaluation_views_are_minus_90_to_90_in_steps_of_15_at_polar_90_and_75():
    views = EvalViews()
    assert views.azimuths() == [float(a) for a in range(-90, 91, 15)]
    grid = views.grid()
    assert len(grid) == 26 and grid[0] == (-90.0, 90.0) and grid[-1] == (90.0, 75.0)
    with pytest.raises(InputError):
        EvalViews(azimuth_step_deg=0).azimuths()
