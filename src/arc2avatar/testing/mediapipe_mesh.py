"""A third, independent face tracker for tests and benchmarks (tooling, never used by the library):
Google's MediaPipe Face Mesh (468 surface points, 478 with the irises), run as its legacy
``solutions.face_mesh`` API documents it (``FaceMesh(static_image_mode=True,
refine_landmarks=True)``: its short-range face detector, then the mesh net on the detected face)
on a batch of RGB images (docs/expressions.md).

Its models ship inside the ``mediapipe`` 0.10.14 wheel (``mediapipe/modules/face_landmark/*.tflite``,
``face_detection_short_range.tflite``; the 1.x wheels carry none), which needs ``protobuf < 5``
while this project's stack has protobuf 7. So it lives in a folder of its own
(``.deps/mediapipe`` of the source checkout, or the folder ``ARC2AVATAR_MEDIAPIPE_PATH`` names;
``./setup.sh test`` fills it with ``pip install --no-deps --target``) and runs in a subprocess
whose ``sys.path`` starts with that folder; the subprocess takes the rest (numpy, OpenCV,
matplotlib) from this environment. One subprocess for the batch: the images go in as a temporary
``.npz``, the points come back as one.

Written by hand: the few lines that start the subprocess and carry the arrays; the detection and
the mesh are MediaPipe's. ``mesh_eye_aspect_ratios`` is Soukupová & Čech's eye aspect ratio
(``evaluate.face_measures.eye_aspect_ratio``) on the mesh's six eye points per eye.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from arc2avatar.errors import InputError, MissingDependencyError
from arc2avatar.evaluate.face_measures import eye_aspect_ratio

FOLDER_ENV = "ARC2AVATAR_MEDIAPIPE_PATH"
# pip's --no-deps install into the folder: MediaPipe with its models, the protobuf it was built
# for and its pure-Python imports; numpy, OpenCV and matplotlib come from this environment.
REQUIREMENTS = ("mediapipe==0.10.14", "protobuf>=4.25.3,<5", "absl-py", "attrs")

# The mesh's eye points as p1…p6 of the eye aspect ratio (outer or inner corner, two upper-lid
# points, the other corner, the two lower-lid points below them; MediaPipe's canonical face mesh
# numbering). The subject's right eye, on the image's left in an unmirrored image: 33 outer
# corner, 160 / 158 upper lid, 133 inner corner, 153 / 144 lower lid.
MESH_EYE_IMAGE_LEFT = (33, 160, 158, 133, 153, 144)
# The subject's left eye, on the image's right: 362 inner corner, 385 / 387 upper lid, 263 outer
# corner, 373 / 380 lower lid.
MESH_EYE_IMAGE_RIGHT = (362, 385, 387, 263, 373, 380)

MESH_BROWS = (70, 63, 105, 66, 107, 300, 293, 334, 296, 336)
"""Face Mesh points of the upper contour of both brows (image-left brow first)."""
MESH_MOUTH_CORNERS = (61, 291)
"""Face Mesh points of the image-left and image-right outer mouth corner."""
_IMPORT_FAILED = 3  # the subprocess's exit status when MediaPipe does not import from the folder

_WORKER = """
import json, sys
folder, source, target, options = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
sys.path.insert(0, folder)
try:
    from mediapipe.python.solutions import face_mesh
    import google.protobuf
except Exception as error:
    print(f"{type(error).__name__}: {error}", file=sys.stderr)
    sys.exit(%(failed)d)
import os
if not os.path.realpath(google.protobuf.__file__).startswith(os.path.realpath(folder)):
    print(f"protobuf {google.protobuf.__version__} was imported from {google.protobuf.__file__}, not {folder}", file=sys.stderr)
    sys.exit(%(failed)d)
import numpy as np
with np.load(source, allow_pickle=False) as data:
    images = [data["image_%%d" %% k] for k in range(len(data.files))]
found, points = [], []
with face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1, refine_landmarks=options["refine"],
                        min_detection_confidence=options["score"]) as mesh:
    for image in images:
        faces = mesh.process(image).multi_face_landmarks
        found.append(bool(faces))
        if faces:
            height, width = image.shape[:2]
            points.append([[p.x * width, p.y * height] for p in faces[0].landmark])
np.savez(target, found=np.array(found, dtype=bool), points=np.array(points, dtype=np.float64).reshape(len(points), -1, 2))
""" % {"failed": _IMPORT_FAILED}


@dataclass(frozen=True)
class MediaPipeMeshConfig:
    """Where MediaPipe is and how it looks for the face.

    Attributes:
        folder: the folder MediaPipe was installed into (``pip install --no-deps --target``);
            ``None``: ``ARC2AVATAR_MEDIAPIPE_PATH``, else ``.deps/mediapipe`` of the source checkout.
        refine_landmarks: the attention mesh model, 478 points with the irises and finer eye and
            lip contours (MediaPipe's ``refine_landmarks``); ``False``: 468 points.
        detection_score: the face detector's minimum confidence (MediaPipe's default 0.5).
        timeout_s: how long the subprocess may take for the whole batch, seconds.
    """

    folder: str | None = None
    refine_landmarks: bool = True
    detection_score: float = 0.5
    timeout_s: float = 180.0


def default_mediapipe_folder() -> Path:
    """``ARC2AVATAR_MEDIAPIPE_PATH``, else ``.deps/mediapipe`` beside this source tree's ``src``."""
    given = os.environ.get(FOLDER_ENV)
    return Path(given) if given else Path(__file__).resolve().parents[3] / ".deps" / "mediapipe"


