"""The splats every export writer receives: plain numpy arrays in the frame being written.

``SplatArrays`` holds the raw parameters as the 3DGS PLY stores them (log scales, opacity
logits, SH-0 colour coefficients, unit quaternions w, x, y, z); the activated values each format
wants (linear scales, alpha, RGB) are derived here once, with the rule our renderer uses
(``arc2avatar.splats.model``: rgb = SH_C0·f_dc + 0.5, alpha = sigmoid(logit), scale = exp).

The up-axis change (docs/exports.md "Up axis"): arc2avatar's world is z up with the face toward
+y; y-up tools (three.js, Spark, GaussianSplats3D, PlayCanvas, glTF) look from +z toward
−z with +y up. ``Y_UP_MATRIX`` maps (x, y, z) → (−x, z, y): up (+z) becomes +y and the face
(+y) turns to +z, toward the default camera. It is a proper rotation (det +1): 180° about the
axis (0, 1, 1)/√2, quaternion (w, x, y, z) = (0, 0, 1/√2, 1/√2), so a splat's orientation
becomes ``Y_UP_QUAT ⊗ q`` and its scales are unchanged. SH degree 0 needs no rotation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from arc2avatar.splats.model import SH_C0, GaussianSplats
from arc2avatar.splats.rotations import quat_multiply

UP_AXES: tuple[str, ...] = ("z", "y")
Y_UP_MATRIX = np.array([[-1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]], dtype=np.float64)
Y_UP_QUAT = np.array([0.0, 0.0, math.sqrt(0.5), math.sqrt(0.5)], dtype=np.float64)  # (w, x, y, z)
FRAME_NAMES = {"z": "world z up, face toward +y", "y": "y up, face toward +z (y-up viewers)"}


@dataclass(frozen=True)
class SplatArrays:
    """N splats as float32 numpy arrays, in the frame named by ``up``.

    Attributes:
        means_n3: centres (world units).
        quats_n4: unit quaternions (w, x, y, z), local → world.
        log_scales_n3: log standard deviations along the splat's axes.
        opacity_logits_n: opacity before the sigmoid.
        f_dc_n3: SH degree-0 colour coefficients.
        up: "z" (arc2avatar's frame) or "y" (rotated by ``Y_UP_MATRIX``).
    """

    means_n3: np.ndarray
    quats_n4: np.ndarray
    log_scales_n3: np.ndarray
    opacity_logits_n: np.ndarray
    f_dc_n3: np.ndarray
    up: str = "z"

    @classmethod
    def from_splats(cls, splats: GaussianSplats, up: str = "z") -> "SplatArrays":
        """The splats' parameters (quaternions normalised), turned to ``up``."""
        params = {name: p.detach().cpu().double() for name, p in splats.params.items()}
        quats = params["quats"] / params["quats"].norm(dim=-1, keepdim=True).clamp_min(1e-12)
        means = params["means"].numpy()
        if up == "y":
            means = means @ Y_UP_MATRIX.T
            quats = quat_multiply(torch.from_numpy(Y_UP_QUAT), quats)
        elif up != "z":
            raise ValueError(f"up must be one of {UP_AXES}, got {up!r}")
        return cls(*(np.ascontiguousarray(a, dtype=np.float32) for a in (
            means, quats.numpy(), params["log_scales"].numpy(), params["opacity_logits"].numpy(),
            params["f_dc"].numpy())), up=up)  # fmt: skip

    @property
    def count(self) -> int:
        return int(self.means_n3.shape[0])

    @property
    def frame(self) -> str:
        """The frame in words (for file comments)."""
        return FRAME_NAMES[self.up]

    def rgb(self) -> np.ndarray:
        """(N, 3) colour in [0, 1] (our renderer's rule, clamped to what 8 bits hold)."""
        return np.clip(SH_C0 * self.f_dc_n3 + 0.5, 0.0, 1.0)

    def alpha(self) -> np.ndarray:
        """(N,) opacity in (0, 1)."""
        return 1.0 / (1.0 + np.exp(-self.opacity_logits_n.astype(np.float64)))

    def scales(self) -> np.ndarray:
        """(N, 3) linear standard deviations."""
        return np.exp(self.log_scales_n3.astype(np.float64))

    def to_splats(self) -> GaussianSplats:
        """Free ``GaussianSplats`` holding these arrays (for the PLY writer)."""
        import torch

        return GaussianSplats({
            "means": torch.from_numpy(self.means_n3.copy()), "quats": torch.from_numpy(self.quats_n4.copy()),
            "log_scales": torch.from_numpy(self.log_scales_n3.copy()),
            "opacity_logits": torch.from_numpy(self.opacity_logits_n.copy()), "f_dc": torch.from_numpy(self.f_dc_n3.copy()),
        })  # fmt: skip
