"""Face recognisers behind one interface: the guidance network and an independent judge (docs/method.md §9).

A ``FaceRecognizer`` finds the largest face in an image and aligns it the way its network was
trained (``align``), embeds aligned crops (``embed``), and scores pairs of embeddings
(``compare``) with its own metric and "same person" threshold (``same_person``):

| recogniser | detector + alignment | embedding | metric | same person |
|---|---|---|---|---|
| ``arcface`` — the guidance network (``arcface.onnx``, FoivosPar/Arc2Face, IResNet-100) | SCRFD-10GF, 5 points → 112² ArcFace template (docs/method.md §1) | 512-d | cosine similarity | ≥ 0.4 (rule of thumb) |
| ``dlib`` — independent judge (dlib's face recognition ResNet v1) | dlib HOG (or CNN) detector, 5-point shape → 150² ``get_face_chip``, padding 0.25 | 128-d | Euclidean distance | < 0.6 |

**Scales.** dlib's model is trained so that two photos of one person lie closer than 0.6 in
Euclidean distance (dlib's documentation: 99.38% accuracy on the LFW benchmark at that
threshold); different people usually lie at 0.7–1.0, the same photo at 0. ArcFace cosines:
≈ 0.5–0.8 for two photos of one person, ≈ 0.0–0.2 for different people, verification
thresholds ≈ 0.3–0.4 (docs/method.md §9; a rule of thumb, not verified on a benchmark
here). Arc2Face was conditioned on ``arcface.onnx``, so avatars optimised against it score
higher on it than on an independent network: the guidance number is reported as secondary.

Written by hand: the interface and the glue; detection, alignment and embedding are
``arc2avatar.identity`` (ours, docs/method.md §1) and dlib's.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, Sequence, runtime_checkable

import numpy as np

from arc2avatar.errors import InputError, MissingDependencyError, MissingWeightsError
from arc2avatar.identity.dlib_faces import DlibDetectorConfig, DlibFaceDetector
from arc2avatar.identity.align import align_face
from arc2avatar.identity.arcface import ArcFaceEmbedder
from arc2avatar.identity.detect import ScrfdDetector, largest_face
from arc2avatar.identity.embed import l2_normalise
from arc2avatar.weights.resolver import WeightsConfig, resolve_weights

log = logging.getLogger(__name__)

Metric = Literal["cosine", "euclidean"]
RECOGNIZER_NAMES: tuple[str, ...] = ("dlib", "arcface")


@dataclass(frozen=True)
class AlignedFace:
    """The largest face of an image, aligned for one recogniser.

    Attributes:
        crop: (S, S, 3) uint8 RGB aligned crop (ArcFace 112², dlib 150²).
        box: (4,) float32 x1, y1, x2, y2 of the detection, pixel indices.
        score: the detector's confidence (SCRFD probability; dlib HOG margin > 0).
        faces_found: how many faces the detector found (the largest is used).
    """

    crop: np.ndarray
    box: np.ndarray
    score: float
    faces_found: int


@runtime_checkable
class FaceRecognizer(Protocol):
    """What every recogniser offers (see the module table).

    Attributes:
        name: shown in every figure and table, e.g. ``"dlib ResNet v1"``.
        metric: ``"cosine"`` (higher = closer) or ``"euclidean"`` (lower = closer).
        threshold: the "same person" boundary on that metric.
        guidance: True for the network the avatar was optimised against (ArcFace).
    """

    name: str
    metric: Metric
    threshold: float
    guidance: bool

    def align(self, image_rgb: np.ndarray) -> AlignedFace | None:
        """Detect the largest face of an (H, W, 3) uint8 image and align it; ``None`` if none."""
        ...

    def embed(self, faces: Sequence[AlignedFace]) -> np.ndarray:
        """(N, D) float32 embeddings of aligned faces (unit length for cosine recognisers)."""
        ...


def compare(metric: Metric, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Scores of embeddings ``a`` (N, D) against ``b`` (M, D) → (N, M): cosine similarity of the
    L2-normalised vectors, or Euclidean distance."""
    a = np.atleast_2d(np.asarray(a, dtype=np.float64))
    b = np.atleast_2d(np.asarray(b, dtype=np.float64))
    if metric == "cosine":
        a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), np.finfo(np.float64).tiny)
        b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), np.finfo(np.float64).tiny)
        return a @ b.T
    if metric == "euclidean":
        return np.linalg.norm(a[:, None, :] - b[None, :, :], axis=-1)
    raise ValueError(f"unknown metric {metric!r}")


