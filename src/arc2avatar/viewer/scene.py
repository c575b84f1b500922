"""What the viewer page shows: splats as plain arrays, plus one displacement per expression.

``avatar_scene`` turns an avatar (and the template its face is bound to) into a
``ViewerScene``: per splat a centre, standard deviations, a unit quaternion, an RGB colour (SH
degree 0) and an opacity, with the face splats in the first ``num_face`` rows; per exposed
expression ``k`` and face splat ``i`` a displacement ``deltas[k, i]`` and (optionally) a rotation
vector ``rotvecs[k, i]``.

Both come from the project's own rig (``arc2avatar.avatar.rig.FaceRig``, the code
behind ``apply_expression`` and ``arc2avatar express``) posed at weight 1 of that expression
alone, minus the neutral avatar. The page then evaluates, on the GPU,

* ``mean(w) = mean + Σ_k w_k · deltas[k]`` — exact for every weight vector when a face splat sits
  on its template vertex (the blendshapes are linear, and so is ``v'``); a splat off its vertex
  has an extra ``(R(w) − I)·offset`` term that is exact at single unit weights and linearised
  in between;
* ``rotation(w) = exp(Σ_k w_k · rotvecs[k]) ⊗ rotation`` — exact at single unit weights (the
  rig's ``quat(R)`` there), a geodesic blend in between (the rig's ``R = F'·Fᵀ`` is not a
  linear function of the weights). ``ViewerConfig.bake_rotations = False`` drops it (splats
  then keep their neutral orientation; about half the expression data).

FLAME joint poses are not offered (skinning is not linear); use ``arc2avatar express --pose``.
Colours above 1 (the activation has no upper clamp) are clamped to 1 on the page.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from arc2avatar.avatar.model import Avatar
from arc2avatar.avatar.rig import FaceRig, check_binding
from arc2avatar.avatar.template import HeadSetup
from arc2avatar.cameras.samplers import ViewRings
from arc2avatar.errors import InputError
from arc2avatar.splats.rotations import quat_multiply


@dataclass(frozen=True)
class ViewerCameraConfig:
    """The page's orbit camera (same conventions as ``arc2avatar.cameras.model``).

    Attributes:
        radius: start distance from the head's centre, world units (the test views' 4.5).
        polar_deg: start polar angle θ from +z, degrees (90: eye level).
        azimuth_deg: start azimuth φ from +y toward +x, degrees (0: facing the face).
        fovy: vertical field of view, radians (the test views' 0.7).
        min_radius, max_radius: zoom limits, world units.
        min_polar_deg, max_polar_deg: orbit limits of θ, degrees (away from the poles, where
            the +z up vector is undefined).
        orbit_deg_per_px: degrees of azimuth / polar angle per pixel dragged.
        zoom_per_wheel_px: the radius is multiplied by exp(this · wheel delta in pixels).
        near, far: clipping distances, world units (docs/method.md §5: 0.01, 100).
    """

    radius: float = ViewRings.radius
    polar_deg: float = 90.0
    azimuth_deg: float = 0.0
    fovy: float = ViewRings.fovy
    min_radius: float = 1.5
    max_radius: float = 20.0
    min_polar_deg: float = 5.0
    max_polar_deg: float = 175.0
    orbit_deg_per_px: float = 0.4
    zoom_per_wheel_px: float = 0.001
    near: float = 0.01
    far: float = 100.0


@dataclass(frozen=True)
class ViewerConfig:
    """What ``viewer.html`` holds and how it behaves.

    Attributes:
        max_expressions: at most this many expression sliders: the template's first ones
            (built-in: all 10; FLAME: exp_000 … exp_009). 0 = no sliders.
        expression_names: explicit slider names instead (each must be the template's);
            empty = the first ``max_expressions``.
        builtin_slider_range: slider (min, max) for the built-in template (weights around 0…1).
        flame_slider_range: slider (min, max) for FLAME expression coefficients (about ±2σ).
        slider_step: slider resolution, weight units.
        bake_rotations: also store the per-expression rotation of every face splat (see the
            module docstring); False halves the expression data and keeps orientations neutral.
        background: page background behind the splats, RGB in [0, 1] (white, as ``views.png``).
        camera: the orbit camera.
        texture_width: width of the data textures on the GPU, texels (rows = ceil(N / width)).
        sort_bins: buckets of the depth counting sort (65536: 16-bit depth keys).
        gzip_level: zlib level of the embedded data (1 fastest … 9 smallest); the page inflates
            it with the browser's own ``DecompressionStream``.
        title: page title; empty = "arc2avatar — <template name>".
    """

    max_expressions: int = 10
    expression_names: tuple[str, ...] = ()
    builtin_slider_range: tuple[float, float] = (0.0, 1.0)
    flame_slider_range: tuple[float, float] = (-2.0, 2.0)
    slider_step: float = 0.01
    bake_rotations: bool = True
    background: tuple[float, float, float] = (1.0, 1.0, 1.0)
    camera: ViewerCameraConfig = field(default_factory=ViewerCameraConfig)
    texture_width: int = 2048
    sort_bins: int = 65536
    gzip_level: int = 6
    title: str = ""


@dataclass(frozen=True)
class ViewerScene:
    """The arrays a page shows; face splats come first.

    Attributes:
        means: (N, 3) float32 centres, world frame (z up, face toward +y).
        scales: (N, 3) float32 standard deviations along the local axes, world units.
        quats: (N, 4) float32 unit quaternions (w, x, y, z).
        colors: (N, 3) float32 RGB, SH degree 0 evaluated (≥ 0; clamped to 1 on the page).
        opacities: (N,) float32 in [0, 1].
        num_face: rows [0, num_face) are face splats, the ones expressions move.
        expression_names: K slider names.
        deltas: (K, num_face, 3) float32 displacement of each face splat at weight 1, world units.
        rotvecs: (K, num_face, 3) float32 rotation vectors (axis · angle in radians) at weight 1,
            or None (orientations stay neutral).
        slider_range: (min, max) of every slider, weight units.
        info: JSON-able facts shown on the page (template, counts, the avatar's own expression).
    """

    means: np.ndarray
    scales: np.ndarray
    quats: np.ndarray
    colors: np.ndarray
    opacities: np.ndarray
    num_face: int = 0
    expression_names: tuple[str, ...] = ()
    deltas: np.ndarray | None = None
    rotvecs: np.ndarray | None = None
    slider_range: tuple[float, float] = (0.0, 1.0)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def num_splats(self) -> int:
        return int(self.means.shape[0])

    def __post_init__(self) -> None:
        n, k = self.num_splats, len(self.expression_names)
        expected = {"means": (n, 3), "scales": (n, 3), "quats": (n, 4), "colors": (n, 3), "opacities": (n,)}
        if k:
            expected["deltas"] = (k, self.num_face, 3)
            if self.rotvecs is not None:
                expected["rotvecs"] = (k, self.num_face, 3)
        for name, shape in expected.items():
            value = getattr(self, name)
            if value is None or tuple(value.shape) != shape:
                got = None if value is None else tuple(value.shape)
                raise ValueError(f"ViewerScene.{name} has shape {got}, expected {shape}")
        if not 0 <= self.num_face <= n:
            raise ValueError(f"ViewerScene.num_face = {self.num_face} is outside [0, {n}]")


def splats_arrays(splats: Any) -> dict[str, np.ndarray]:
    """Activated splat values as float32 numpy arrays (means, scales, quats, colors, opacities)."""
    return {
        "means": splats.means.detach().cpu().float().numpy(),
        "scales": splats.scales.detach().cpu().float().numpy(),
        "quats": splats.rotations.detach().cpu().float().numpy(),
        "colors": splats.colors.detach().cpu().float().numpy(),
        "opacities": splats.opacities.detach().cpu().float().numpy(),
    }


def pick_expressions(names: list[str], config: ViewerConfig) -> tuple[str, ...]:
    """The slider names: ``config.expression_names`` (checked) or the first ``max_expressions``."""
    if config.max_expressions < 0:
        raise InputError(f"max_expressions must be ≥ 0, got {config.max_expressions}")
    if config.expression_names:
        unknown = [name for name in config.expression_names if name not in names]
        if unknown:
            shown = ", ".join(names[:12]) + (" …" if len(names) > 12 else "")
            raise InputError(f"unknown expression name(s) {', '.join(unknown)} for the viewer; valid names: {shown}")
        return tuple(config.expression_names)
    return tuple(names[: config.max_expressions])


def _quat_wxyz_to_rotvec(quats_n4: np.ndarray) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    if quats_n4.shape[0] == 0:
        return np.zeros((0, 3), dtype=np.float32)
    xyzw = np.concatenate([quats_n4[:, 1:], quats_n4[:, :1]], axis=1)
    return Rotation.from_quat(xyzw).as_rotvec().astype(np.float32)


def avatar_scene(avatar: Avatar, setup: HeadSetup | None, config: ViewerConfig = ViewerConfig()) -> ViewerScene:
    """The scene of an avatar; with its template ``setup`` (``HeadSetup``) the face gets sliders.

    Args:
        avatar: an ``arc2avatar.avatar.model.Avatar`` (splats, template info, extra).
        setup: its template (``setup_for_avatar(avatar)``), or None for a scene without
            expressions (a bare PLY, or a template that is not at hand).
        config: which expressions, slider range, rotations.

    Raises ``InputError`` for unknown ``config.expression_names`` or a binding that does not fit
    the template.
    """
    import torch

    splats = avatar.splats
    face = splats.face_mask.detach().cpu()
    order = torch.cat([face.nonzero().squeeze(-1), (~face).nonzero().squeeze(-1)])  # face splats first
    arrays = {name: value[order.numpy()] for name, value in splats_arrays(splats).items()}
    info: dict[str, Any] = {
        "template": str(avatar.template.get("name", "none")),
        "splats": splats.num_splats,
        "face_splats": int(face.sum()),
    }
    if avatar.extra.get("expression"):
        info["expression"] = avatar.extra["expression"]
    if setup is None or int(face.sum()) == 0:
        return ViewerScene(**arrays, num_face=0, info=info)
    head = setup.upsampled.head
    names = pick_expressions(list(head.expression_names), config)
    lo, hi = config.flame_slider_range if avatar.template.get("kind") == "flame" else config.builtin_slider_range
    if not names:
        return ViewerScene(**arrays, num_face=int(face.sum()), slider_range=(lo, hi), info=info)
    check_binding(splats, setup)
    rig = FaceRig(splats, setup)
    rows = rig.rows.cpu()
    neutral = rig.pose(None)
    base_means = neutral.means.detach()[rows]
    base_quats = neutral.rotations.detach()[rows]
    conjugate = base_quats * base_quats.new_tensor([1.0, -1.0, -1.0, -1.0])
    deltas, rotvecs = [], []
    for name in names:
        posed = rig.pose({name: 1.0})
        deltas.append((posed.means.detach()[rows] - base_means).cpu().numpy())
        if config.bake_rotations:
            turn = quat_multiply(posed.rotations.detach()[rows], conjugate)  # quat(R) of the rig
            rotvecs.append(_quat_wxyz_to_rotvec(turn.cpu().double().numpy()))
    return ViewerScene(
        **arrays,
        num_face=int(rows.numel()),
        expression_names=names,
        deltas=np.stack(deltas).astype(np.float32),
        rotvecs=np.stack(rotvecs).astype(np.float32) if config.bake_rotations else None,
        slider_range=(float(lo), float(hi)),
        info=info,
    )


def posed_means(scene: ViewerScene, weights_k: np.ndarray) -> np.ndarray:
    """(N, 3) centres the page draws at slider weights ``weights_k`` (K,): mean + Σ_k w_k·deltas[k]."""
    means = scene.means.astype(np.float32).copy()
    if scene.expression_names:
        means[: scene.num_face] += np.einsum("k,kic->ic", np.asarray(weights_k, np.float32), scene.deltas)
    return means


__all__ = ["ViewerCameraConfig", "ViewerConfig", "ViewerScene", "avatar_scene", "pick_expressions",
           "posed_means", "splats_arrays"]
