"""Cameras: the camera model, training-view samplers and schedules, test rings and turntables."""

from arc2avatar.cameras.model import Cameras, intrinsics, look_at, orbit_cameras, project_points, wrap_degrees

__all__ = ["Cameras", "intrinsics", "look_at", "orbit_cameras", "project_points", "wrap_degrees"]
