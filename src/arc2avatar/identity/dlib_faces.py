"""Face detection and landmarks with dlib, fully offline (the optional ``eval`` extra).

dlib (``dlib-bin`` on PyPI) and its model files (``face_recognition_models`` on PyPI) need no
weight download, so they are the face detector that works on every machine of this project:
the offline demo uses it to place a photo on the oracle target's face, and the evaluation uses
it (with dlib's recognition ResNet, ``arc2avatar.evaluate``) as the judge independent of the
guidance network.

* **Detector.** dlib's HOG + linear SVM frontal detector (default; finds faces of ≈ 80 px, or
  ≈ 40 px with one upsampling) or its CNN (MMOD) detector (slower, also catches turned faces).
* **Landmarks.** The 68-point shape predictor (iBUG 300-W scheme) gives the five ArcFace points
  of docs/method.md §1: eye centres (mean of points 36–41 and 42–47), nose tip (30), mouth corners (48,
  54). The 5-point predictor (eye corners and the base of the nose) is what dlib's recogniser
  aligns with (``dlib.get_face_chip``); ``shape_5`` returns it.
* **Model files.** ``face_recognition_models`` finds its files through ``pkg_resources``, which
  recent setuptools no longer ships, so the package is never imported: its folder is found with
  ``importlib.util.find_spec`` and the files are read by path.

Coordinates are pixel-index coordinates (pixel (i, j) centred at (j, i)), as ``align.py`` and
``detect.py`` use; dlib reports part positions as integer pixel indices in the same convention.
Written by hand: only the glue (model lookup, the 68→5 point mapping, the largest-face rule).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from arc2avatar.errors import InputError, MissingDependencyError
from arc2avatar.identity.detect import Face

INSTALL_HINT = 'pip install "arc2avatar[eval]" (it brings dlib-bin and face_recognition_models)'
MODELS_PACKAGE = "face_recognition_models"

# iBUG 300-W 68-point indices of the ArcFace 5-point template's landmarks (docs/method.md §1 order: left
# eye, right eye, nose tip, left mouth corner, right mouth corner, "left" as seen in the image).
EYE_IMAGE_LEFT_68 = tuple(range(36, 42))
EYE_IMAGE_RIGHT_68 = tuple(range(42, 48))
NOSE_TIP_68 = 30
MOUTH_IMAGE_LEFT_68 = 48
MOUTH_IMAGE_RIGHT_68 = 54


@dataclass(frozen=True)
class DlibModelFiles:
    """The model files of ``face_recognition_models`` (dlib's own releases, CC0 / Boost).

    Attributes:
        shape_5: ``shape_predictor_5_face_landmarks.dat`` (eye corners + nose base).
        shape_68: ``shape_predictor_68_face_landmarks.dat`` (iBUG 300-W).
        recognition: ``dlib_face_recognition_resnet_model_v1.dat`` (ResNet-29, 128-d).
        cnn_detector: ``mmod_human_face_detector.dat`` (CNN face detector).
    """

    shape_5: Path
    shape_68: Path
    recognition: Path
    cnn_detector: Path


@dataclass(frozen=True)
class DlibDetectorConfig:
    """dlib face detection settings.

    Attributes:
        detector: ``"hog"`` (HOG + SVM frontal detector, fast) or ``"cnn"`` (MMOD CNN, slower on
            a CPU, more robust to turned heads).
        upsample: times the image is doubled before detecting (1: faces down to ≈ 40 px).
        hog_threshold: HOG score offset passed as ``adjust_threshold`` (0 = dlib's default
            operating point; higher = fewer, surer detections).
    """

    detector: Literal["hog", "cnn"] = "hog"
    upsample: int = 1
    hog_threshold: float = 0.0


def import_dlib() -> Any:
    """The ``dlib`` module, or ``MissingDependencyError`` with the install line."""
    try:
        import dlib
    except ImportError as error:
        raise MissingDependencyError(f"dlib is not installed: {INSTALL_HINT}") from error
    return dlib


def dlib_model_files() -> DlibModelFiles:
    """Paths of the ``face_recognition_models`` files, found without importing the package."""
    spec = importlib.util.find_spec(MODELS_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise MissingDependencyError(f"{MODELS_PACKAGE} is not installed: {INSTALL_HINT}")
    folder = Path(locations[0]) / "models"
    files = DlibModelFiles(
        shape_5=folder / "shape_predictor_5_face_landmarks.dat",
        shape_68=folder / "shape_predictor_68_face_landmarks.dat",
        recognition=folder / "dlib_face_recognition_resnet_model_v1.dat",
        cnn_detector=folder / "mmod_human_face_detector.dat",
    )
    missing = [str(p) for p in vars(files).values() if not Path(p).is_file()]
    if missing:
        raise MissingDependencyError(f"{MODELS_PACKAGE} is incomplete (missing {', '.join(missing)}); "
                                     f"reinstall it: {INSTALL_HINT}")
    return files


def _rgb_uint8(image_rgb: np.ndarray) -> np.ndarray:
    image = np.ascontiguousarray(image_rgb)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {image.dtype} {image.shape}")
    return image


@dataclass(frozen=True)
class FaceBox:
    """One detection: ``box`` (4,) float32 x1, y1, x2, y2 (pixel indices) and the detector's
    ``score`` (HOG: SVM margin, > 0 = face; CNN: MMOD confidence)."""

    box: np.ndarray
    score: float

    @property
    def area(self) -> float:
        return float(max(0.0, self.box[2] - self.box[0]) * max(0.0, self.box[3] - self.box[1]))


class DlibFaceDetector:
    """Faces (box, score) in an RGB image; 5 ArcFace keypoints and dlib's 5-point shape on demand.

    >>> detector = DlibFaceDetector()
    >>> faces = detector.detect(image)            # list[FaceBox], largest first
    >>> detector.arcface_keypoints(image, faces[0].box)   # (5, 2) float32
    """

    def __init__(self, config: DlibDetectorConfig = DlibDetectorConfig()) -> None:
        self.config = config
        self.dlib = import_dlib()
        self.files = dlib_model_files()
        if config.detector == "cnn":
            self._detector = self.dlib.cnn_face_detection_model_v1(str(self.files.cnn_detector))
        elif config.detector == "hog":
            self._detector = self.dlib.get_frontal_face_detector()
        else:
            raise InputError(f"unknown dlib detector {config.detector!r}; choose 'hog' or 'cnn'")
        self._shape_5: Any = None
        self._shape_68: Any = None

    @property
    def name(self) -> str:
        return f"dlib-{self.config.detector}"

    def detect(self, image_rgb: np.ndarray) -> list[FaceBox]:
        """Every face found (box and detector score), largest first; landmarks come from
        ``arcface_keypoints`` / ``shape_5`` (models loaded on first use)."""
        image = _rgb_uint8(image_rgb)
        cfg = self.config
        boxes: list[tuple[float, float, float, float, float]] = []
        if cfg.detector == "cnn":
            for hit in self._detector(image, cfg.upsample):
                r = hit.rect
                boxes.append((r.left(), r.top(), r.right(), r.bottom(), float(hit.confidence)))
        else:
            rects, scores, _ = self._detector.run(image, cfg.upsample, cfg.hog_threshold)
            boxes = [(r.left(), r.top(), r.right(), r.bottom(), float(s)) for r, s in zip(rects, scores)]
        faces = [FaceBox(np.array(b[:4], dtype=np.float32), b[4]) for b in boxes]
        return sorted(faces, key=lambda f: -f.area)

    def _rectangle(self, box: np.ndarray) -> Any:
        x1, y1, x2, y2 = (int(round(float(v))) for v in box)
        return self.dlib.rectangle(x1, y1, x2, y2)

    def shape_5(self, image_rgb: np.ndarray, box: np.ndarray) -> Any:
        """dlib's 5-point ``full_object_detection`` of the face in ``box`` (what
        ``dlib.get_face_chip`` and the recogniser align with)."""
        if self._shape_5 is None:
            self._shape_5 = self.dlib.shape_predictor(str(self.files.shape_5))
        return self._shape_5(_rgb_uint8(image_rgb), self._rectangle(box))

    def landmarks_68(self, image_rgb: np.ndarray, box: np.ndarray) -> np.ndarray:
        """(68, 2) float32 iBUG 300-W landmarks of the face in ``box``."""
        if self._shape_68 is None:
            self._shape_68 = self.dlib.shape_predictor(str(self.files.shape_68))
        shape = self._shape_68(_rgb_uint8(image_rgb), self._rectangle(box))
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)

    def arcface_keypoints(self, image_rgb: np.ndarray, box: np.ndarray) -> np.ndarray:
        """(5, 2) float32 keypoints in the ArcFace template's order (docs/method.md §1) from 68 landmarks."""
        return arcface_points_from_68(self.landmarks_68(image_rgb, box))

    def largest_face(self, image_rgb: np.ndarray) -> Face | None:
        """The largest face with its ArcFace keypoints filled in, or ``None``."""
        faces = self.detect(image_rgb)
        if not faces:
            return None
        face = faces[0]
        return Face(box=face.box, score=face.score, keypoints=self.arcface_keypoints(image_rgb, face.box))


def arcface_points_from_68(landmarks_68: np.ndarray) -> np.ndarray:
    """(68, 2) iBUG landmarks → (5, 2) float32: eye centres, nose tip, mouth corners (docs/method.md §1)."""
    points = np.asarray(landmarks_68, dtype=np.float64)
    if points.shape != (68, 2):
        raise ValueError(f"expected (68, 2) landmarks, got {points.shape}")
    five = np.stack([
        points[list(EYE_IMAGE_LEFT_68)].mean(axis=0),
        points[list(EYE_IMAGE_RIGHT_68)].mean(axis=0),
        points[NOSE_TIP_68],
        points[MOUTH_IMAGE_LEFT_68],
        points[MOUTH_IMAGE_RIGHT_68],
    ])
    return five.astype(np.float32)


def dlib_available() -> bool:
    """Whether dlib and its model files are installed (no model is loaded)."""
    try:
        import_dlib()
        dlib_model_files()
    except MissingDependencyError:
        return False
    return True


__all__ = [
    "DlibDetectorConfig", "DlibFaceDetector", "DlibModelFiles", "FaceBox", "INSTALL_HINT",
    "arcface_points_from_68", "dlib_available", "dlib_model_files", "import_dlib",
]
