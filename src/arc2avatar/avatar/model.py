"""The ``Avatar``: a finished avatar's splats and the template description they are bound to.

``Avatar.load`` reads an output folder (layout in ``arc2avatar.avatar.layout``), a bundle folder or a
bare ``.ply``; ``render`` / ``render_cameras`` draw it (gsplat on CUDA, our PyTorch path on a CPU);
``save`` writes the PLY and the bundle.
"""


from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import Tensor

from arc2avatar.cameras.model import Cameras, orbit_cameras
from arc2avatar.cameras.samplers import ViewRings, turntable_cameras
from arc2avatar._guard import check_stays_inside
from arc2avatar.avatar.layout import BUNDLE_NAME, PLY_NAME
from arc2avatar.avatar.template import template_levels
from arc2avatar.errors import InputError
from arc2avatar.splats.bundle import load_bundle, save_bundle
from arc2avatar.splats.model import GaussianSplats
from arc2avatar.splats.ply import read_ply, write_ply
from arc2avatar.splats.render import rasterize




@dataclass
class Avatar:
    """A finished avatar: its splats and the template description they are bound to.

    >>> avatar = Avatar.load("out/")
    >>> images = avatar.render(azimuths_deg=[0, 90], size=512)   # (2, 512, 512, 3) in [0, 1]
    """

    splats: GaussianSplats
    template: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | Path, device: torch.device | str = "cpu") -> "Avatar":
        """Read an output folder, a bundle folder, or a bare ``.ply`` (no face binding then).

        ``InputError`` for anything ``load_bundle`` refuses, template info no reader can use
        (``avatar.template.template_levels``) and a file or bundle folder that is a symbolic link
        leading out of the avatar folder."""
        path = Path(path)
        if path.is_file() and path.suffix.lower() == ".ply":
            return cls(read_ply(path).to(device))
        bundle_dir = path / BUNDLE_NAME if (path / BUNDLE_NAME).is_dir() else path
        if not (bundle_dir / "avatar.json").is_file():
            if (path / PLY_NAME).is_file():
                return cls(read_ply(check_stays_inside(path / PLY_NAME, path)).to(device))
            raise InputError(f"{path} holds no avatar (no {BUNDLE_NAME}/avatar.json and no {PLY_NAME})")
        check_stays_inside(bundle_dir, path)  # the bundle folder itself may not link out of the avatar folder
        bundle = load_bundle(bundle_dir)
        template_levels(bundle.template_info)  # the one check of the template info, for every reader
        return cls(bundle.splats.to(device), dict(bundle.template_info), dict(bundle.extra))

    def save(self, out_dir: str | Path, ply_layout: str = "compact") -> None:
        """Write ``avatar.ply`` (``ply_layout``: "compact" or "unity") and the bundle into ``out_dir``."""
        out_dir = Path(out_dir)
        write_ply(out_dir / PLY_NAME, self.splats, layout=ply_layout)
        save_bundle(out_dir / BUNDLE_NAME, self.splats, self.template, self.extra)

    @torch.no_grad()
    def render_cameras(self, cameras: Cameras, background: tuple[float, float, float] = (1.0, 1.0, 1.0), batch: int = 8) -> Tensor:
        """(C, H, W, 3) renders in [0, 1] for any ``Cameras`` (batched to bound memory)."""
        return torch.cat(list(self._render_batches(cameras, background, batch))).clamp(0, 1)

    def _render_batches(self, cameras: Cameras, background: tuple[float, float, float], batch: int) -> Iterator[Tensor]:
        s = self.splats
        device = s.means.device
        bg = torch.tensor(background, dtype=torch.float32, device=device)
        for start in range(0, len(cameras), batch):
            cams = cameras[start:start + batch].to(device)
            yield rasterize(s.means, s.rotations, s.scales, s.opacities, s.colors, cams, bg).rgb.cpu()

    def render(
        self,
        azimuths_deg: list[float] | tuple[float, ...] = (0.0,),
        polar_deg: float = 90.0,
        size: int = 512,
        radius: float = ViewRings.radius,
        fovy: float = ViewRings.fovy,
        background: tuple[float, float, float] = (1.0, 1.0, 1.0),
    ) -> Tensor:
        """(N, size, size, 3) renders at the given azimuths on the evaluation orbit."""
        cameras = orbit_cameras(radius, polar_deg, torch.tensor(list(azimuths_deg), dtype=torch.float32), fovy, size, size)
        return self.render_cameras(cameras, background)

    def turntable_frames(self, size: int, rings: ViewRings = ViewRings(), frames: int | None = None, polar_deg: float | None = None) -> Iterator[Tensor]:
        """Turntable frames (H, W, 3) one by one (memory stays flat for long videos)."""
        cameras = turntable_cameras(size, size, frames, polar_deg, rings)
        for batch in self._render_batches(cameras, (1.0, 1.0, 1.0), 8):
            yield from batch.clamp(0, 1)
