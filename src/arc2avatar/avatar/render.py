"""Re-render a saved avatar: a turntable video or the 16-view sheet (``arc2avatar render``), and
the frontal preview of a training checkpoint (the app's and the Ray head's ``preview.png``)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from arc2avatar._device import pick_device
from arc2avatar._progress import track
from arc2avatar.avatar.media import write_sheet, write_video
from arc2avatar.avatar.model import Avatar
from arc2avatar.avatar.safety import RENDERED_SHEET, RENDERED_VIDEO, avatar_folder_of, check_derived_output
from arc2avatar.cameras.model import MAX_RESOLUTION
from arc2avatar.cameras.samplers import ViewRings, sheet_cameras
from arc2avatar.errors import InputError
from arc2avatar.splats.model import GaussianSplats


def render_avatar(
    avatar_dir: str | Path,
    out: str | Path | None = None,
    *,
    turntable: bool = True,
    size: int = 512,
    frames: int = 120,
    polar_deg: float = 90.0,
    fps: int = 30,
    progress: bool | None = None,
) -> Path:
    """Re-render a saved avatar: a turntable video (or, with ``turntable=False``, the 16-view sheet).

    ``progress``: a bar per frame / view on stderr (None = only on a terminal; ``arc2avatar._progress``).

    ``out`` may not be the avatar's input, one of its folder's own files (``turntable.mp4`` and
    ``views.png`` included: the run wrote them) or lie in its bundle; without ``out`` the video goes
    to ``rendered_turntable.mp4`` and the sheet to ``rendered_views.png`` beside the avatar.
    """
    problems = [m for ok, m in (
        (8 <= size <= MAX_RESOLUTION, f"--size must be in 8..{MAX_RESOLUTION} px (got {size})"),
        (1 <= frames <= 100_000, f"--frames must be in 1..100000 (got {frames})"),
        (1 <= fps <= 240, f"--fps must be in 1..240 (got {fps})"),
        (np.isfinite(polar_deg) and 0.0 < polar_deg < 180.0, f"--polar must be in (0, 180) degrees (got {polar_deg})"),
    ) if not ok]
    if problems:
        raise InputError("render: " + "; ".join(problems))
    base = avatar_folder_of(avatar_dir)[0]  # the output folder, also for a bundle folder or a .ply
    if out is None:
        out = base / (RENDERED_VIDEO if turntable else RENDERED_SHEET)
    check_derived_output(out, avatar_dir)
    avatar = Avatar.load(avatar_dir, device=pick_device("auto"))
    if turntable:
        path = Path(out)
        stream = avatar.turntable_frames(size, ViewRings(), frames, polar_deg)
        write_video(track(stream, frames, "turntable", progress, unit="frame"), path, fps=fps)
        return path
    path = Path(out)
    cameras = sheet_cameras(size, size)  # the 16 test views, framed on the head
    views = [avatar.render_cameras(cameras[i:i + 1]) for i in track(range(len(cameras)), len(cameras), "views",
                                                                    progress, unit="view")]
    return write_sheet(torch.cat(views), path)


def preview_png(checkpoint: Mapping[str, Any], size: int) -> bytes:
    """A frontal ``size``² render of a training checkpoint's splats (``checkpoint["splats"]``, the
    tensors ``torch.load`` returns for a ``checkpoint_*.pt``) as PNG bytes."""
    from PIL import Image

    with torch.no_grad():
        image = Avatar(GaussianSplats.from_tensors(checkpoint["splats"])).render([0.0], size=size)[0]
    buffer = io.BytesIO()
    Image.fromarray((image.clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()
