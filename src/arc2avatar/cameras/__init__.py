"""Cameras: the camera model, training-view samplers and schedules, test rings and turntables."""

from arc2avatar.cameras.model import Cameras, intrinsics, look_at, orbit_cameras, project_points, wrap_degrees
from arc2avatar.cameras.samplers import (
    CameraRanges,
    FacePhaseRanges,
    ViewRings,
    heldout_cameras,
    ranges_at,
    sample_face_phase,
    sample_paper,
    sample_release,
    sheet_cameras,
    test_ring_cameras,
    turntable_cameras,
)

__all__ = [
    "CameraRanges",
    "Cameras",
    "FacePhaseRanges",
    "ViewRings",
    "heldout_cameras",
    "intrinsics",
    "look_at",
    "orbit_cameras",
    "project_points",
    "ranges_at",
    "sample_face_phase",
    "sample_paper",
    "sample_release",
    "sheet_cameras",
    "test_ring_cameras",
    "turntable_cameras",
    "wrap_degrees",
]