def same_person(metric: Metric, threshold: float, score: float | np.ndarray) -> bool | np.ndarray:
    """The recogniser's verdict: cosine ≥ threshold, or distance < threshold."""
    score = np.asarray(score, dtype=np.float64)
    verdict = score >= threshold if metric == "cosine" else score < threshold
    return bool(verdict) if verdict.ndim == 0 else verdict


def describe(recognizer: FaceRecognizer) -> dict[str, Any]:
    """JSON-able description of a recogniser (for reports)."""
    closer = "higher" if recognizer.metric == "cosine" else "lower"
    rule = "≥" if recognizer.metric == "cosine" else "<"
    return {
        "name": recognizer.name,
        "metric": recognizer.metric,
        "threshold": recognizer.threshold,
        "same_person_rule": f"{recognizer.metric} {rule} {recognizer.threshold}",
        "closer_is": closer,
        "guidance_network": recognizer.guidance,
    }


# --------------------------------------------------------------------------------------- dlib
@dataclass(frozen=True)
class DlibRecognizerConfig:
    """dlib face recognition (``dlib.face_recognition_model_v1``).

    Attributes:
        detector: detection settings (HOG by default).
        chip_size: aligned crop side, pixels (150: what the ResNet was trained on).
        chip_padding: margin around the 5-point face box, fraction of its size (0.25, dlib's).
        num_jitters: random jitters averaged per face (0 = one pass; dlib suggests up to 100
            for a few % more accuracy at that many times the cost).
        threshold: same person below this Euclidean distance (0.6, dlib's documented value).
    """

    detector: DlibDetectorConfig = DlibDetectorConfig()
    chip_size: int = 150
    chip_padding: float = 0.25
    num_jitters: int = 0
    threshold: float = 0.6


class DlibRecognizer:
    """dlib's face recognition ResNet (128-d, Euclidean, < 0.6 = same person). Offline."""

    metric: Metric = "euclidean"
    guidance = False

    def __init__(self, config: DlibRecognizerConfig = DlibRecognizerConfig()) -> None:
        self.config = config
        self.detector = DlibFaceDetector(config.detector)
        self.dlib = self.detector.dlib
        self._model = self.dlib.face_recognition_model_v1(str(self.detector.files.recognition))
        self.threshold = config.threshold
        self.name = f"dlib ResNet v1 ({self.detector.name} detector)"

    def align(self, image_rgb: np.ndarray) -> AlignedFace | None:
        faces = self.detector.detect(image_rgb)
        if not faces:
            return None
        face = faces[0]
        shape = self.detector.shape_5(image_rgb, face.box)
        chip = self.dlib.get_face_chip(np.ascontiguousarray(image_rgb), shape, size=self.config.chip_size,
                                       padding=self.config.chip_padding)
        return AlignedFace(np.asarray(chip, dtype=np.uint8), face.box, face.score, len(faces))

    def embed(self, faces: Sequence[AlignedFace]) -> np.ndarray:
        if not faces:
            return np.zeros((0, 128), dtype=np.float32)
        chips = [np.ascontiguousarray(f.crop) for f in faces]
        vectors = self._model.compute_face_descriptor(chips, self.config.num_jitters)
        return np.array([np.asarray(v) for v in vectors], dtype=np.float32)


# ------------------------------------------------------------------------------------ ArcFace
@dataclass(frozen=True)
class ArcFaceRecognizerConfig:
    """The guidance network as a recogniser (docs/method.md §1 detection and alignment).

    Attributes:
        det_size: SCRFD input size, pixels (docs/method.md §1: 640).
        threshold: same person at cosine ≥ this (0.4: the upper end of the usual 0.3–0.4
            verification range, docs/method.md §9, a rule of thumb).
    """

    det_size: int = 640
    threshold: float = 0.4


