"""Builders that turn multi-view renders into the fine-tuning dataset format (docs/method.md §8).

Two sources: a saved arc2avatar avatar (rendered on an orbit with ``Avatar.render_cameras``; its
``identity.npy``, written by ``arc2avatar create``, becomes ``id.npy``), and any folder of
renders with a sidecar of angles (e.g. PanoHead turntables). Written by hand: the folder layout
and the sidecar reading; each identity is built in a hidden staging folder beside the target and
renamed into place, so a failed build leaves nothing half-written.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from .._io import read_json
from ..cameras.samplers import ViewRings
from .._guard import check_replaceable, mark_owned
from ..errors import InputError
from .dataset import FRONTAL_PNG, ID_NPY, check_image, DatasetLimits, wrap_azimuth, write_views_json
from ..avatar.model import Avatar
from ..cameras.model import orbit_cameras

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


@dataclass(frozen=True)
class AvatarRenderConfig:
    """Orbit of the views rendered from an avatar (docs/method.md §8: ≈ 26 views over 360°).

    Attributes:
        views_per_ring: evenly spaced azimuths per elevation ring, starting at 0° (frontal).
        elevations_deg: elevation of each ring, degrees above the horizon (ours: 0 and ±15°
            cover the heads' top and chin a little; 26 views in all with the defaults).
        size: image side, pixels (docs/method.md §8: 512).
        radius: camera distance, world units (docs/method.md §5 evaluation orbit).
        fovy: vertical field of view, radians (docs/method.md §5).
        background: RGB in [0, 1] behind the splats.
    """

    views_per_ring: tuple[int, ...] = (14, 6, 6)
    elevations_deg: tuple[float, ...] = (0.0, 15.0, -15.0)
    size: int = 512
    radius: float = ViewRings.radius
    fovy: float = ViewRings.fovy
    background: tuple[float, float, float] = (1.0, 1.0, 1.0)

    def angles(self) -> list[tuple[float, float]]:
        """(azimuth_deg, elevation_deg) of every view, ring by ring; the first is (0, 0)."""
        if len(self.views_per_ring) != len(self.elevations_deg):
            raise InputError("AvatarRenderConfig: views_per_ring and elevations_deg must have the same length")
        return [(wrap_azimuth(k * 360.0 / n), el) for n, el in zip(self.views_per_ring, self.elevations_deg)
                for k in range(n)]


DATASET_KIND = "finetune-identity"  # the marker (``_guard.mark_owned``) of a folder built here


class _Staging:
    """A hidden folder beside ``target`` that replaces it on success.

    ``overwrite`` replaces only a folder this module built (its marker), never the working
    folder, an input in ``protected`` or a folder holding one (``_guard.check_replaceable``).
    """

    def __init__(self, target: Path, overwrite: bool, protected: tuple[str | os.PathLike | None, ...] = ()) -> None:
        self.check(target, overwrite, protected)
        target.parent.mkdir(parents=True, exist_ok=True)
        self.target = target
        self.path = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
        (self.path / "views").mkdir()
        mark_owned(self.path, DATASET_KIND)

    @staticmethod
    def check(target: Path, overwrite: bool, protected: tuple[str | os.PathLike | None, ...] = ()) -> None:
        """Raise ``InputError`` unless ``target`` is new, or replaceable with ``overwrite``."""
        if target.exists() or target.is_symlink():
            if not overwrite:
                raise InputError(f"{target} already exists; pick another -o or pass --overwrite")
            check_replaceable(target, DATASET_KIND, [p for p in protected if p is not None])

    def __enter__(self) -> Path:
        return self.path

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is None:
            if self.target.exists():
                shutil.rmtree(self.target)
            os.replace(self.path, self.target)
        else:
            shutil.rmtree(self.path, ignore_errors=True)


def _save_png(pixels_hw3: np.ndarray, path: Path) -> None:
    from PIL import Image

    Image.fromarray((np.clip(pixels_hw3, 0, 1) * 255).round().astype(np.uint8)).save(path, format="PNG")


def build_from_avatar(avatar_dir: str | os.PathLike, out: str | os.PathLike,
                      config: AvatarRenderConfig = AvatarRenderConfig(), overwrite: bool = False,
                      device: str = "cpu") -> Path:
    """Render a saved avatar into one identity folder ``out`` (frontal.png = the azimuth-0 render).

    ``identity.npy`` in ``avatar_dir`` (written by ``arc2avatar create``) is copied as ``id.npy``.
    """
    import torch


    avatar_dir = Path(avatar_dir)
    _Staging.check(Path(out), overwrite, (avatar_dir,))  # before any rendering
    avatar = Avatar.load(avatar_dir, device=device)
    angles = config.angles()
    az = torch.tensor([a for a, _ in angles], dtype=torch.float32)
    polar = torch.tensor([90.0 - e for _, e in angles], dtype=torch.float32)
    cameras = orbit_cameras(config.radius, polar, az, config.fovy, config.size, config.size)
    images = avatar.render_cameras(cameras, background=config.background).numpy()  # (V, S, S, 3)
    with _Staging(Path(out), overwrite, (avatar_dir,)) as stage:
        entries = []
        for k, ((a, e), img) in enumerate(zip(angles, images)):
            _save_png(img, stage / f"views/{k:03d}.png")
            entries.append((f"views/{k:03d}.png", a, e))
        _save_png(images[0], stage / FRONTAL_PNG)
        write_views_json(stage, entries)
        identity = avatar_dir / "identity.npy"
        if avatar_dir.is_dir() and identity.is_file():
            shutil.copyfile(identity, stage / ID_NPY)
    return Path(out)


def read_angle_sidecar(path: Path) -> dict[str, tuple[float, float]]:
    """``{file name: (azimuth_deg, elevation_deg)}`` from a sidecar JSON.

    Accepted: ``{"views": [{"file", "azimuth_deg", "elevation_deg"}, ...]}`` (our own format) or
    ``{"NAME.png": {"azimuth_deg": .., "elevation_deg": ..}, ...}``; elevation defaults to 0.
    """
    data = read_json(path, "angle sidecar")
    items: Iterator[tuple[str, dict]]
    if isinstance(data, dict) and isinstance(data.get("views"), list):
        items = ((str(v.get("file")), v) for v in data["views"] if isinstance(v, dict))
    elif isinstance(data, dict):
        items = ((k, v) for k, v in data.items())
    else:
        raise InputError(f"angle sidecar {path}: expected a JSON object")
    angles: dict[str, tuple[float, float]] = {}
    for name, entry in items:
        try:
            angles[Path(name).name] = (float(entry["azimuth_deg"]), float(entry.get("elevation_deg", 0.0)))
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise InputError(f"angle sidecar {path}: entry {name!r} needs a numeric azimuth_deg ({err})") from err
    return angles


def build_from_folder(renders: str | os.PathLike, out: str | os.PathLike, angles_json: str | os.PathLike | None = None,
                      frontal: str | os.PathLike | None = None, id_vector: str | os.PathLike | None = None,
                      overwrite: bool = False, limits: DatasetLimits = DatasetLimits(min_views=1, min_side=1)) -> Path:
    """Copy renders with known angles into one identity folder ``out``.

    Args:
        renders: folder of images.
        angles_json: sidecar of angles (default ``renders/angles.json``; see ``read_angle_sidecar``);
            azimuths are wrapped into (−180, 180].
        frontal: the frontal photo (default: the render whose azimuth and elevation are nearest 0).
        id_vector: an ``.npy`` ArcFace vector to store as ``id.npy`` (optional).
    Raises:
        InputError: sidecar unreadable, an image it lists missing/unreadable, no images.
    """
    from PIL import Image

    renders = Path(renders)
    sidecar = Path(angles_json) if angles_json else renders / "angles.json"
    _Staging.check(Path(out), overwrite, (renders, sidecar, frontal, id_vector))  # before reading anything
    angles = read_angle_sidecar(sidecar)
    files = sorted(p for p in renders.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.name in angles)
    missing = sorted(set(angles) - {p.name for p in files})
    if missing:
        raise InputError(f"angle sidecar {sidecar} lists images not in {renders}: {', '.join(missing[:5])}")
    if not files:
        raise InputError(f"{renders}: no images listed in {sidecar}")
    problems = [p for f in files if (p := check_image(f, limits)) is not None]
    if problems:
        raise InputError("cannot build the dataset:\n  - " + "\n  - ".join(problems))
    with _Staging(Path(out), overwrite, (renders, sidecar, frontal, id_vector)) as stage:
        entries = []
        for k, f in enumerate(files):
            with Image.open(f) as img:
                img.convert("RGBA" if "A" in img.getbands() else "RGB").save(stage / f"views/{k:03d}.png", format="PNG")
            az, el = angles[f.name]
            entries.append((f"views/{k:03d}.png", wrap_azimuth(az), el))
        write_views_json(stage, entries)
        if frontal is None:
            nearest = min(range(len(entries)), key=lambda i: abs(entries[i][1]) + abs(entries[i][2]))
            shutil.copyfile(stage / entries[nearest][0], stage / FRONTAL_PNG)
        else:
            with Image.open(frontal) as img:
                img.convert("RGB").save(stage / FRONTAL_PNG, format="PNG")
        if id_vector is not None:
            shutil.copyfile(id_vector, stage / ID_NPY)
    return Path(out)
