"""Claims about the training-view samplers, the range schedule and the fixed rings (docs/method.md §5)."""

import pytest
import torch

from arc2avatar.cameras import samplers
from arc2avatar.cameras.samplers import (
    CameraRanges,
    FacePhaseRanges,
    heldout_cameras,
    ranges_at,
    sample_concentrated,
    sample_face_phase,
    sample_paper,
    sample_release,
    turntable_cameras,
)


def _generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_paper_sampler_puts_one_azimuth_in_each_quadrant_every_batch():
    generator = _generator()
    quadrants = [(-90.0, 0.0), (0.0, 90.0), (-180.0, -90.0), (90.0, 180.0)]
    for iteration in range(0, 6000, 30):  # 200 batches across the schedule
        cams = sample_paper(CameraRanges(), iteration, generator, 16, 16)
        hits = sorted(
            next(q for q, (lo, hi) in enumerate(quadrants) if lo <= az < hi or (q == 3 and az == 180.0))
            for az in cams.azimuth_deg.tolist()
        )
        assert hits == [0, 1, 2, 3]


def test_release_gamma_puts_63_percent_of_azimuths_in_front_half():
    cams = sample_release(CameraRanges(), 0, _generator(1), 8, 8, batch_size=20_000)
    frontal = (cams.azimuth_deg.abs() < 90.0).float().mean().item()
    assert abs(frontal - 0.5 ** (2 / 3)) < 0.03  # docs/official-code.md §4.2: ≈ 0.63


def test_concentrated_sampling_stays_inside_its_range_and_centres():
    draws = sample_concentrated((55.0, 100.0), 1.5, 10_000, _generator(2))
    assert draws.min() >= 55.0 and draws.max() <= 100.0
    assert abs(draws.mean().item() - 77.5) < 0.5


@pytest.mark.parametrize(
    "iteration, radius, fovy",
    [
        (0, (5.6, 5.9), (0.4, 0.6)),
        (1499, (5.6, 5.9), (0.4, 0.6)),
        (1500, (5.32, 5.9), (0.32, 0.66)),
        (3000, (5.054, 5.9), (0.3, 0.7)),
        (4500, (4.8013, 5.9), (0.3, 0.7)),
        (6000, (4.6, 5.9), (0.3, 0.7)),
    ],
)
def test_schedule_matches_official_release_table(iteration, radius, fovy):
    start = CameraRanges()
    relaxed = ranges_at(start, iteration)
    assert relaxed.radius == pytest.approx(radius, abs=1e-4)
    assert relaxed.fovy == pytest.approx(fovy, abs=1e-4)
    assert start.radius == (5.6, 5.9) and start.fovy == (0.4, 0.6)  # never mutated


def test_sampled_views_respect_the_relaxed_ranges_and_look_at_the_head():
    cams = sample_release(CameraRanges(), 6000, _generator(3), 32, 32, batch_size=512)
    assert cams.radius.min() >= 4.6 - 1e-6 and cams.radius.max() <= 5.9 + 1e-6
    assert cams.fovy.min() >= 0.3 - 1e-6 and cams.fovy.max() <= 0.7 + 1e-6
    assert cams.radius.min() < 4.8  # the relaxed range is used
    # jitter is small: the origin projects near the image centre in every view
    from arc2avatar.cameras.model import project_points

    pix, depth = project_points(cams, torch.zeros(1, 3))
    assert (depth > 4.0).all()
    assert ((pix[:, 0, :] - 16.0).abs() < 3.0).all()


def test_same_seed_gives_same_cameras_and_another_seed_differs():
    for draw in (
        lambda g: sample_paper(CameraRanges(), 100, g, 8, 8),
        lambda g: sample_release(CameraRanges(), 100, g, 8, 8),
        lambda g: sample_face_phase(FacePhaseRanges(), g, 8, 8),
    ):
        a, b, c = draw(_generator(7)), draw(_generator(7)), draw(_generator(8))
        assert torch.equal(a.viewmats, b.viewmats) and torch.equal(a.Ks, b.Ks)
        assert not torch.equal(a.viewmats, c.viewmats)


def test_face_phase_views_are_frontal_and_zoomed():
    cams = sample_face_phase(FacePhaseRanges(), _generator(4), 8, 8, batch_size=2000)
    assert cams.azimuth_deg.abs().max() <= 60.0
    assert cams.polar_deg.min() >= 70.0 and cams.polar_deg.max() <= 100.0
    assert cams.fovy.min() >= 0.2 and cams.fovy.max() <= 0.3


def test_test_ring_has_16_views_at_r45_on_two_polar_rings():
    cams = samplers.test_ring_cameras(64, 64)
    assert len(cams) == 16
    assert torch.allclose(cams.centres.norm(dim=-1), torch.full((16,), 4.5), atol=1e-4)
    assert sorted(set(cams.polar_deg.tolist())) == [60.0, 90.0]
    assert torch.allclose(cams.fovy, torch.full((16,), 0.7))
    assert sorted(set(cams.azimuth_deg.tolist())) == [-135.0, -90.0, -45.0, 0.0, 45.0, 90.0, 135.0, 180.0]


def test_heldout_views_never_coincide_with_test_ring_views():
    test = samplers.test_ring_cameras(64, 64).centres
    held = heldout_cameras(64, 64).centres
    assert held.shape == (16, 3)
    assert torch.cdist(held, test).min() > 1.0


def test_turntable_covers_the_circle_evenly():
    cams = turntable_cameras(32, 32)
    assert len(cams) == 120
    steps = torch.diff(torch.atan2(cams.centres[:, 0], cams.centres[:, 1]).rad2deg())
    steps = torch.remainder(steps, 360.0)
    assert torch.allclose(steps, torch.full_like(steps, 3.0), atol=1e-3)
