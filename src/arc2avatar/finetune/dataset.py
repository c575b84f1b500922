"""The multi-view fine-tuning dataset: its format, its validator and its in-memory loader (docs/method.md §8).

Format (one folder per identity; a dataset root is either one such folder or a folder of them)::

    DATA/ID/
      frontal.png        the frontal photo; its ArcFace embedding conditions every view
      id.npy             OR/AND: that embedding, float (512,) with unit L2 norm (wins over frontal.png)
      views.json         {"views": [{"file": "views/000.png", "azimuth_deg": 0.0, "elevation_deg": 0.0}, ...]}
      views/000.png ...  ≈ 26 renders over 360°, square RGB(A) images

Angles follow ``arc2avatar.cameras``: azimuth in degrees from the frontal view, in (−180, 180]
(+ turns towards the subject's left as ``orbit_cameras`` does), elevation in degrees above the
horizon, in [−90, 90] (elevation = 90° − polar angle θ).

Written by hand (no library validates this format): ``check_dataset`` collects EVERY problem of
every identity (one precise message each, naming the file) instead of stopping at the first, so
that ``arc2avatar finetune check`` can list them all. Images are decoded with Pillow.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError
from .._io import atomic_write_text

VIEWS_JSON = "views.json"
FRONTAL_PNG = "frontal.png"
ID_NPY = "id.npy"
#: Length of the ArcFace identity vector (docs/method.md §1).
ID_DIM = 512


@dataclass(frozen=True)
class DatasetLimits:
    """What ``check_dataset`` accepts (docs/method.md §8: ≈ 26 views over 360°, 512² training images).

    Attributes:
        min_views: fewest views per identity (docs/method.md §8 uses ≈ 26; 8 still covers 360°).
        min_side: smallest image side in pixels (images are resized to the training resolution).
        azimuth_range_deg: open-closed azimuth interval (−180, 180], degrees (cameras convention).
        elevation_range_deg: closed elevation interval, degrees.
        unit_norm_tolerance: |‖id‖ − 1| allowed for ``id.npy``.
        max_side: largest image side in pixels, read from the header before any pixel is
            decoded (a decompression-bomb guard; training resizes to 512² anyway).
    """

    min_views: int = 8
    min_side: int = 64
    max_side: int = 8192
    azimuth_range_deg: tuple[float, float] = (-180.0, 180.0)
    elevation_range_deg: tuple[float, float] = (-90.0, 90.0)
    unit_norm_tolerance: float = 1e-3


@dataclass(frozen=True)
class ViewRecord:
    """One view: absolute image path and its camera angles (degrees)."""

    path: Path
    azimuth_deg: float
    elevation_deg: float


@dataclass(frozen=True)
class IdentityRecord:
    """One identity folder that passed the checks.

    Attributes:
        root: the identity folder.
        frontal: ``frontal.png`` or None.
        id_vector: ``id.npy`` path or None (at least one of frontal / id_vector is set).
        views: its views, in ``views.json`` order.
    """

    root: Path
    frontal: Path | None
    id_vector: Path | None
    views: tuple[ViewRecord, ...]


@dataclass
class DatasetReport:
    """Outcome of ``check_dataset``: the usable identities and every problem found (one line each)."""

    root: Path
    identities: list[IdentityRecord] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and bool(self.identities)

    @property
    def view_count(self) -> int:
        return sum(len(i.views) for i in self.identities)

    def summary(self) -> str:
        """Human-readable report: counts, then one ``- problem`` line per problem."""
        head = f"{self.root}: {len(self.identities)} valid identities, {self.view_count} views"
        if not self.problems:
            return head + ", no problems"
        return head + f", {len(self.problems)} problem(s):\n" + "\n".join(f"  - {p}" for p in self.problems)

    def raise_if_invalid(self) -> None:
        """Raise one ``InputError`` listing every problem (or saying the dataset is empty)."""
        if not self.ok:
            raise InputError(f"the fine-tuning dataset is not usable.\n{self.summary()}\n"
                             "See docs/finetune.md for the format; `arc2avatar finetune check DATA` lists the problems.")


def identity_folders(root: Path) -> list[Path]:
    """``[root]`` if it holds views.json, else its sub-folders (sorted), each an identity."""
    if (root / VIEWS_JSON).exists():
        return [root]
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def check_image(path: Path, limits: DatasetLimits) -> str | None:
    """None if ``path`` is a readable square image with side ≥ ``limits.min_side``, else the problem."""
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        return f"{path}: file listed in views.json does not exist"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our max_side check replaces it
            with Image.open(path) as img:
                width, height = img.size
                if max(width, height) > limits.max_side:
                    return (f"{path}: image is too large ({width}×{height}, at most {limits.max_side} px a side); "
                            "downscale it")
                img.load()
    except Image.DecompressionBombError as err:
        return f"{path}: image is too large to decode safely ({err}); downscale it"
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as err:
        return f"{path}: unreadable image ({type(err).__name__}: {err})"
    if width != height:
        return f"{path}: image is not square ({width}×{height}); crop it to a square around the head"
    if width < limits.min_side:
        return f"{path}: image is too small ({width}×{height}, need at least {limits.min_side}×{limits.min_side})"
    return None


def check_id_vector(path: Path, limits: DatasetLimits) -> str | None:
    """None if ``path`` holds a finite (512,) unit vector, else the problem."""
    try:
        vec = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        return f"{path}: not a readable .npy file ({type(err).__name__}: {err})"
    vec = np.asarray(vec)
    if vec.shape not in ((ID_DIM,), (1, ID_DIM)):
        return f"{path}: wrong embedding shape {vec.shape}, expected ({ID_DIM},) (an ArcFace vector)"
    if not np.issubdtype(vec.dtype, np.floating) or not np.isfinite(vec).all():
        return f"{path}: embedding must be finite floats, got dtype {vec.dtype}"
    norm = float(np.linalg.norm(vec))
    if abs(norm - 1.0) > limits.unit_norm_tolerance:
        return f"{path}: embedding is not unit length (L2 norm {norm:.4f}); normalise it"
    return None


def _angle(entry: dict, key: str, where: str, interval: tuple[float, float], open_low: bool) -> tuple[float | None, str | None]:
    value = entry.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None, f"{where}: {key} must be a finite number, got {value!r}"
    low, high = interval
    inside = (low < value if open_low else low <= value) and value <= high
    if not inside:
        bracket = "(" if open_low else "["
        return None, f"{where}: {key} {value} is out of range {bracket}{low:g}, {high:g}]"
    return float(value), None


def _outside(folder: Path, name: str, where: str) -> str | None:
    """The problem when ``name`` (from views.json) leaves ``folder``: an absolute path, ``..``, or a
    symbolic link (of the file or a folder on its way) resolving outside it; else None."""
    relative = Path(name)
    if relative.is_absolute() or ".." in relative.parts or not name.strip():
        return f"{where}: file must be a path inside the identity folder (no absolute paths, no '..')"
    try:
        inside = (folder / relative).resolve().is_relative_to(folder.resolve())
    except (OSError, RuntimeError):  # a symlink loop
        inside = False
    if not inside:
        return f"{where}: file leads outside the identity folder (a symbolic link?); refused"
    return None


def _read_views_json(folder: Path) -> tuple[list | None, str | None]:
    path = folder / VIEWS_JSON
    if not path.is_file():
        return None, f"{path}: missing views.json (lists the views and their azimuth/elevation)"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:  # JSONDecodeError, too-long integers
        return None, f"{path}: not valid JSON ({err})"
    except RecursionError:
        return None, f"{path}: nested too deeply to be a views.json"
    views = data.get("views") if isinstance(data, dict) else None
    if not isinstance(views, list):
        return None, f"{path}: expected an object with a \"views\" list"
    return views, None


def check_identity(folder: Path, limits: DatasetLimits = DatasetLimits()) -> tuple[IdentityRecord | None, list[str]]:
    """Check one identity folder; return its record (None if broken) and every problem found."""
    problems: list[str] = []
    frontal = folder / FRONTAL_PNG
    id_path = folder / ID_NPY
    if id_path.exists():
        if (p := _outside(folder, ID_NPY, str(id_path)) or check_id_vector(id_path, limits)) is not None:
            problems.append(p)
    elif frontal.exists():
        if (p := _outside(folder, FRONTAL_PNG, str(frontal)) or check_image(frontal, limits)) is not None:
            problems.append(p)
    else:
        problems.append(f"{folder}: neither {FRONTAL_PNG} nor {ID_NPY} (the identity that conditions every view)")
    entries, err = _read_views_json(folder)
    if err is not None:
        return None, problems + [err]
    views: list[ViewRecord] = []
    for k, entry in enumerate(entries or []):
        where = f"{folder / VIEWS_JSON} view {k}"
        if not isinstance(entry, dict) or not isinstance(entry.get("file"), str):
            problems.append(f"{where}: expected {{\"file\": ..., \"azimuth_deg\": ..., \"elevation_deg\": ...}}")
            continue
        where = f"{where} ({entry['file']})"
        az, az_err = _angle(entry, "azimuth_deg", where, limits.azimuth_range_deg, open_low=True)
        el, el_err = _angle(entry, "elevation_deg", where, limits.elevation_range_deg, open_low=False)
        image_err = _outside(folder, entry["file"], where) or check_image(folder / entry["file"], limits)
        found = [e for e in (az_err, el_err, image_err) if e is not None]
        problems += found
        if not found:
            views.append(ViewRecord(folder / entry["file"], az, el))  # type: ignore[arg-type]
    if len(entries or []) < limits.min_views:
        problems.append(f"{folder / VIEWS_JSON}: only {len(entries or [])} views, need at least {limits.min_views}")
    if problems:
        return None, problems
    return IdentityRecord(folder, frontal if frontal.exists() else None,
                          id_path if id_path.exists() else None, tuple(views)), []


def check_dataset(root: str | os.PathLike, limits: DatasetLimits = DatasetLimits()) -> DatasetReport:
    """Check a dataset root (one identity folder, or a folder of them) against the format.

    Returns:
        ``DatasetReport`` with the valid identities and every problem (message names the file).
        Never raises for a broken dataset; ``report.raise_if_invalid()`` does.
    """
    root = Path(root)
    report = DatasetReport(root)
    if not root.is_dir():
        report.problems.append(f"{root}: dataset folder does not exist")
        return report
    folders = identity_folders(root)
    if not folders:
        report.problems.append(f"{root}: no identity folders (each needs views.json and frontal.png or id.npy)")
    for folder in folders:
        record, problems = check_identity(folder, limits)
        report.problems += problems
        if record is not None:
            report.identities.append(record)
    return report


def write_views_json(folder: Path, views: list[tuple[str, float, float]]) -> Path:
    """Write ``views.json`` for (relative file, azimuth_deg, elevation_deg) triples, atomically."""
    data = {"views": [{"file": f, "azimuth_deg": float(a), "elevation_deg": float(e)} for f, a, e in views]}
    path = folder / VIEWS_JSON
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")
    return path


def wrap_azimuth(azimuth_deg: float) -> float:
    """Azimuth mapped into (−180, 180] degrees."""
    wrapped = math.fmod(azimuth_deg + 180.0, 360.0)
    wrapped = wrapped + 360.0 if wrapped <= 0 else wrapped
    return wrapped - 180.0


def load_image_tensor(path: Path, size: int) -> "np.ndarray":
    """(size, size, 3) float32 in [0, 1]: RGB (alpha composited on white), resized with Lanczos."""
    from PIL import Image

    with Image.open(path) as img:
        img = img.convert("RGBA")
        white = Image.new("RGBA", img.size, (255, 255, 255, 255))
        rgb = Image.alpha_composite(white, img).convert("RGB")
        if rgb.size != (size, size):
            rgb = rgb.resize((size, size), Image.Resampling.LANCZOS)
        return np.asarray(rgb, dtype=np.float32) / 255.0