class ArcFaceRecognizer:
    """ArcFace ONNX (the guidance network) with SCRFD detection and the 112² template alignment.

    Args:
        scrfd_onnx, arcface_onnx: model files (``WeightsPaths.scrfd_onnx`` / ``.arcface_onnx``).
    """

    metric: Metric = "cosine"
    guidance = True

    def __init__(self, scrfd_onnx: str | Path, arcface_onnx: str | Path,
                 config: ArcFaceRecognizerConfig = ArcFaceRecognizerConfig()) -> None:
        self.config = config
        self.detector = ScrfdDetector(scrfd_onnx, det_size=config.det_size)
        self.embedder = ArcFaceEmbedder(arcface_onnx)
        self.threshold = config.threshold
        self.name = "ArcFace ONNX (guidance network)"

    def align(self, image_rgb: np.ndarray) -> AlignedFace | None:
        faces = self.detector.detect(np.ascontiguousarray(image_rgb))
        face = largest_face(faces)
        if face is None:
            return None
        return AlignedFace(align_face(image_rgb, face.keypoints), face.box, face.score, len(faces))

    def embed(self, faces: Sequence[AlignedFace]) -> np.ndarray:
        if not faces:
            return np.zeros((0, self.embedder.config.embedding_dim), dtype=np.float32)
        return l2_normalise(self.embedder.embed(np.stack([f.crop for f in faces])))


# ------------------------------------------------------------------------------------ choice
def load_recognizers(names: Sequence[str] = ("auto",), weights: str | Path | None = None,
                     dlib_config: DlibRecognizerConfig = DlibRecognizerConfig(),
                     arcface_config: ArcFaceRecognizerConfig = ArcFaceRecognizerConfig()) -> list[FaceRecognizer]:
    """The recognisers to evaluate with, independent ones first.

    Args:
        names: ``"dlib"``, ``"arcface"``, or ``"auto"`` (each one whose package / weights are
            present; at least one must be).
        weights: the weights folder for ArcFace (default ``$ARC2AVATAR_WEIGHTS`` or the cache).

    Raises:
        MissingDependencyError / MissingWeightsError: a recogniser named explicitly cannot load.
        InputError: an unknown name, or ``auto`` and none can load (the message says why each).
    """
    wanted = list(dict.fromkeys(names)) or ["auto"]
    unknown = [n for n in wanted if n not in (*RECOGNIZER_NAMES, "auto")]
    if unknown:
        raise InputError(f"unknown recogniser {', '.join(unknown)}; choose from {', '.join(RECOGNIZER_NAMES)} or auto")
    auto = "auto" in wanted
    order = list(RECOGNIZER_NAMES) if auto else [n for n in RECOGNIZER_NAMES if n in wanted]
    loaded: list[FaceRecognizer] = []
    reasons: list[str] = []
    for name in order:
        try:
            loaded.append(_load_one(name, weights, dlib_config, arcface_config))
        except (MissingDependencyError, MissingWeightsError) as error:
            if not auto or name in wanted:
                raise
            first_line = str(error).splitlines()[0]
            reasons.append(f"{name}: {first_line}")
            log.info("recogniser %s not available (%s)", name, first_line)
    if not loaded:
        raise InputError("no face recogniser is available: " + "; ".join(reasons))
    return loaded


def _load_one(name: str, weights: str | Path | None, dlib_config: DlibRecognizerConfig,
              arcface_config: ArcFaceRecognizerConfig) -> FaceRecognizer:
    if name == "dlib":
        return DlibRecognizer(dlib_config)
    paths = resolve_weights(WeightsConfig(root=None if weights is None else Path(weights)), {"identity", "detector"})
    return ArcFaceRecognizer(paths.scrfd_onnx, paths.arcface_onnx, arcface_config)


__all__ = [
    "AlignedFace", "ArcFaceRecognizer", "ArcFaceRecognizerConfig", "DlibRecognizer", "DlibRecognizerConfig",
    "FaceRecognizer", "Metric", "RECOGNIZER_NAMES", "compare", "describe", "load_recognizers", "same_person",
]
