"""Training-view samplers, the progressive range schedule, and fixed view rings (docs/method.md §5).

Conventions (``arc2avatar.cameras.model``): world z up, face toward +y, centre
``r·(sinθ sinφ, sinθ cosφ, cosθ)``, θ polar from +z in degrees, φ azimuth from +y toward +x in
degrees (0 = frontal). Every sampler takes a ``torch.Generator`` and draws in a fixed order, so
the same seed gives the same cameras. Ranges are immutable: ``ranges_at(ranges, iteration)``
returns the relaxed copy for an iteration (the official release mutated a shared object).

Samplers (all return ``Cameras`` with un-jittered φ/θ/r recorded for the view prompts):
- ``sample_paper``: batches of 4, one azimuth from each of [−90,0), [0,90), [−180,−90),
  [90,180] (paper E.5: two front and two back views), uniform inside each quadrant.
- ``sample_release``: i.i.d. draws, each quantity ``mid ± half_width·u^γ`` with a random sign
  (docs/official-code.md §4.2; γ = 1.5 for θ and φ, γ = 1 for the radius; fovy uniform).
- ``sample_face_phase``: the zoomed face phase (paper §A.2; docs/method.md §5).
The paper does not say how θ is drawn; both training samplers use the release's γ rule for it.
Fixed views: ``test_ring_cameras`` (16), ``heldout_cameras`` (16, never used in training),
``turntable_cameras``. Written by hand: sampling policy is the method's own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import torch
from torch import Tensor

from arc2avatar.cameras.model import WORLD_UP, Cameras, orbit_cameras

Range = tuple[float, float]


@dataclass(frozen=True)
class CameraJitter:
    """Look-at jitter of training views (docs/official-code.md §4.1; docs/method.md §5).

    Attributes:
        centre_half_width: camera centre offset U(−h, h) per axis, world units (0.025).
        target_sigma: look-at target N(0, σ²) per axis, world units (0.05).
        up_sigma: up-vector noise N(0, σ²) per axis (0.01).
    """

    centre_half_width: float = 0.025
    target_sigma: float = 0.05
    up_sigma: float = 0.01


@dataclass(frozen=True)
class CameraRanges:
    """Training-view ranges and their relaxation schedule (docs/method.md §5; docs/official-code.md §4.2).

    Attributes:
        radius: (low, high) camera distance, world units ([5.6, 5.9]).
        radius_floor: the lowest ``radius[0]`` may relax to (4.6).
        fovy: (low, high) vertical field of view, radians ([0.4, 0.6]).
        fovy_limits: (floor, cap) for the relaxed fovy range, radians ([0.3, 0.7]).
        polar_deg: (low, high) θ, degrees ([55, 100]).
        azimuth_deg: (low, high) φ, degrees ([−180, 180]).
        angle_gamma: concentration γ of θ and φ toward the middle of their ranges (1.5).
        radius_gamma: concentration γ of the radius (1 = uniform).
        relax_every: iterations between relaxations (1500).
        radius_low_factor: r_lo ← max(floor, factor·r_lo) at each relaxation (0.95).
        fovy_low_factor: fov_lo ← max(floor, factor·fov_lo) (0.8).
        fovy_high_factor: fov_hi ← min(cap, factor·fov_hi) (1.1).
        jitter: look-at jitter.
    """

    radius: Range = (5.6, 5.9)
    radius_floor: float = 4.6
    fovy: Range = (0.4, 0.6)
    fovy_limits: Range = (0.3, 0.7)
    polar_deg: Range = (55.0, 100.0)
    azimuth_deg: Range = (-180.0, 180.0)
    angle_gamma: float = 1.5
    radius_gamma: float = 1.0
    relax_every: int = 1500
    radius_low_factor: float = 0.95
    fovy_low_factor: float = 0.8
    fovy_high_factor: float = 1.1
    jitter: CameraJitter = field(default_factory=CameraJitter)


@dataclass(frozen=True)
class FacePhaseRanges:
    """Zoomed views of the face phase (paper §A.2; docs/method.md §5, numbers ours).

    Attributes:
        azimuth_deg: φ range, degrees ([−60, 60]).
        polar_deg: θ range, degrees ([70, 100]).
        fovy: fovy range, radians ([0.2, 0.3]).
        radius: camera distance range, world units (the training start range [5.6, 5.9]).
        gamma: concentration of θ and φ (1 = uniform).
        jitter: look-at jitter.
    """

    azimuth_deg: Range = (-60.0, 60.0)
    polar_deg: Range = (70.0, 100.0)
    fovy: Range = (0.2, 0.3)
    radius: Range = (5.6, 5.9)
    gamma: float = 1.0
    jitter: CameraJitter = field(default_factory=CameraJitter)


@dataclass(frozen=True)
class ViewRings:
    """Fixed evaluation views (docs/method.md §5; docs/official-code.md §4.4). No jitter.

    Attributes:
        radius: camera distance, world units (4.5).
        fovy: radians (0.7).
        test_polars_deg: θ of the test rings (90, 60).
        azimuths_per_ring: views per ring, evenly spaced from φ = 0 (8).
        heldout_polars_deg: θ of the held-out rings (90, 75).
        heldout_offset_deg: azimuth offset of the held-out rings from the test rings (22.5).
        turntable_frames: frames per turntable ring (120).
        turntable_polar_deg: θ of the default turntable (90).
        sheet_fovy: radians, the product sheet's narrower field of view (``views.png``,
            ``express``, ``render``: the head fills most of each view; issue 24) (0.5).
        sheet_look_at_z: world units, the height the product sheet's cameras look at (the face's
            middle, a little above the head centre) (0.1).
    """

    radius: float = 4.5
    fovy: float = 0.7
    test_polars_deg: tuple[float, ...] = (90.0, 60.0)
    azimuths_per_ring: int = 8
    heldout_polars_deg: tuple[float, ...] = (90.0, 75.0)
    heldout_offset_deg: float = 22.5
    turntable_frames: int = 120
    turntable_polar_deg: float = 90.0
    sheet_fovy: float = 0.5
    sheet_look_at_z: float = 0.1

    def __post_init__(self) -> None:
        polars = (*self.test_polars_deg, *self.heldout_polars_deg, self.turntable_polar_deg)
        for ok, message in (
            (self.radius > 0, f"view_rings.radius must be > 0 (got {self.radius})"),
            (0 < self.fovy < math.pi, f"view_rings.fovy must be in (0, π) radians (got {self.fovy})"),
            (0 < self.sheet_fovy < math.pi, f"view_rings.sheet_fovy must be in (0, π) radians (got {self.sheet_fovy})"),
            (math.isfinite(self.sheet_look_at_z), "view_rings.sheet_look_at_z must be finite"),
            (self.azimuths_per_ring >= 1, f"view_rings.azimuths_per_ring must be ≥ 1 (got {self.azimuths_per_ring})"),
            (self.turntable_frames >= 1, f"view_rings.turntable_frames must be ≥ 1 (got {self.turntable_frames})"),
            (all(0 < p < 180 for p in polars), f"view_rings polar angles must be in (0, 180) degrees (got {polars})"),
            (math.isfinite(self.heldout_offset_deg), "view_rings.heldout_offset_deg must be finite"),
        ):
            if not ok:
                raise ValueError(message)


# Paper E.5: each batch of 4 holds one azimuth from each quadrant (front-left, front-right,
# back-left, back-right), degrees, [low, high).
PAPER_AZIMUTH_QUADRANTS: tuple[Range, ...] = ((-90.0, 0.0), (0.0, 90.0), (-180.0, -90.0), (90.0, 180.0))


def ranges_at(ranges: CameraRanges, iteration: int) -> CameraRanges:
    """The ranges in effect at ``iteration`` (relaxed ``iteration // relax_every`` times).

    Matches docs/official-code.md §4.2: at 1500/3000/4500/6000 radius [5.32|5.054|4.8013|4.6, 5.9],
    fovy [0.32, 0.66] then [0.3, 0.7]. r_hi never changes. Pure: ``ranges`` is not modified.
    """
    r_lo, r_hi = ranges.radius
    f_lo, f_hi = ranges.fovy
    f_floor, f_cap = ranges.fovy_limits
    for _ in range(max(0, iteration) // ranges.relax_every):
        r_lo = max(ranges.radius_floor, ranges.radius_low_factor * r_lo)
        f_lo = max(f_floor, ranges.fovy_low_factor * f_lo)
        f_hi = min(f_cap, ranges.fovy_high_factor * f_hi)
    return replace(ranges, radius=(r_lo, r_hi), fovy=(f_lo, f_hi))


def sample_concentrated(value_range: Range, gamma: float, count: int, generator: torch.Generator) -> Tensor:
    """(count,) draws ``mid ± half_width·u^γ``, u ~ U(0,1), sign ±1 with p = ½ (docs/official-code.md §4.2).

    γ = 1 is uniform; γ > 1 concentrates toward the middle (density ∝ |x − mid|^(1/γ − 1)).
    """
    low, high = value_range
    u = torch.rand(count, generator=generator)
    sign = torch.where(torch.rand(count, generator=generator) < 0.5, -1.0, 1.0)
    return 0.5 * (low + high) + sign * 0.5 * (high - low) * u.pow(gamma)


def sample_uniform(value_range: Range, count: int, generator: torch.Generator) -> Tensor:
    """(count,) draws from U(low, high)."""
    low, high = value_range
    return low + (high - low) * torch.rand(count, generator=generator)


def _jittered_cameras(
    radius: Tensor,
    polar_deg: Tensor,
    azimuth_deg: Tensor,
    fovy: Tensor,
    jitter: CameraJitter,
    generator: torch.Generator,
    width: int,
    height: int,
) -> Cameras:
    """Orbit cameras with centre, target and up jitter drawn from ``generator`` (C = len(radius))."""
    count = radius.shape[0]
    centre_offset = (2.0 * torch.rand(count, 3, generator=generator) - 1.0) * jitter.centre_half_width
    target = torch.randn(count, 3, generator=generator) * jitter.target_sigma
    up = torch.tensor(WORLD_UP) + torch.randn(count, 3, generator=generator) * jitter.up_sigma
    return orbit_cameras(
        radius, polar_deg, azimuth_deg, fovy, width, height, centre_offset=centre_offset, target=target, up=up
    )


def sample_paper(
    ranges: CameraRanges,
    iteration: int,
    generator: torch.Generator,
    width: int,
    height: int,
    batch_size: int = 4,
) -> Cameras:
    """A batch of training views, stratified by azimuth quadrant (paper E.5).

    ``batch_size`` must be a multiple of 4; views 4k..4k+3 take φ from [−90,0), [0,90),
    [−180,−90), [90,180] in that order. Radius and θ follow the γ rule, fovy is uniform, all
    within ``ranges_at(ranges, iteration)``.
    """
    if batch_size % len(PAPER_AZIMUTH_QUADRANTS) != 0:
        raise ValueError(f"the paper sampler needs a batch size that is a multiple of 4, got {batch_size}")
    current = ranges_at(ranges, iteration)
    groups = batch_size // len(PAPER_AZIMUTH_QUADRANTS)
    lows = torch.tensor([q[0] for q in PAPER_AZIMUTH_QUADRANTS]).repeat(groups)
    highs = torch.tensor([q[1] for q in PAPER_AZIMUTH_QUADRANTS]).repeat(groups)
    azimuth = lows + (highs - lows) * torch.rand(batch_size, generator=generator)
    radius = sample_concentrated(current.radius, current.radius_gamma, batch_size, generator)
    polar = sample_concentrated(current.polar_deg, current.angle_gamma, batch_size, generator)
    fovy = sample_uniform(current.fovy, batch_size, generator)
    return _jittered_cameras(radius, polar, azimuth, fovy, current.jitter, generator, width, height)


def sample_release(
    ranges: CameraRanges,
    iteration: int,
    generator: torch.Generator,
    width: int,
    height: int,
    batch_size: int = 4,
) -> Cameras:
    """A batch of i.i.d. training views as in the official release (docs/official-code.md §4.2).

    φ and θ: γ = ``angle_gamma`` (1.5) concentration about the middle of their ranges, so
    P(|φ| < 90°) = 0.5^(2/3) ≈ 0.63; radius: γ = ``radius_gamma`` (1); fovy uniform.
    """
    current = ranges_at(ranges, iteration)
    radius = sample_concentrated(current.radius, current.radius_gamma, batch_size, generator)
    polar = sample_concentrated(current.polar_deg, current.angle_gamma, batch_size, generator)
    azimuth = sample_concentrated(current.azimuth_deg, current.angle_gamma, batch_size, generator)
    fovy = sample_uniform(current.fovy, batch_size, generator)
    return _jittered_cameras(radius, polar, azimuth, fovy, current.jitter, generator, width, height)


def sample_face_phase(
    ranges: FacePhaseRanges,
    generator: torch.Generator,
    width: int,
    height: int,
    batch_size: int = 4,
) -> Cameras:
    """A batch of zoomed frontal views for the face phase (paper §A.2; docs/method.md §5)."""
    radius = sample_uniform(ranges.radius, batch_size, generator)
    polar = sample_concentrated(ranges.polar_deg, ranges.gamma, batch_size, generator)
    azimuth = sample_concentrated(ranges.azimuth_deg, ranges.gamma, batch_size, generator)
    fovy = sample_uniform(ranges.fovy, batch_size, generator)
    return _jittered_cameras(radius, polar, azimuth, fovy, ranges.jitter, generator, width, height)


def _rings(
    polars_deg: tuple[float, ...], per_ring: int, offset_deg: float, rings: ViewRings, width: int, height: int
) -> Cameras:
    """``per_ring`` evenly spaced azimuths (from ``offset_deg``) at each θ in ``polars_deg``."""
    step = 360.0 / per_ring
    azimuth = (offset_deg + step * torch.arange(per_ring, dtype=torch.float32)).repeat(len(polars_deg))
    polar = torch.tensor(polars_deg, dtype=torch.float32).repeat_interleave(per_ring)
    return orbit_cameras(rings.radius, polar, azimuth, rings.fovy, width, height)


def test_ring_cameras(width: int, height: int, rings: ViewRings = ViewRings()) -> Cameras:
    """The 16 test views: r 4.5, fovy 0.7, φ = 0, 45, …, 315 at θ = 90 then θ = 60."""
    return _rings(rings.test_polars_deg, rings.azimuths_per_ring, 0.0, rings, width, height)


test_ring_cameras.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


def sheet_cameras(width: int, height: int, rings: ViewRings = ViewRings()) -> Cameras:
    """The 16 test views framed on the head for the product sheets (``views.png``): the same
    camera positions, looking at z = ``sheet_look_at_z`` with fovy ``sheet_fovy``."""
    step = 360.0 / rings.azimuths_per_ring
    azimuth = (step * torch.arange(rings.azimuths_per_ring, dtype=torch.float32)).repeat(len(rings.test_polars_deg))
    polar = torch.tensor(rings.test_polars_deg, dtype=torch.float32).repeat_interleave(rings.azimuths_per_ring)
    target = torch.tensor([[0.0, 0.0, rings.sheet_look_at_z]])
    return orbit_cameras(rings.radius, polar, azimuth, rings.sheet_fovy, width, height, target=target)


def heldout_cameras(width: int, height: int, rings: ViewRings = ViewRings()) -> Cameras:
    """16 evaluation views never used in training: φ = 22.5 + 45k at θ = 90 then θ = 75."""
    return _rings(rings.heldout_polars_deg, rings.azimuths_per_ring, rings.heldout_offset_deg, rings, width, height)


def turntable_cameras(
    width: int,
    height: int,
    frames: int | None = None,
    polar_deg: float | None = None,
    rings: ViewRings = ViewRings(),
) -> Cameras:
    """A turntable: ``frames`` (default 120) azimuths from φ = 0 at θ = ``polar_deg`` (default 90)."""
    frames = rings.turntable_frames if frames is None else frames
    polar = rings.turntable_polar_deg if polar_deg is None else polar_deg
    return _rings((polar,), frames, 0.0, rings, width, height)


__all__ = [
    "CameraJitter",
    "CameraRanges",
    "FacePhaseRanges",
    "PAPER_AZIMUTH_QUADRANTS",
    "ViewRings",
    "heldout_cameras",
    "ranges_at",
    "sample_concentrated",
    "sample_face_phase",
    "sample_paper",
    "sample_release",
    "sample_uniform",
    "sheet_cameras",
    "test_ring_cameras",
    "turntable_cameras",
]
