"""Test machinery of the evaluation: real face photos from registry packages, a stand-in of the
Inception file in its real format, and an untrained photo-textured avatar (CPU, seconds).

* **Photos.** scikit-image's ``data.astronaut()`` (Eileen Collins, NASA portrait, public domain)
  and matplotlib's sample ``grace_hopper.jpg`` (U.S. Navy portrait, public domain): two real,
  different people that ship inside packages of the ``test`` / ``eval`` extras, so no download.
* **Inception stand-in.** The real ``inception-2015-12-05.pt`` cannot be fetched here. The
  stand-in is a TorchScript module with the same interface (a ``layers`` submodule taking
  (B, 3, 299, 299) normalised images to (B, 2048, 1, 1)): a fixed random 1×1 convolution after
  4×4 average pooling. It exercises the loading and feature path, not Inception's numbers.
* **Photo avatar.** One splat per template vertex coloured like the photo-textured oracle
  target (``pipeline.oracle.default_target``): what the demo's avatar converges toward, without
  the optimisation — enough for fast tests of the judge on splat renders.
* **Tracker views.** The camera the expression trackers judge renders from (``TrackerView``:
  512², r = 3.0, looking at the face; ``tracker_cameras``) and an avatar's renders at a list of
  expressions (``expression_renders``), shared by the tests and the benchmarks that read them.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from dataclasses import dataclass
from typing import Mapping, Sequence

from arc2avatar.errors import MissingDependencyError
from arc2avatar.avatar.model import Avatar
from arc2avatar.avatar.rig import apply_expression, setup_for_avatar
from arc2avatar.cameras.model import Cameras, orbit_cameras
from arc2avatar.avatar.template import TemplateConfig, build_head
from arc2avatar.pipeline.oracle import default_target
from arc2avatar.splats.model import GaussianSplats

STAND_IN_POOL = 4  # side of the average pooling before the stand-in's 1×1 convolution


def astronaut_photo() -> np.ndarray:
    """(512, 512, 3) uint8: scikit-image's astronaut (Eileen Collins)."""
    try:
        from skimage import data
    except ImportError as error:
        raise MissingDependencyError("the sample photo needs scikit-image: pip install scikit-image") from error
    return np.ascontiguousarray(data.astronaut())


def grace_hopper_photo() -> np.ndarray:
    """(600, 512, 3) uint8: matplotlib's sample portrait of Grace Hopper."""
    try:
        import matplotlib
    except ImportError as error:
        raise MissingDependencyError('the sample photo needs matplotlib: pip install "arc2avatar[eval]"') from error
    from PIL import Image

    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB")).copy()


class _StandInLayers(nn.Module):
    def __init__(self, features: int, seed: int) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.pool = nn.AvgPool2d(STAND_IN_POOL)
        self.mix = nn.Conv2d(3, features, kernel_size=1)
        with torch.no_grad():
            self.mix.weight.copy_(torch.randn(self.mix.weight.shape, generator=generator))
            self.mix.bias.zero_()

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(self.mix(self.pool(x))).mean(dim=(2, 3), keepdim=True)


class _StandInInception(nn.Module):
    def __init__(self, features: int, seed: int) -> None:
        super().__init__()
        self.layers = _StandInLayers(features, seed)

    def forward(self, x: Tensor) -> Tensor:
        return self.layers((x - 128.0) / 128.0).flatten(1)


def write_stand_in_inception(path: str | Path, features: int = 2048, seed: int = 0) -> Path:
    """Write the TorchScript stand-in of ``inception-2015-12-05.pt`` to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, message=".*torch.jit.*")
        torch.jit.script(_StandInInception(features, seed).eval()).save(str(path))
    return path


def photo_avatar(photo: np.ndarray | None, keypoints: np.ndarray | None, face_levels: int = 0,
                 flame: str | Path | None = None, flame_mouth: bool = True, landmarks: np.ndarray | None = None):
    """An ``Avatar`` (with its template binding: built-in, or the FLAME file ``flame``) whose
    splats carry the colours of the photo-textured oracle target; no optimisation.
    ``keypoints``: the photo's five ArcFace points; ``landmarks``: its 68 dlib points, which put
    its eyes on the template's lid line as the photo demo does (``oracle.eye_shifts``; None: the
    5-point placement alone). ``photo`` None: the template's own colours
    (a FLAME head without ``FLAME_masks.pkl`` has no eye, nose and lip regions to align a photo by).
    ``flame_mouth`` False: FLAME's bare skin, as avatars made before its mouth inside."""
    kind = {} if flame is None else {"kind": "flame", "flame_path": str(flame)}
    setup = build_head(TemplateConfig(face_levels=face_levels, rest_levels=0, **kind), flame_mouth=flame_mouth)
    head = setup.upsampled.head
    target = default_target(head, photo=photo, photo_keypoints=keypoints, photo_landmarks=landmarks, face_triangles=setup.upsampled.num_face_triangles)
    splats = GaussianSplats.from_template(target.vertices, target.colors, head.face_mask)
    return Avatar(splats, template=dict(setup.info), extra={"stage": "photo-textured template (untrained)"})



@dataclass(frozen=True)
class TrackerView:
    """The frontal view the expression trackers read (docs/expressions.md, issue 24).

    Attributes:
        size: image side, pixels (the issue's 512²).
        radius: camera distance from the head's centre, world units (the head fills the view).
        fovy: vertical field of view, radians.
        look_at_z: world height the camera looks at (the face's middle, not the head's centre).
    """

    size: int = 512
    radius: float = 3.0
    fovy: float = 0.7
    look_at_z: float = 0.12


def tracker_cameras(azimuths_deg: Sequence[float] = (0.0,), view: TrackerView = TrackerView()) -> Cameras:
    """Cameras of ``view`` at eye level, one per azimuth (degrees; 0 = frontal)."""
    return orbit_cameras(view.radius, 90.0, torch.tensor(list(azimuths_deg), dtype=torch.float32), view.fovy,
                         view.size, view.size, target=torch.tensor([[0.0, 0.0, view.look_at_z]]))


def expression_renders(avatar: Avatar, expressions: Sequence[Mapping[str, float]], cameras: Cameras | None = None,
                       background: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> list[np.ndarray]:
    """The avatar at each expression (name → weight), rendered by ``cameras`` (default: the
    frontal ``tracker_cameras``): one (C, H, W, 3) uint8 array per expression."""
    cameras = tracker_cameras() if cameras is None else cameras
    setup = setup_for_avatar(avatar)
    return [(apply_expression(avatar, setup, dict(weights)).render_cameras(cameras, background) * 255)
            .round().to(torch.uint8).numpy() for weights in expressions]


__all__ = ["TrackerView", "astronaut_photo", "expression_renders", "grace_hopper_photo", "photo_avatar",
           "tracker_cameras", "write_stand_in_inception"]