def install_command(folder: str | os.PathLike) -> str:
    """The shell command that installs MediaPipe into ``folder`` (what ``./setup.sh test`` runs)."""
    specs = " ".join(f'"{spec}"' if "<" in spec or ">" in spec else spec for spec in REQUIREMENTS)
    return f"python -m pip install --no-deps --target {folder} {specs}"


def mediapipe_folder(config: MediaPipeMeshConfig = MediaPipeMeshConfig()) -> Path:
    """The folder MediaPipe is installed in; ``MissingDependencyError`` with the install command
    when it holds no MediaPipe Face Mesh."""
    folder = Path(config.folder) if config.folder else default_mediapipe_folder()
    if not (folder / "mediapipe" / "python" / "solutions" / "face_mesh.py").is_file():
        raise MissingDependencyError(
            f"MediaPipe Face Mesh is not installed in {folder} (it runs from a folder of its own: it needs "
            f"protobuf < 5). Install it with: {install_command(folder)}   (./setup.sh test does it; "
            f"{FOLDER_ENV}=FOLDER picks another folder)")
    return folder


def _checked(image: np.ndarray) -> np.ndarray:
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8 or min(array.shape[:2]) < 1:
        raise InputError(f"MediaPipe Face Mesh takes (H, W, 3) uint8 RGB images, not {array.dtype} {array.shape}")
    return np.ascontiguousarray(array)


def mediapipe_face_mesh(images: Sequence[np.ndarray],
                        config: MediaPipeMeshConfig = MediaPipeMeshConfig()) -> list[np.ndarray | None]:
    """MediaPipe Face Mesh's points, (478, 2) pixels (x, y) ((468, 2) without ``refine_landmarks``),
    of the most confident face in each RGB image; ``None`` where it finds no face.

    One subprocess for the batch. ``MissingDependencyError`` (naming the install command) when
    MediaPipe is not in the folder or does not import from it; ``InputError`` for an image that is
    not (H, W, 3) uint8; ``RuntimeError`` with MediaPipe's last words when the subprocess fails.
    """
    folder = mediapipe_folder(config)
    arrays = [_checked(image) for image in images]
    if not arrays:
        return []
    options = json.dumps({"refine": config.refine_landmarks, "score": config.detection_score})
    with tempfile.TemporaryDirectory(prefix="arc2avatar-mediapipe-") as scratch:
        source, target = Path(scratch) / "images.npz", Path(scratch) / "points.npz"
        np.savez(source, **{f"image_{k}": array for k, array in enumerate(arrays)})
        try:
            result = subprocess.run([sys.executable, "-c", _WORKER, str(folder), str(source), str(target), options],
                                    capture_output=True, text=True, timeout=config.timeout_s, check=False)
        except subprocess.TimeoutExpired as error:
            raise RuntimeError(f"MediaPipe Face Mesh took longer than {config.timeout_s:.0f} s for "
                               f"{len(arrays)} images") from error
        if result.returncode == _IMPORT_FAILED:
            raise MissingDependencyError(
                f"MediaPipe Face Mesh does not import from {folder}: {result.stderr.strip()[-400:]}. "
                f"Reinstall it with: rm -rf {folder} && {install_command(folder)}")
        if result.returncode != 0 or not target.is_file():
            raise RuntimeError(f"MediaPipe Face Mesh failed (exit status {result.returncode}): "
                               f"{result.stderr.strip()[-800:]}")
        with np.load(target, allow_pickle=False) as answer:
            found, points = answer["found"], answer["points"]
    rows = iter(points)
    return [next(rows) if hit else None for hit in found]


def mesh_eye_aspect_ratios(points: np.ndarray) -> tuple[float, float]:
    """Soukupová & Čech's eye aspect ratio of the image-left and the image-right eye (the subject's
    right and left eye in an unmirrored image) from Face Mesh points (``MESH_EYE_IMAGE_LEFT``,
    ``MESH_EYE_IMAGE_RIGHT``). An open eye reads ≈ 0.25–0.45, a closed one ≲ 0.1."""
    points = np.asarray(points, dtype=np.float64)
    return eye_aspect_ratio(points, MESH_EYE_IMAGE_LEFT), eye_aspect_ratio(points, MESH_EYE_IMAGE_RIGHT)


def mesh_brow_eye_distance(points: np.ndarray) -> float:
    """Mean image y of both eyes' six EAR points minus the mean y of the brows' upper contour
    (``MESH_BROWS``), pixels: what ``evaluate.face_measures`` reads from dlib's points, on Face Mesh's."""
    points = np.asarray(points, dtype=np.float64)
    eyes = list(MESH_EYE_IMAGE_LEFT + MESH_EYE_IMAGE_RIGHT)
    return float(points[eyes, 1].mean() - points[list(MESH_BROWS), 1].mean())


def mesh_mouth_corners(points: np.ndarray) -> tuple[float, tuple[float, float]]:
    """The outer mouth corners' distance and their image y (image-left, image-right), pixels."""
    points = np.asarray(points, dtype=np.float64)
    left, right = points[list(MESH_MOUTH_CORNERS)]
    return float(np.linalg.norm(left - right)), (float(left[1]), float(right[1]))


__all__ = ["FOLDER_ENV", "MESH_BROWS", "MESH_EYE_IMAGE_LEFT", "MESH_EYE_IMAGE_RIGHT", "MESH_MOUTH_CORNERS", "REQUIREMENTS", "MediaPipeMeshConfig",
           "default_mediapipe_folder", "install_command", "mediapipe_face_mesh", "mediapipe_folder",
           "mesh_brow_eye_distance", "mesh_eye_aspect_ratios", "mesh_mouth_corners"]
