"""What an avatar folder holds, and the ``Avatar`` object that reads one back.

Layout of an output folder (every file written atomically):
  avatar.ply        standard 3DGS PLY for splat viewers (compact: SH degree 0, 14 floats;
                    outputs.ply_layout=unity: 62 floats, SH-3 padded; docs/exports.md)
  avatar/           the bundle: splats.safetensors + avatar.json (face binding, template info)
  views.png         the 16 test views (θ 90° and 60°, 8 azimuths each)
  turntable.mp4     a turntable at θ 90°
  viewer.html       a self-contained WebGL2 page: orbit, zoom, expression sliders (arc2avatar.viewer)
  config.yaml       the resolved configuration
  log.jsonl         the optimisation log
  metrics.json      oracle runs: held-out-view PSNR / SSIM (and timings)
  checkpoint.pt     the last checkpoint (for --resume; removed when the run completes)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import Tensor

from arc2avatar.cameras.model import Cameras, orbit_cameras
from arc2avatar.cameras.samplers import ViewRings, test_ring_cameras, turntable_cameras
from arc2avatar.errors import InputError
from arc2avatar.splats.bundle import load_bundle, save_bundle
from arc2avatar.splats.model import GaussianSplats
from arc2avatar.splats.ply import read_ply, write_ply
from arc2avatar.splats.render import rasterize

PLY_NAME = "avatar.ply"
BUNDLE_NAME = "avatar"
SHEET_NAME = "views.png"
VIDEO_NAME = "turntable.mp4"
CONFIG_NAME = "config.yaml"
METRICS_NAME = "metrics.json"


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
        """Read an output folder, a bundle folder, or a bare ``.ply`` (no face binding then)."""
        path = Path(path)
        if path.is_file() and path.suffix.lower() == ".ply":
            return cls(read_ply(path).to(device))
        bundle_dir = path / BUNDLE_NAME if (path / BUNDLE_NAME).is_dir() else path
        if not (bundle_dir / "avatar.json").is_file():
            if (path / PLY_NAME).is_file():
                return cls(read_ply(path / PLY_NAME).to(device))
            raise InputError(f"{path} holds no avatar (no {BUNDLE_NAME}/avatar.json and no {PLY_NAME})")
        bundle = load_bundle(bundle_dir)
        return cls(bundle.splats.to(device), dict(bundle.template_info), dict(bundle.extra))

    def save(self, out_dir: str | Path, ply_layout: str = "compact") -> None:
        """Write ``avatar.ply`` (``ply_layout``: "compact" or "unity") and the bundle into ``out_dir``."""
        out_dir = Path(out_dir)
        write_ply(out_dir / PLY_NAME, self.splats, layout=ply_layout)
        save_bundle(out_dir / BUNDLE_NAME, self.splats, self.template, self.extra)

    def export(self, path: str | Path, format: str | None = None, up: str | None = None, **options: Any) -> Path:
        """Write the avatar in another tool's format (``arc2avatar.avatar.export.export_avatar``).

        >>> Avatar.load("out/").export("head.spz", up="y")
        """
        from arc2avatar.avatar.export import export_avatar

        return export_avatar(self, path, format=format, up=up, **options)

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


def write_avatar_outputs(
    out_dir: Path,
    avatar: Avatar,
    *,
    size: int,
    rings: ViewRings = ViewRings(),
    fps: int = 30,
    quality: int = 8,
    columns: int = 8,
    video: bool = True,
    ply_layout: str = "compact",
) -> dict[str, Path]:
    """Write the PLY (``ply_layout``: "compact" or "unity"), the bundle, the test-view sheet and the turntable video."""
    from arc2avatar.pipeline.media import write_sheet, write_video

    avatar.save(out_dir, ply_layout=ply_layout)
    views = avatar.render_cameras(test_ring_cameras(size, size, rings))
    written = {"ply": out_dir / PLY_NAME, "bundle": out_dir / BUNDLE_NAME}
    written["sheet"] = write_sheet(views, out_dir / SHEET_NAME, columns=columns)
    if video:
        write_video(avatar.turntable_frames(size, rings), out_dir / VIDEO_NAME, fps=fps, quality=quality)
        written["video"] = out_dir / VIDEO_NAME
    return written
