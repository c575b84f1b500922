"""Synthetic fine-tuning data: identity folders of random content in the dataset layout."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from arc2avatar.finetune.dataset import wrap_azimuth, write_views_json


def write_synthetic_identity(
    folder: str | os.PathLike, views: int = 26, side: int = 64, seed: int = 0, id_npy: bool = True
) -> Path:
    """Write a valid identity folder of random content (for tests and benchmarks).

    ``id.npy`` (a random unit 512-d vector) or a random ``frontal.png``, ``views`` random square
    PNGs of ``side`` pixels at azimuths evenly spaced over 360° (elevation 0), and ``views.json``.
    """
    from PIL import Image

    folder = Path(folder)
    rng = np.random.default_rng(seed)
    (folder / "views").mkdir(parents=True, exist_ok=True)
    if id_npy:
        vec = rng.normal(size=512)
        np.save(folder / "id.npy", (vec / np.linalg.norm(vec)).astype(np.float32))
    else:
        Image.fromarray(rng.integers(0, 255, (side, side, 3), dtype=np.uint8)).save(folder / "frontal.png")
    entries = []
    for k in range(views):
        Image.fromarray(rng.integers(0, 255, (side, side, 3), dtype=np.uint8)).save(folder / f"views/{k:03d}.png")
        entries.append((f"views/{k:03d}.png", wrap_azimuth(k * 360.0 / views), 0.0))
    write_views_json(folder, entries)
    return folder
