"""The standard outputs of an avatar folder: PLY, bundle, test-view sheet, turntable video."""

from __future__ import annotations

from pathlib import Path

from arc2avatar.avatar.layout import BUNDLE_NAME, PLY_NAME, SHEET_NAME, VIDEO_NAME
from arc2avatar.avatar.media import write_sheet, write_video
from arc2avatar.avatar.model import Avatar
from arc2avatar.cameras.samplers import ViewRings, sheet_cameras


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
    """Write the PLY (``ply_layout``: "compact" or "unity"), the bundle, the test-view sheet
    (framed on the head: ``cameras.samplers.sheet_cameras``) and the turntable video."""
    avatar.save(out_dir, ply_layout=ply_layout)
    views = avatar.render_cameras(sheet_cameras(size, size, rings))  # framed on the head
    written = {"ply": out_dir / PLY_NAME, "bundle": out_dir / BUNDLE_NAME}
    written["sheet"] = write_sheet(views, out_dir / SHEET_NAME, columns=columns)
    if video:
        write_video(avatar.turntable_frames(size, rings), out_dir / VIDEO_NAME, fps=fps, quality=quality)
        written["video"] = out_dir / VIDEO_NAME
    return written
