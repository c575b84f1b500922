"""FID and KID between avatar renders and reference images (paper §4, Tab. 1; docs/method.md §9).

**Features.** Inception-v3 pool-3 (2048-d) features from the TorchScript port of the TensorFlow
FID network, ``inception-2015-12-05.pt`` (the file clean-fid and StyleGAN's metrics load), read
from a local path: no machine of this project can download it. Images are resized to 299² the
way clean-fid's "clean" mode does (Pillow bicubic on each channel in float32, no quantisation,
values 0..255), then normalised ``(x − 128) / 128`` and passed through the network's ``layers``
module, as clean-fid does when it resizes outside the network.

**Maths: torchmetrics.** ``FrechetInceptionDistance`` and ``KernelInceptionDistance``
(torchmetrics ≥ 1.0) take a custom feature network, so the statistics (means, covariances, the
matrix square root of FID; the unbiased polynomial-kernel MMD² of KID, degree 3, γ = 1/d,
coef 1) are the library's, not ours. Why not clean-fid or torch-fidelity: both import
torchvision when their metric modules load (clean-fid's ``fid`` module and torch-fidelity's
package import its dataset helpers), and torchvision wheels do not load beside a CPU-only torch
build; torchmetrics' FID/KID need no torchvision. The features are computed once and handed to
the metrics through an identity feature module.

**Small samples.** FID needs ≥ 2 images per set and is strongly biased below thousands of
images (docs/method.md §9); with a few reference photos it is a coarse indicator, KID
(unbiased) the better one. KID uses subsets of min(n_renders, n_references, 1000) images.

Written by hand: the resize (clean-fid's protocol, re-implemented on Pillow), the file lookup
and the messages.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn

from arc2avatar.errors import InputError, MissingDependencyError, MissingWeightsError
from arc2avatar.weights.resolver import WeightsConfig

INCEPTION_FILENAME = "inception-2015-12-05.pt"
INCEPTION_SOURCE = ("the TorchScript FID Inception of StyleGAN2-ADA / clean-fid "
                    "(nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt)")
EVAL_INSTALL_HINT = 'pip install "arc2avatar[eval]" (it brings torchmetrics)'


@dataclass(frozen=True)
class FidConfig:
    """FID / KID settings.

    Attributes:
        inception_path: the ``inception-2015-12-05.pt`` file; ``None`` = ``<weights root>/``
            that name (``$ARC2AVATAR_WEIGHTS`` or ``~/.cache/arc2avatar/weights``).
        image_size: Inception input side, pixels (299).
        feature_dim: pool-3 feature length (2048).
        input_offset, input_scale: network input = (pixel − offset) / scale (128, 128: the
            TensorFlow graph's normalisation as clean-fid applies it).
        kid_subsets: random subsets KID averages over (100, torchmetrics' and clean-fid's).
        kid_max_subset_size: cap on the subset size (1000, idem).
        kid_degree, kid_coef: polynomial kernel (x·y/d + coef)^degree (3, 1.0).
        seed: seed of the KID subset draws (reproducible reports).
        batch_size: images per network call.
    """

    inception_path: Path | None = None
    image_size: int = 299
    feature_dim: int = 2048
    input_offset: float = 128.0
    input_scale: float = 128.0
    kid_subsets: int = 100
    kid_max_subset_size: int = 1000
    kid_degree: int = 3
    kid_coef: float = 1.0
    seed: int = 0
    batch_size: int = 8


def inception_file(config: FidConfig, weights: str | Path | None = None) -> Path:
    """Where the Inception file is expected (``config.inception_path`` or the weights root)."""
    if config.inception_path is not None:
        return Path(config.inception_path).expanduser()
    return WeightsConfig(root=None if weights is None else Path(weights)).local_root() / INCEPTION_FILENAME


def require_inception(config: FidConfig, weights: str | Path | None = None) -> Path:
    """The Inception file, or ``MissingWeightsError`` (one line) naming it and its source."""
    path = inception_file(config, weights)
    if not path.is_file():
        raise MissingWeightsError(f"FID/KID need the Inception weights {path} (missing): put {INCEPTION_SOURCE} "
                                  "there, or pass --inception PATH")
    return path


def clean_resize(image_hwc: np.ndarray, size: int) -> np.ndarray:
    """(H, W, 3) uint8 → (size, size, 3) float32 in 0..255: Pillow bicubic per channel in float
    mode, clipped, not quantised (clean-fid's "clean" resize)."""
    channels = []
    for c in range(3):
        plane = Image.fromarray(np.asarray(image_hwc[:, :, c], dtype=np.float32), mode="F")
        channels.append(np.asarray(plane.resize((size, size), resample=Image.Resampling.BICUBIC)).clip(0, 255))
    return np.stack(channels, axis=-1).astype(np.float32)


class InceptionFeatures(nn.Module):
    """Pool-3 features of the TorchScript FID Inception (``layers`` on normalised 299² input).

    >>> net = InceptionFeatures(Path("inception-2015-12-05.pt"))
    >>> net.features([photo_hwc_uint8, render_hwc_uint8])     # (2, 2048) float64
    """

    def __init__(self, path: Path, config: FidConfig = FidConfig()) -> None:
        super().__init__()
        self.config = config
        try:
            with warnings.catch_warnings():
                # The FID network is only published as TorchScript; torch ≥ 2.10 flags jit as deprecated.
                warnings.filterwarnings("ignore", category=DeprecationWarning, message=".*torch.jit.*")
                module = torch.jit.load(str(path), map_location="cpu").eval()
        except Exception as error:  # torch raises untyped errors for corrupt archives
            raise InputError(f"cannot load the Inception TorchScript file {path}: {error}") from error
        if not hasattr(module, "layers"):
            raise InputError(f"{path} has no 'layers' module: is it {INCEPTION_FILENAME} ({INCEPTION_SOURCE})?")
        self.layers = module.layers

    @torch.no_grad()
    def forward(self, images_bchw: Tensor) -> Tensor:
        """(B, 3, 299, 299) float pixels 0..255 → (B, feature_dim) features."""
        cfg = self.config
        out = self.layers((images_bchw - cfg.input_offset) / cfg.input_scale)
        return out.reshape(images_bchw.shape[0], -1)

    def features(self, images: Sequence[np.ndarray]) -> Tensor:
        """(N, feature_dim) float64 features of (H, W, 3) uint8 images (any sizes)."""
        cfg = self.config
        out = []
        for start in range(0, len(images), cfg.batch_size):
            batch = np.stack([clean_resize(im, cfg.image_size) for im in images[start:start + cfg.batch_size]])
            feats = self(torch.from_numpy(batch).permute(0, 3, 1, 2).contiguous())
            if feats.shape[1] != cfg.feature_dim:
                raise InputError(f"the Inception network gives {feats.shape[1]}-d features, expected {cfg.feature_dim}")
            out.append(feats.double())
        return torch.cat(out) if out else torch.zeros(0, cfg.feature_dim, dtype=torch.float64)


class _GivenFeatures(nn.Module):
    """The identity: lets torchmetrics' metrics take features computed beforehand."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features

    def forward(self, features: Tensor) -> Tensor:
        return features


def torchmetrics_metrics() -> Any:
    """torchmetrics' (FrechetInceptionDistance, KernelInceptionDistance) classes, or the install hint."""
    try:
        from torchmetrics.image.fid import FrechetInceptionDistance
        from torchmetrics.image.kid import KernelInceptionDistance
    except ImportError as error:
        raise MissingDependencyError(f"FID/KID need torchmetrics: {EVAL_INSTALL_HINT}") from error
    return FrechetInceptionDistance, KernelInceptionDistance


def frechet_distance(features_a: Tensor, features_b: Tensor) -> float:
    """FID between two (N, d) feature sets (torchmetrics ``FrechetInceptionDistance``):
    ‖μ_a − μ_b‖² + Tr(Σ_a + Σ_b − 2 (Σ_a Σ_b)^½), sample covariances (N − 1)."""
    fid_cls, _ = torchmetrics_metrics()
    a, b = _check_sets(features_a, features_b, "FID")
    metric = fid_cls(feature=_GivenFeatures(a.shape[1]))
    metric.update(b, real=True)
    metric.update(a, real=False)
    return float(metric.compute())


def kernel_distance(features_a: Tensor, features_b: Tensor, config: FidConfig = FidConfig()) -> tuple[float, float]:
    """KID (mean, std over subsets) between two (N, d) feature sets (torchmetrics
    ``KernelInceptionDistance``, unbiased MMD², polynomial kernel); subset draws seeded."""
    _, kid_cls = torchmetrics_metrics()
    a, b = _check_sets(features_a, features_b, "KID")
    subset = min(len(a), len(b), config.kid_max_subset_size)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*will save all extracted features.*")
        metric = kid_cls(feature=_GivenFeatures(a.shape[1]), subsets=config.kid_subsets, subset_size=subset,
                         degree=config.kid_degree, coef=config.kid_coef)
    metric.update(b, real=True)
    metric.update(a, real=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        mean, std = metric.compute()
    return float(mean), float(std)


def _check_sets(a: Tensor, b: Tensor, what: str) -> tuple[Tensor, Tensor]:
    a = torch.as_tensor(a, dtype=torch.float64)
    b = torch.as_tensor(b, dtype=torch.float64)
    if a.dim() != 2 or b.dim() != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"{what} needs two (N, d) feature sets of equal d, got {tuple(a.shape)} and {tuple(b.shape)}")
    if len(a) < 2 or len(b) < 2:
        raise InputError(f"{what} needs at least 2 images in each set (got {len(a)} and {len(b)})")
    return a, b


def fid_kid(renders: Sequence[np.ndarray], references: Sequence[np.ndarray], config: FidConfig = FidConfig(),
            weights: str | Path | None = None) -> dict[str, Any]:
    """FID and KID of the renders against the reference images (the report's ``fid`` section).

    Raises ``MissingWeightsError`` when the Inception file is absent and ``InputError`` when a
    set has fewer than 2 images.
    """
    if len(renders) < 2 or len(references) < 2:
        raise InputError(f"FID/KID need at least 2 renders and 2 reference images (got {len(renders)} and "
                         f"{len(references)}): pass more --refs, or --fid off")
    torchmetrics_metrics()
    path = require_inception(config, weights)
    network = InceptionFeatures(path, config)
    render_features = network.features(list(renders))
    reference_features = network.features(list(references))
    kid_mean, kid_std = kernel_distance(render_features, reference_features, config)
    fid = frechet_distance(render_features, reference_features)
    return {
        "fid": fid if math.isfinite(fid) else None,
        "kid_mean": kid_mean if math.isfinite(kid_mean) else None,
        "kid_std": kid_std if math.isfinite(kid_std) else None,
        "num_renders": len(renders),
        "num_references": len(references),
        "kid_subset_size": min(len(renders), len(references), config.kid_max_subset_size),
        "kid_subsets": config.kid_subsets,
        "inception": str(path),
        "library": "torchmetrics FrechetInceptionDistance / KernelInceptionDistance on Inception pool-3 features",
        "note": "FID is strongly biased with few images; compare runs with the same views and references",
    }


__all__ = [
    "FidConfig", "INCEPTION_FILENAME", "InceptionFeatures", "clean_resize", "fid_kid", "frechet_distance", "torchmetrics_metrics",
    "inception_file", "kernel_distance", "require_inception",
]
