"""SCRFD face detection (antelopev2 ``scrfd_10g_bnkps.onnx``) through onnxruntime, no insightface.

Spec §1 (detection size 640). Written by hand because the only packaged decoder, insightface,
drags in a second OpenCV wheel, a model zoo and a GUI to run 60 lines of numpy; the behaviour
below matches its ``SCRFD.detect`` (read, not copied; tests/test_parity.py compares the two on
the same ONNX files: equal boxes, scores and keypoints):

* **Letterbox.** The photo is resized (aspect kept) to fit ``det_size``×``det_size`` and placed at
  the TOP-LEFT of a black canvas; ``det_scale`` = new height / original height maps detections
  back. The resize is OpenCV's ``cv2.resize`` INTER_LINEAR, as insightface's: it does not
  antialias, and SCRFD was run that way in Arc2Face and the official release, so a photo
  downscaled any other way (Pillow's antialiased bilinear, say) shows the network a different
  image (tests/test_parity.py measured boxes up to hundreds of pixels apart on a random-weight
  SCRFD; docs/official-code.md §1.1).
* **Input blob.** insightface feeds a BGR image through ``cv2.dnn.blobFromImage(img, 1/128,
  size, (127.5,)*3, swapRB=True)``: the network sees **RGB**, ``(x − 127.5) / 128``, NCHW
  float32. Our images are RGB already, so no channel swap.
* **Outputs** (9, in session order): scores for strides 8, 16, 32; box distances for 8, 16, 32;
  keypoint distances for 8, 16, 32. Per stride s with a (H/s)×(W/s) grid and 2 anchors per
  cell: scores (N, 1), boxes (N, 4), keypoints (N, 10), N = H/s · W/s · 2, row-major over
  (y, x, anchor). Some exports add a leading batch axis, (1, N, k): accepted too.
* **Decoding.** Anchor centre of cell (x, y) = (x·s, y·s) in letterboxed pixels (no +s/2).
  Distances are in stride units: box = (cx − d0·s, cy − d1·s, cx + d2·s, cy + d3·s);
  keypoint k = (cx + d_{2k}·s, cy + d_{2k+1}·s).
* **NMS.** Greedy, IoU with insightface's inclusive-pixel areas ((x2 − x1 + 1)·(y2 − y1 + 1)),
  suppress IoU > ``nms_threshold``.

Coordinates are pixel-index coordinates of the original image (pixel (i, j) centred at (j, i)),
the convention ``align.py`` expects.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from arc2avatar.errors import InputError, MissingDependencyError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScrfdConfig:
    """SCRFD detector settings.

    Attributes:
        det_size: square detection input in pixels (docs/method.md §1: 640; the official release used
            256).
        score_threshold: minimum face score (insightface default 0.5).
        nms_threshold: IoU above which a lower-scored box is suppressed (insightface 0.4).
        strides: feature strides of the three FPN levels (SCRFD "bnkps" models: 8, 16, 32).
        anchors_per_cell: anchors per grid cell (2 for these models).
        input_mean, input_std: blob normalisation ``(x − mean) / std`` (insightface SCRFD:
            127.5, 128.0).
    """

    det_size: int = 640
    score_threshold: float = 0.5
    nms_threshold: float = 0.4
    strides: tuple[int, ...] = (8, 16, 32)
    anchors_per_cell: int = 2
    input_mean: float = 127.5
    input_std: float = 128.0


@dataclass(frozen=True)
class Face:
    """One detected face in original-image pixel coordinates.

    Attributes:
        box: (4,) float32 x1, y1, x2, y2.
        score: detection confidence in [0, 1].
        keypoints: (5, 2) float32 x, y: left eye, right eye, nose, left / right mouth corner
            ("left" as seen in the image).
    """

    box: np.ndarray
    score: float
    keypoints: np.ndarray

    @property
    def area(self) -> float:
        """Box area in pixels² (the largest face is the subject, docs/method.md §1)."""
        return float(max(0.0, self.box[2] - self.box[0]) * max(0.0, self.box[3] - self.box[1]))


def _cv2():
    """OpenCV (``opencv-python-headless``, a core dependency): the resize and warp SCRFD/ArcFace
    inputs were made with in the reference code."""
    try:
        import cv2
    except ImportError as error:  # pragma: no cover - a core dependency
        raise MissingDependencyError(
            "face detection needs OpenCV: pip install opencv-python-headless") from error
    return cv2


def _onnxruntime():
    try:
        import onnxruntime
    except ImportError as error:  # pragma: no cover - a core dependency
        raise MissingDependencyError(
            "face detection needs onnxruntime: pip install onnxruntime (or onnxruntime-gpu)"
        ) from error
    return onnxruntime


def open_onnx_session(onnx_path: str | Path, providers: list[str] | None = None):
    """An onnxruntime session on the best available provider (CUDA if present, else CPU).

    Raises ``InputError`` naming the file when onnxruntime cannot load it.
    """
    ort = _onnxruntime()
    available = ort.get_available_providers()
    if providers is None:
        providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider")
                     if p in available]
    try:
        return ort.InferenceSession(str(onnx_path), providers=providers)
    except Exception as error:  # onnxruntime raises its own untyped exceptions
        raise InputError(f"cannot load ONNX model {onnx_path}: {error}. "
                         "Is the file complete? Re-download it.") from error


def letterbox(image_rgb: np.ndarray, det_size: int) -> tuple[np.ndarray, float]:
    """Fit an image into a black det_size² canvas at the top-left, aspect kept.

    Args:
        image_rgb: (H, W, 3) uint8.
        det_size: canvas side in pixels.

    Returns:
        canvas (det_size, det_size, 3) uint8 and ``det_scale`` (resized height / H): a point p
        in the canvas is p / det_scale in the original image.
    """
    height, width = image_rgb.shape[:2]
    if height / width > 1.0:
        new_h, new_w = det_size, int(det_size / (height / width))
    else:
        new_w, new_h = det_size, int(det_size * (height / width))
    new_w, new_h = max(1, new_w), max(1, new_h)
    cv2 = _cv2()
    resized = cv2.resize(np.ascontiguousarray(image_rgb), (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    canvas = np.zeros((det_size, det_size, 3), dtype=np.uint8)
    canvas[:new_h, :new_w] = resized
    return canvas, new_h / height


def anchor_centres(grid_h: int, grid_w: int, stride: int, anchors_per_cell: int) -> np.ndarray:
    """(grid_h·grid_w·anchors, 2) float32 x, y of each anchor, row-major over (y, x, anchor)."""
    ys, xs = np.mgrid[:grid_h, :grid_w]
    centres = np.stack([xs, ys], axis=-1).reshape(-1, 2).astype(np.float32) * stride
    return np.repeat(centres, anchors_per_cell, axis=0)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy non-maximum suppression (torchvision is not a dependency).

    Args:
        boxes: (N, 4) x1, y1, x2, y2; scores: (N,).
        iou_threshold: a box is dropped if its IoU with a kept, higher-scored box exceeds this.
            Areas use inclusive pixels, (x2 − x1 + 1)(y2 − y1 + 1), like insightface.

    Returns:
        (K,) int64 indices of kept boxes, by decreasing score.
    """
    x1, y1, x2, y2 = (boxes[:, i] for i in range(4))
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size:
        best, rest = order[0], order[1:]
        keep.append(int(best))
        inter_w = np.maximum(0.0, np.minimum(x2[best], x2[rest])
                             - np.maximum(x1[best], x1[rest]) + 1)
        inter_h = np.maximum(0.0, np.minimum(y2[best], y2[rest])
                             - np.maximum(y1[best], y1[rest]) + 1)
        inter = inter_w * inter_h
        iou = inter / (areas[best] + areas[rest] - inter)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def _per_anchor(output: np.ndarray, width: int, name: str) -> np.ndarray:
    """(N, k) or (1, N, k) -> (N, k); anything else is a model we do not understand."""
    if output.ndim == 3 and output.shape[0] == 1:
        output = output[0]
    if output.ndim != 2 or output.shape[1] != width:
        raise InputError(f"SCRFD output {name} has shape {output.shape}, expected (N, {width}): "
                         "is this scrfd_10g_bnkps.onnx?")
    return output


