"""Per-frame fit of head pose and expression weights to 68 tracked landmarks (docs/driving.md).

The model of landmark i in a frame, in the built-in template's world frame
(``arc2avatar.cameras.model``: z up, face toward +y):

    X_i(w) = L_i + δ_i + Σ_k w_k · B_ik          (template point + actor offset + blendshapes)
    p_i    = s · R · X_i(w) + t                  (head pose, ``arc2avatar.avatar.pose``)
    u_i    = π(p_i)                              (the drive camera: frontal, pinhole)

``L`` are the template's landmark vertices (``landmarks.template_landmark_vertices``), ``B`` their
rows of the expression basis, ``R`` a rotation (fitted as an axis-angle vector), ``t = (t_x, 0,
t_z)`` (depth is taken up by the scale ``s``: under a distant camera the two are nearly the same
thing). The drive camera looks at the origin from ``radius`` in front of the face with vertical
field of view ``fovy`` (a webcam at arm's length; ``FitConfig``).

Each frame solves one regularised, bounded non-linear least-squares problem (scipy's
``least_squares``, trust-region reflective): residuals are landmark reprojection errors in units
of the inter-ocular distance (so the settings do not depend on the video's resolution), each
weighted by how consistently dlib places that landmark (``landmark_weights``), plus ``expression_prior · w`` (a ridge toward neutral)
and ``smoothness · (w − w_previous)`` and ``vertical_shift_prior · (t_z − t_z,neutral) / s_neutral``
(a nod and a vertical shift look alike); weights are bounded to ``[lower, upper]``. Frames are
warm-started from the previous one.

**Neutral.** An actor's face is not the template's: at the neutral frame (the first frame with a
face, or ``--neutral-frame``) the pose is fitted with zero expression and the remaining
residual of each landmark is lifted back into the template frame as the actor's offset ``δ_i``
(at the landmark's depth, in the image plane), a few times over; each landmark but the jaw
contour and the inner lips then moves with the blendshapes of the template surface under the
actor's landmark (``FrameFitter._follow_surface``). Afterwards the actor's resting face is exactly zero expression.

Written by hand: the model and the residuals (ours); the solver is scipy's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import least_squares
from scipy.spatial.transform import Rotation

from arc2avatar.drive.landmarks import (
    EYE_IMAGE_LEFT,
    EYE_IMAGE_RIGHT,
    JAW_CONTOUR,
    LIP_SEAM,
    MOUTH_CORNERS,
    NUM_LANDMARKS,
)
from arc2avatar.cameras.model import orbit_cameras
from arc2avatar.errors import InputError


# iBUG 300-W points no fitted expression moves: nose bridge and base, the eyes' outer and inner corners.
STABLE_LANDMARKS: tuple[int, ...] = (27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 39, 42, 45)


@dataclass(frozen=True)
class FitConfig:
    """Fitting settings.

    Attributes:
        radius: distance of the drive camera from the head centre, world units (4.5 ≈ 63 cm,
            the animation camera's).
        fovy: the drive camera's vertical field of view, radians (0.7 ≈ 40°, a webcam's).
        expressions: the blendshapes fitted (built-in names); others stay 0. The default five
            are the ones the closed loop checks; ``frown``, ``pucker``, ``mouth_left`` and
            ``mouth_right`` can be added (``--expressions``) but trade off against them on 68
            landmarks; ``cheek_puff`` is invisible to 68 landmarks (docs/driving.md).
        lower, upper: bounds of every weight.
        expression_prior: ridge weight pulling weights to 0 (per unit weight, in inter-ocular
            distances).
        smoothness: weight of the change from the previous frame's weights.
        contour_weight: weight of the jaw-contour landmarks (0–16) relative to the others, when
            the landmark table has no measured residuals (or ``measured_weights`` is off).
        measured_weights: weight each landmark by the table's measured consistency
            (``landmark_weights``; closed loop: median pose error 2.9° → 2.5°).
        neutral_iterations: pose/offset alternations at the neutral frame.
        max_evaluations: cap on residual evaluations per frame.
        surface_neighbours: at the neutral frame each landmark takes the blendshape
            displacements of the template surface where it lies (``FrameFitter.set_neutral``),
            interpolated from this many face vertices nearest to it in the image.
        surface_depth_band: of those, only the ones within this depth of the nearest one (the
            visible surface), world units.
        stable_weight: extra weight of the landmarks no fitted expression moves
            (``STABLE_LANDMARKS``: nose bridge and base, eye corners), so the head pose is read
            from them rather than traded against a brow raise or a smile (closed loop: brow_raise
            r 0.82 → 0.93, jaw_open 0.92 → 0.93, smile 0.82 → 0.81, pose 2.5° → 2.6°). 8 → 16 with
            the human-range ``builtin-v2`` (issue 24): the FLAME avatar driven by it, carried
            table, jaw r 0.75 → ≥ 0.8.
        corner_weight: extra weight of the mouth corners (``MOUTH_CORNERS``): the lip points that
            are features of the face rather than samples of the lip contour, and the ones a smile
            moves most (measured before the lip flow of ``track``; closed loop 1 → 2: smile r 0.81 → 0.88, jaw_open 0.93 → 0.93, brow_raise
            0.93 → 0.92, pose 2.6° → 2.7°, second blink's peak 0.53 → 0.52; the same performance on
            Grace Hopper: smile 0.63 → 0.65, brow 0.72 → 0.72; 4× lost the astronaut's second blink).
        agreeing_halves: blendshapes fitted as two halves, the subject's right (world x > 0) and
            left side of the face, and reported as the smaller of the two: read only as far as
            both sides of the face agree (``merge_halves``). Under a head turn dlib's points on the
            side facing the camera drift outward, which a symmetric smile reads as smiling
            (closed loop, the false smiles all came at positive yaw from lip points 48, 49, 59, 60);
            the far side does not. Closed loop: smile r 0.88 → 0.87 on the astronaut, 0.65 → 0.78
            on a second actor; with the lip flow of ``track``: 0.93 → 0.93 and 0.78 → 0.84
            (docs/driving.md). A one-sided smile reads as its weaker side.
        half_blend: across the midline, within this distance of x = 0 (world units), the two
            halves share the blendshape's displacement linearly.
        vertical_shift_prior: weight of the head's vertical shift from the neutral frame (per
            head unit, ``t_z / s`` relative to the neutral's, in inter-ocular distances). A nod
            about the head's centre moves the face's landmarks almost as a vertical shift does
            (but for the jaw contour they lie 0.45–0.76 head units in front of the centre, the
            stable points 0.51–0.76), so without it the fit read ≈ 40 % of every nod as a shift:
            the fitted pitch was 0.58 × the true one (0.55 with the true expression weights
            given: not a trade against the blendshapes), and raising ``stable_weight`` 8 → 16
            made it worse (closed loop median pose error 3.2° → 3.5°). With it the fit prefers a nod to a vertical
            shift (closed loop: 3.5° → 1.6°, jaw_open r 0.93 → 0.95, smile 0.95 → 0.93, both
            blinks' peaks 0.66/0.56 → 0.86/0.83; 10 and 20 split the second blink in two, 30–100
            measure alike). The cost: a real vertical shift of the head (rising from a chair)
            reads partly as a nod. The sideways shift is left free: yaw is read from the jaw
            contour's silhouette (fitted yaw 1.05 × the true) and a prior there gained nothing.
    """

    radius: float = 4.5
    fovy: float = 0.7
    expressions: tuple[str, ...] = ("jaw_open", "smile", "blink_left", "blink_right", "brow_raise")
    lower: float = 0.0
    upper: float = 1.0
    expression_prior: float = 0.01
    smoothness: float = 0.0
    contour_weight: float = 0.3
    measured_weights: bool = True
    neutral_iterations: int = 3
    max_evaluations: int = 60
    surface_neighbours: int = 8
    surface_depth_band: float = 0.1
    stable_weight: float = 16.0
    corner_weight: float = 2.0
    agreeing_halves: tuple[str, ...] = ("smile",)
    half_blend: float = 0.05
    vertical_shift_prior: float = 60.0


@dataclass
class FramePose:
    """A fitted frame: ``rotvec`` (3,) axis-angle radians, ``translation`` (3,) world units
    (y = 0), ``scale``, ``weights`` (K,) in ``LandmarkModel.names`` order, ``rms`` the landmark
    reprojection error in inter-ocular distances."""

    rotvec: np.ndarray
    translation: np.ndarray
    scale: float
    weights: np.ndarray
    rms: float = 0.0

    def rotation(self) -> np.ndarray:
        return Rotation.from_rotvec(self.rotvec).as_matrix()


@dataclass
class LandmarkModel:
    """The template side of the fit: ``points`` (68, 3) neutral landmark positions, ``basis``
    (68, 3, K) their blendshape displacements for ``names``, ``offsets`` (68, 3) the actor's
    neutral offsets (zero until ``FrameFitter.set_neutral``); ``surface`` (V, 3) and
    ``surface_basis`` (V, 3, K) the template's face vertices and their displacements, whose
    motion the actor's landmarks follow where they lie (None: the table's vertices');
    ``residual_px`` (68,) the table's measured landmark consistency (``landmark_weights``);
    ``present`` (68,) bool, the landmarks the model has (None: all; FLAME's static embedding has
    no jaw contour); ``lower``/``upper`` (K,) per-weight bounds (None: ``FitConfig``'s)."""

    points: np.ndarray
    basis: np.ndarray
    names: tuple[str, ...]
    offsets: np.ndarray = field(default_factory=lambda: np.zeros((NUM_LANDMARKS, 3)))
    surface: np.ndarray | None = None
    surface_basis: np.ndarray | None = None
    residual_px: np.ndarray | None = None
    present: np.ndarray | None = None
    lower: np.ndarray | None = None
    upper: np.ndarray | None = None

    def shape(self, weights: np.ndarray) -> np.ndarray:
        """(68, 3) landmark positions with the offsets and ``weights``."""
        return self.points + self.offsets + self.basis @ weights


def landmark_model(head, points_l3: np.ndarray, vertex_index: np.ndarray, names: tuple[str, ...],
                   residual_px: np.ndarray | None = None, halves: tuple[str, ...] = (), half_blend: float = 0.05
                   ) -> LandmarkModel:
    """The ``LandmarkModel`` of a ``HeadModel``: landmarks at ``points_l3`` moving with the
    blendshapes of the vertices ``vertex_index`` (``landmarks.template_landmarks``). Names in
    ``halves`` are fitted as two columns, ``NAME@right`` and ``NAME@left`` (``split_halves``)."""
    missing = [n for n in names if n not in head.expression_names]
    if missing:
        raise InputError(f"template {head.name} has no expression(s) {', '.join(missing)} to fit")
    columns = [head.expression_names.index(n) for n in names]
    points = np.asarray(points_l3, dtype=np.float64)
    all_basis = head.expression_basis.detach().cpu().double().numpy()[:, :, columns]
    face = np.flatnonzero(head.face_mask.cpu().numpy())
    surface = head.vertices.detach().cpu().double().numpy()[face]
    basis, surface_basis, fitted = all_basis[vertex_index], all_basis[face], tuple(names)
    for name in (n for n in halves if n in names):
        column = fitted.index(name)
        basis = split_halves(basis, column, points[:, 0], half_blend)
        surface_basis = split_halves(surface_basis, column, surface[:, 0], half_blend)
        fitted = fitted[:column] + (f"{name}{RIGHT_HALF}", f"{name}{LEFT_HALF}") + fitted[column + 1:]
    return LandmarkModel(points, basis, fitted, surface=surface, surface_basis=surface_basis, residual_px=residual_px)


RIGHT_HALF, LEFT_HALF = "@right", "@left"  # suffixes of a blendshape's halves (the subject's sides)


def split_halves(basis_n3k: np.ndarray, column: int, x_n: np.ndarray, blend: float) -> np.ndarray:
    """(N, 3, K + 1): ``column`` replaced by its subject's-right half (x > 0; world +x is the
    subject's right) and its left half, which share it linearly within ``blend`` of x = 0."""
    right = np.clip(0.5 + np.asarray(x_n) / (2 * blend), 0.0, 1.0)[:, None]
    whole = basis_n3k[:, :, column]
    halves = np.stack([whole * right, whole * (1 - right)], axis=2)
    return np.concatenate([basis_n3k[:, :, :column], halves, basis_n3k[:, :, column + 1:]], axis=2)


def merge_halves(names: tuple[str, ...], weights_tk: np.ndarray) -> tuple[tuple[str, ...], np.ndarray]:
    """Fitted ``names``/``weights`` (T, K) with each pair of halves (``NAME@right``,
    ``NAME@left``) replaced by ``NAME``, the smaller of the two (``FitConfig.agreeing_halves``)."""
    out_names: list[str] = []
    columns: list[np.ndarray] = []
    weights_tk = np.asarray(weights_tk)
    for index, name in enumerate(names):
        if name.endswith(LEFT_HALF) and name[:-len(LEFT_HALF)] + RIGHT_HALF in names:
            continue
        if name.endswith(RIGHT_HALF) and name[:-len(RIGHT_HALF)] + LEFT_HALF in names:
            other = names.index(name[:-len(RIGHT_HALF)] + LEFT_HALF)
            out_names.append(name[:-len(RIGHT_HALF)])
            columns.append(np.minimum(weights_tk[..., index], weights_tk[..., other]))
        else:
            out_names.append(name)
            columns.append(weights_tk[..., index])
    return tuple(out_names), np.stack(columns, axis=-1)


class DriveCamera:
    """The frontal pinhole camera of the fit for a frame of ``width`` × ``height`` pixels."""

    def __init__(self, width: int, height: int, config: FitConfig) -> None:
        camera = orbit_cameras(config.radius, 90.0, 0.0, config.fovy, width, height)
        self.viewmat = camera.viewmats[0].double().numpy()  # (4, 4) world → OpenCV camera
        self.K = camera.Ks[0].double().numpy()

    def project(self, points_n3: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, 2) pixel indices (pixel (i, j) centred at (j, i), as dlib reports) and (N,) depths."""
        cam = points_n3 @ self.viewmat[:3, :3].T + self.viewmat[:3, 3]
        uv = cam @ self.K.T
        return uv[:, :2] / uv[:, 2:3] - 0.5, cam[:, 2]


def landmark_weights(config: FitConfig, residual_px: np.ndarray | None = None) -> np.ndarray:
    """(68,) weights of the landmarks' squared residuals. With the table's measured
    ``residual_px`` σ_i (``landmarks.landmark_residuals``: how consistently dlib puts landmark i
    on one point of the face) and ``config.measured_weights``: ``min(median(σ) / σ_i, 1)`` — the
    sliding jaw contour counts ≈ 0.2–0.8, the lips and eye corners 1. (Full inverse-variance
    weighting, ``(median/σ_i)²``, was measured too: it lost the closed loop's second blink.)
    Otherwise ``contour_weight`` on the jaw contour and 1 elsewhere."""
    if residual_px is not None and config.measured_weights:
        sigma = np.maximum(np.asarray(residual_px, dtype=np.float64), 1e-6)
        return np.minimum(np.median(sigma) / sigma, 1.0)
    weights = np.ones(NUM_LANDMARKS)
    weights[list(JAW_CONTOUR)] = config.contour_weight
    return weights


def interocular(landmarks_682: np.ndarray) -> float:
    """Distance of the two eye centres, pixels (the residuals' unit)."""
    left = landmarks_682[list(EYE_IMAGE_LEFT)].mean(axis=0)
    right = landmarks_682[list(EYE_IMAGE_RIGHT)].mean(axis=0)
    return max(float(np.linalg.norm(left - right)), 1.0)


class FrameFitter:
    """Fits ``FramePose`` to landmarks, frame after frame (warm-started).

    >>> fitter = FrameFitter(model, DriveCamera(640, 480, cfg), cfg)
    >>> fitter.set_neutral(landmarks_at_rest)
    >>> pose = fitter.fit(landmarks)
    """

    def __init__(self, model: LandmarkModel, camera: DriveCamera, config: FitConfig = FitConfig()) -> None:
        self.model, self.camera, self.config = model, camera, config
        self.weights_l = landmark_weights(config, model.residual_px)
        self._used = np.ones(NUM_LANDMARKS, dtype=bool) if model.present is None else np.asarray(model.present, bool)
        self.weights_l = self.weights_l * self._used
        self.weights_l[list(STABLE_LANDMARKS)] *= config.stable_weight
        self.weights_l[list(MOUTH_CORNERS)] *= config.corner_weight
        self._basis = model.basis.copy()  # the table's, before ``set_neutral`` moves landmarks
        self.previous: FramePose | None = None
        self._neutral: FramePose | None = None

    # parameters: rotvec (3), tx, tz, log scale, weights (K)
    def _unpack(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, np.ndarray]:
        return x[:3], np.array([x[3], 0.0, x[4]]), float(np.exp(x[5])), x[6:]

    def _project(self, x: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        rotvec, translation, scale, w = self._unpack(x)
        shape = self.model.shape(w if weights is None else weights)
        world = scale * shape @ Rotation.from_rotvec(rotvec).as_matrix().T + translation
        return self.camera.project(world)[0]

    def _initial(self, landmarks: np.ndarray) -> np.ndarray:
        """A first guess: no rotation, scale and position from the landmarks' spread and centre."""
        k, used = len(self.model.names), self._used
        x = np.zeros(6 + k)
        projected = self._project(x)[used]
        spread = np.ptp(landmarks[used], axis=0).mean() / max(np.ptp(projected, axis=0).mean(), 1e-6)
        x[5] = np.log(spread)
        centre_px = landmarks[used].mean(axis=0) - self._project(x)[used].mean(axis=0)
        focal = self.camera.K[0, 0]
        x[3] = -centre_px[0] * self.config.radius / focal  # world +x appears to the image's left
        x[4] = -centre_px[1] * self.config.radius / focal  # world +z is up, image y is down
        return x

    def _solve(self, landmarks: np.ndarray, x0: np.ndarray, fit_expression: bool) -> np.ndarray:
        cfg = self.config
        unit = interocular(landmarks)
        k = len(self.model.names)
        sqrt_w = np.sqrt(self.weights_l)[:, None]
        previous_w = self.previous.weights if self.previous is not None else np.zeros(k)

        if fit_expression:
            neutral = self._neutral

            def residuals(x: np.ndarray) -> np.ndarray:
                r = ((self._project(x) - landmarks) / unit * sqrt_w).ravel()
                w = x[6:]
                lift = 0.0 if neutral is None else (x[4] - neutral.translation[2]) / neutral.scale
                return np.concatenate([r, cfg.expression_prior * w, cfg.smoothness * (w - previous_w),
                                       [cfg.vertical_shift_prior * lift]])

            low = np.full(k, cfg.lower) if self.model.lower is None else np.asarray(self.model.lower, dtype=np.float64)
            high = np.full(k, cfg.upper) if self.model.upper is None else np.asarray(self.model.upper, dtype=np.float64)
            lower = np.concatenate([np.full(6, -np.inf), low])
            upper = np.concatenate([np.full(6, np.inf), high])
            start = x0.copy()
            start[6:] = np.clip(start[6:], low + 1e-9, high - 1e-9)
            result = least_squares(residuals, start, bounds=(lower, upper), method="trf", x_scale="jac",
                                   max_nfev=cfg.max_evaluations)
            return result.x
        zeros = np.zeros(k)

        def pose_residuals(p: np.ndarray) -> np.ndarray:
            return ((self._project(np.concatenate([p, zeros]), zeros) - landmarks) / unit * sqrt_w).ravel()

        result = least_squares(pose_residuals, x0[:6], method="lm", max_nfev=cfg.max_evaluations * 4)
        return np.concatenate([result.x, zeros])

    def _pose(self, x: np.ndarray, landmarks: np.ndarray) -> FramePose:
        rotvec, translation, scale, w = self._unpack(x)
        error = ((self._project(x) - landmarks) / interocular(landmarks))[self._used]
        rms = float(np.sqrt((error ** 2).sum(-1).mean()))
        return FramePose(rotvec.copy(), translation, scale, w.copy(), rms)

    def _follow_surface(self, landmarks: np.ndarray, rotation: np.ndarray, scale: float,
                        translation: np.ndarray) -> None:
        """Let each landmark follow the blendshapes of the template surface where the actor's
        landmark lies in the neutral frame: inverse-distance interpolation over the
        ``surface_neighbours`` face vertices nearest to it in the image, within
        ``surface_depth_band`` of the nearest one (the visible surface). An actor's mouth corner
        that sits beside the template's moves as the face there moves when the template smiles,
        not as the template's own corner does (measured on the closed loop: smile r 0.70 →
        0.85, docs/driving.md). Two groups keep the table's vertex: the jaw contour (a
        silhouette, not a point of the surface) and the inner lip points between the corners
        (``LIP_SEAM``): they lie where the upper and lower lip part, and interpolating there
        would average the two lips' motion (closed loop: jaw_open r 0.89 → 0.92)."""
        cfg, model = self.config, self.model
        world = scale * model.surface @ rotation.T + translation
        pixels, depth = self.camera.project(world)
        basis = self._basis.copy()
        keep = set(JAW_CONTOUR) | set(LIP_SEAM)
        for i, point in enumerate(landmarks):
            if i in keep:
                continue
            distance = np.linalg.norm(pixels - point, axis=1)
            near = np.argpartition(distance, cfg.surface_neighbours * 3)[:cfg.surface_neighbours * 3]
            near = near[depth[near] <= depth[near].min() + cfg.surface_depth_band * scale]
            near = near[np.argsort(distance[near])[:cfg.surface_neighbours]]
            weight = 1.0 / (distance[near] + 1e-3)
            basis[i] = np.einsum("v,vck->ck", weight / weight.sum(), model.surface_basis[near])
        model.basis = basis

    def set_neutral(self, landmarks_682: np.ndarray) -> FramePose:
        """Fit the neutral frame (zero expression) and set the actor's offsets ``δ`` from it."""
        landmarks = np.asarray(landmarks_682, dtype=np.float64)
        self.model.offsets = np.zeros_like(self.model.points)
        self.model.basis = self._basis.copy()
        x = self._initial(landmarks)
        for _ in range(self.config.neutral_iterations):
            x = self._solve(landmarks, x, fit_expression=False)
            rotvec, translation, scale, _ = self._unpack(x)
            rotation = Rotation.from_rotvec(rotvec).as_matrix()
            shape = self.model.shape(np.zeros(len(self.model.names)))
            world = scale * shape @ rotation.T + translation
            pixels, depth = self.camera.project(world)
            focal = self.camera.K[0, 0]
            # image-plane residual at each landmark's depth, back in world then template units
            cam_delta = np.concatenate([(landmarks - pixels) * depth[:, None] / focal, np.zeros((NUM_LANDMARKS, 1))], 1)
            world_delta = cam_delta @ self.camera.viewmat[:3, :3]  # camera → world (transpose of R_cw)
            self.model.offsets = self.model.offsets + world_delta @ rotation / scale
        if self.model.surface is not None:
            self._follow_surface(landmarks, rotation, scale, translation)
        neutral = self._pose(x, landmarks)
        self.previous = self._neutral = neutral
        return neutral

    def fit(self, landmarks_682: np.ndarray) -> FramePose:
        """The pose and weights of one frame's (68, 2) landmarks (pixel indices)."""
        landmarks = np.asarray(landmarks_682, dtype=np.float64)
        if self.previous is None:
            x0 = self._solve(landmarks, self._initial(landmarks), fit_expression=False)
        else:
            p = self.previous
            x0 = np.concatenate([p.rotvec, [p.translation[0], p.translation[2], np.log(p.scale)], p.weights])
        x = self._solve(landmarks, x0, fit_expression=True)
        pose = self._pose(x, landmarks)
        self.previous = pose
        return pose


__all__ = [
    "DriveCamera",
    "FitConfig",
    "FrameFitter",
    "FramePose",
    "LandmarkModel",
    "interocular",
    "landmark_model",
    "landmark_weights",
    "merge_halves",
    "split_halves",
]
