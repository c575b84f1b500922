"""Claims about the shared camera convention (docs/method.md §5, docs/official-code.md §4.1)."""

import torch

from arc2avatar.cameras import orbit_cameras, project_points


def test_frontal_camera_sees_origin_at_centre_and_up_as_image_up():
    cams = orbit_cameras(4.5, 90.0, 0.0, 0.7, 64, 64)
    pix, depth = project_points(cams, torch.tensor([[0.0, 0, 0], [0.0, 0, 0.3], [0.3, 0, 0]]))
    assert torch.allclose(pix[0, 0], torch.tensor([32.0, 32.0]), atol=1e-4)
    assert torch.allclose(depth[0], torch.full((3,), 4.5), atol=1e-5)
    assert pix[0, 1, 1] < 32.0  # world +z is up in the image (smaller row)
    assert pix[0, 2, 0] < 32.0  # world +x appears on the image's left at azimuth 0


def test_camera_centres_follow_spherical_convention():
    cams = orbit_cameras(5.0, torch.tensor([90.0, 60.0]), torch.tensor([90.0, 180.0]), 0.5, 32, 32)
    expected = torch.tensor([[5.0, 0.0, 0.0], [0.0, -5.0 * (3**0.5) / 2, 2.5]])
    assert torch.allclose(cams.centres, expected, atol=1e-4)
    assert torch.allclose(cams.azimuth_deg, torch.tensor([90.0, 180.0]))
