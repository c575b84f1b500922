"""The fixed evaluation views (paper §4, Fig. 5; docs/method.md §9) and rendering them.

Azimuth −90°…90° in steps of 15° at polar angles 90° (eye level) and 75° (15° above), on the
test orbit of ``arc2avatar.cameras.samplers.ViewRings`` (radius 4.5, fovy 0.7 rad), white
background, square images. 512² by default: dlib's detector needs faces of ≈ 80 px, and the
face spans ≈ 150 px of a 512² render at this framing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from arc2avatar.cameras.model import Cameras, orbit_cameras
from arc2avatar.cameras.samplers import ViewRings
from arc2avatar.errors import InputError
from arc2avatar.avatar.model import Avatar


@dataclass(frozen=True)
class EvalViews:
    """Evaluation cameras (docs/method.md §9).

    Attributes:
        azimuth_min_deg, azimuth_max_deg, azimuth_step_deg: the azimuth grid, degrees
            (0 = frontal, positive toward world +x); both ends included.
        polar_deg: polar angles θ of the rings, degrees from +z (90 = eye level).
        size: render width = height, pixels.
        radius: camera distance, world units (the test orbit's 4.5).
        fovy: vertical field of view, radians (the test orbit's 0.7).
        background: RGB in [0, 1] (white, as the paper's renders).
    """

    azimuth_min_deg: float = -90.0
    azimuth_max_deg: float = 90.0
    azimuth_step_deg: float = 15.0
    polar_deg: tuple[float, ...] = (90.0, 75.0)
    size: int = 512
    radius: float = ViewRings.radius
    fovy: float = ViewRings.fovy
    background: tuple[float, float, float] = (1.0, 1.0, 1.0)

    def azimuths(self) -> list[float]:
        """The azimuth grid, degrees, both ends included."""
        if self.azimuth_step_deg <= 0 or self.azimuth_max_deg < self.azimuth_min_deg:
            raise InputError(f"bad azimuth grid {self.azimuth_min_deg}…{self.azimuth_max_deg} step "
                             f"{self.azimuth_step_deg}")
        count = int(np.floor((self.azimuth_max_deg - self.azimuth_min_deg) / self.azimuth_step_deg + 1e-9)) + 1
        return [float(self.azimuth_min_deg + i * self.azimuth_step_deg) for i in range(count)]

    def grid(self) -> list[tuple[float, float]]:
        """(azimuth, polar) of every view, ring by ring."""
        return [(az, pol) for pol in self.polar_deg for az in self.azimuths()]


def evaluation_cameras(views: EvalViews, grid: list[tuple[float, float]] | None = None) -> Cameras:
    """The cameras of ``views.grid()`` (or of an explicit (azimuth, polar) list)."""
    grid = views.grid() if grid is None else grid
    azimuth = torch.tensor([a for a, _ in grid], dtype=torch.float32)
    polar = torch.tensor([p for _, p in grid], dtype=torch.float32)
    return orbit_cameras(views.radius, polar, azimuth, views.fovy, views.size, views.size)


def render_views(avatar: Avatar, views: EvalViews, grid: list[tuple[float, float]] | None = None) -> np.ndarray:
    """(N, S, S, 3) uint8 renders of the avatar at the evaluation views (rounded from [0, 1])."""
    rgb = avatar.render_cameras(evaluation_cameras(views, grid), background=views.background)
    return (rgb.clamp(0, 1) * 255).round().to(torch.uint8).numpy()


__all__ = ["EvalViews", "evaluation_cameras", "render_views"]
