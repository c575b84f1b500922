"""Value checks of splats read from a file (PLY or bundle): one rule set for every reader (issue 19).

Shapes and dtypes are ``GaussianSplats.check_aligned``'s; this module checks the VALUES a crafted
or corrupt file can carry and that would otherwise render silently wrong or crash later:

* at least one splat, at most ``SplatLimits.max_splats``;
* every parameter and the anchors finite (NaN/inf render nothing, silently);
* quaternions: a row whose norm is below ``min_quat_norm`` is no rotation and is refused (the
  rule: non-zero quaternions are normalised where used, ``quat_to_rotmat``; zero ones are an error,
  never guessed);
* log-scales within ±``max_abs_log_scale`` (exp() of more overflows float32 once squared into a
  covariance) and means within ±``max_abs_coordinate`` world units (the head is 2 units tall);
* face splats bound to a vertex index ≥ 0 (the template check, ``check_binding``, bounds it above).

Written by hand: these limits are this project's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import torch
from torch import Tensor

from arc2avatar.errors import InputError


@dataclass(frozen=True)
class SplatLimits:
    """What a splat file may hold.

    Attributes:
        max_splats: most splats in one file (a paper avatar has ≈ 100–300K; 20M is ≈ 5 GB of
            float32 parameters).
        min_quat_norm: smallest quaternion norm accepted (below: a zero quaternion, no rotation).
        max_abs_log_scale: largest |log std| (e^20 ≈ 5·10⁸ world units).
        max_abs_coordinate: largest |x|, |y|, |z| of a mean or anchor, world units.
    """

    max_splats: int = 20_000_000
    min_quat_norm: float = 1e-8
    max_abs_log_scale: float = 20.0
    max_abs_coordinate: float = 1e6


def check_splat_values(tensors: Mapping[str, Tensor], source: str, limits: SplatLimits = SplatLimits()) -> None:
    """Raise ``InputError`` naming ``source`` (the file) and the first problem of the values."""
    means = tensors["means"]
    count = int(means.shape[0]) if means.ndim else 0
    if count < 1:
        raise InputError(f"{source}: holds no splats")
    if count > limits.max_splats:
        raise InputError(f"{source}: holds {count} splats, more than the {limits.max_splats} accepted")
    floats = {name: t for name, t in tensors.items() if t.is_floating_point()}
    bad = [name for name, t in floats.items() if not bool(torch.isfinite(t).all())]
    if bad:
        raise InputError(f"{source}: NaN or infinite values in {', '.join(bad)}; the file is corrupt")
    for name in ("means", "anchors"):
        if name in floats and floats[name].numel() and float(floats[name].abs().max()) > limits.max_abs_coordinate:
            raise InputError(f"{source}: {name} beyond ±{limits.max_abs_coordinate:g} world units; the file is corrupt")
    log_scales = tensors["log_scales"]
    if log_scales.numel() and float(log_scales.abs().max()) > limits.max_abs_log_scale:
        raise InputError(f"{source}: log-scales beyond ±{limits.max_abs_log_scale:g} (scales would overflow); "
                         "the file is corrupt")
    norms = tensors["quats"].float().norm(dim=-1)
    zero = int((norms < limits.min_quat_norm).sum())
    if zero:
        raise InputError(f"{source}: {zero} splat(s) have a zero rotation quaternion (no rotation); the file is corrupt")
    if "face_mask" in tensors and "vertex_index" in tensors:
        face = tensors["face_mask"].bool()
        if bool(face.any()) and int(tensors["vertex_index"][face].min()) < 0:
            raise InputError(f"{source}: a face splat is bound to a negative vertex index; the bundle is corrupt")