class ScrfdDetector:
    """SCRFD-10GF face detector with 5 keypoints (antelopev2 ``scrfd_10g_bnkps.onnx``).

    >>> detector = ScrfdDetector(weights.scrfd_onnx)
    >>> faces = detector.detect(load_image("photo.jpg"))    # sorted by decreasing score
    """

    def __init__(self, onnx_path: str | Path, det_size: int = ScrfdConfig.det_size,
                 score_threshold: float = ScrfdConfig.score_threshold,
                 nms_threshold: float = ScrfdConfig.nms_threshold,
                 config: ScrfdConfig | None = None, providers: list[str] | None = None):
        base = config or ScrfdConfig()
        self.config = ScrfdConfig(det_size=det_size, score_threshold=score_threshold,
                                  nms_threshold=nms_threshold, strides=base.strides,
                                  anchors_per_cell=base.anchors_per_cell,
                                  input_mean=base.input_mean, input_std=base.input_std)
        self.onnx_path = Path(onnx_path)
        self.session = open_onnx_session(onnx_path, providers)
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]
        n_levels = len(self.config.strides)
        if len(self.output_names) != 3 * n_levels:
            raise InputError(
                f"{self.onnx_path} has {len(self.output_names)} outputs, expected {3 * n_levels} "
                "(scores, boxes and keypoints per stride): is this scrfd_10g_bnkps.onnx (the "
                "'bnkps' model with keypoints)?")

    def blob(self, canvas_rgb: np.ndarray) -> np.ndarray:
        """(S, S, 3) uint8 RGB -> (1, 3, S, S) float32 ``(x − 127.5) / 128``."""
        cfg = self.config
        chw = canvas_rgb.astype(np.float32).transpose(2, 0, 1)[None]
        return (chw - np.float32(cfg.input_mean)) / np.float32(cfg.input_std)

    def detect(self, image_rgb: np.ndarray) -> list[Face]:
        """Faces in an (H, W, 3) uint8 RGB image, in its pixel coordinates, best score first."""
        cfg = self.config
        canvas, det_scale = letterbox(image_rgb, cfg.det_size)
        outputs = self.session.run(self.output_names, {self.input_name: self.blob(canvas)})
        n_levels = len(cfg.strides)
        scores_l, boxes_l, kps_l = [], [], []
        for level, stride in enumerate(cfg.strides):
            scores = _per_anchor(outputs[level], 1, self.output_names[level])[:, 0]
            dist_box = _per_anchor(outputs[level + n_levels], 4,
                                   self.output_names[level + n_levels]) * stride
            dist_kps = _per_anchor(outputs[level + 2 * n_levels], 10,
                                   self.output_names[level + 2 * n_levels]) * stride
            grid = cfg.det_size // stride
            centres = anchor_centres(grid, grid, stride, cfg.anchors_per_cell)  # (N, 2)
            if centres.shape[0] != scores.shape[0]:
                raise InputError(f"{self.onnx_path}: stride {stride} gives {scores.shape[0]} "
                                 f"anchors, expected {centres.shape[0]}")
            keep = scores >= cfg.score_threshold
            c = centres[keep]
            box = np.concatenate([c - dist_box[keep, :2], c + dist_box[keep, 2:]], axis=1)
            kps = c[:, None, :] + dist_kps[keep].reshape(-1, 5, 2)
            scores_l.append(scores[keep])
            boxes_l.append(box)
            kps_l.append(kps)
        scores = np.concatenate(scores_l).astype(np.float32)
        boxes = (np.concatenate(boxes_l) / det_scale).astype(np.float32)
        kps = (np.concatenate(kps_l) / det_scale).astype(np.float32)
        kept = nms(boxes, scores, cfg.nms_threshold)
        return [Face(boxes[i], float(scores[i]), kps[i]) for i in kept]


def largest_face(faces: list[Face]) -> Face | None:
    """The face with the largest box area (docs/method.md §1), or ``None`` when there is none."""
    return max(faces, key=lambda f: f.area) if faces else None
