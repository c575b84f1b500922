"""The guidance priors ``create`` runs with: any ``GuidancePrior``, built-in ones by name.

``create(..., prior=...)`` takes a ready ``GuidancePrior`` (anything with its ``__call__``), a
``PriorFactory`` (how to build one from the run's ``PriorInputs``), or a name. ``PRIORS`` holds
the built-in names, and ``CreateConfig.guidance`` is the one a config selects:

* ``arc2face``: Arc2Face ISM (paper §3.1–3.3; ``prior.guidance.Arc2FaceGuidance``), conditioned on
  the ArcFace identity of the photos; needs the prior, identity and detector weights.
* ``oracle``: the offline demo's prior (``pipeline.oracle``): a known target head, textured with
  the first photo when one is given, stands in for the diffusion model; needs no weights.

A new prior plugs in without editing the library: pass the object or a factory to ``create``,
or a mapping of more names (``create(..., priors={"mine": PriorFactory(...)})``) that a config's
``guidance`` can then select.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Mapping

import numpy as np
import torch
from torch import Tensor

from arc2avatar.avatar.template import HeadSetup
from arc2avatar.errors import InputError
from arc2avatar.identity.image import Photo
from arc2avatar.pipeline.config import CreateConfig
from arc2avatar.pipeline.oracle import OraclePrior, default_target, oracle_latent_encoder, photo_keypoints
from arc2avatar.prior.guidance import Arc2FaceGuidance, GuidancePrior
from arc2avatar.weights.layout import WeightsPaths


@dataclass(frozen=True)
class PriorInputs:
    """What a ``PriorFactory`` may build its prior from (the run's, after every input was checked).

    Attributes:
        config: the resolved settings (``config.prior``: ISM numbers; ``config.accel``: the fast path).
        setup: the head template the splats are bound to.
        device: where the optimisation runs.
        photos: the decoded photos (``create``'s; may be empty for a prior that needs none).
        identity: (512,) unit ArcFace vector of the photos, float32 on ``device``; None unless the
            factory ``needs_identity``.
        weights: the resolved weight files; None unless the factory ``needs_identity``.
        lora: the multi-view LoRA file, if one was given.
        prepared: what the factory's ``prepare`` returned (None without one).
    """

    config: CreateConfig
    setup: HeadSetup
    device: torch.device
    photos: tuple[Photo, ...] = ()
    identity: Tensor | None = None
    weights: WeightsPaths | None = None
    lora: Path | None = None
    prepared: Any = None


@dataclass(frozen=True)
class PriorFactory:
    """How ``create`` builds a prior it knows by name.

    Attributes:
        build: ``PriorInputs`` → the prior (called once the output folder is locked).
        needs_identity: ``create`` resolves the Arc2Face, ArcFace and SCRFD weights and embeds the
            photos first (``PriorInputs.identity``, ``.weights``).
        prepare: photos → anything ``build`` needs from them, called before the output folder is
            touched, so a photo it cannot use fails at once (raise ``InputError``); None = nothing.
        info: prepared value → figures for ``metrics.json`` (None = none).
    """

    build: Callable[[PriorInputs], GuidancePrior]
    needs_identity: bool = False
    prepare: Callable[[tuple[Photo, ...]], Any] | None = None
    info: Callable[[Any], dict[str, Any]] | None = None


def arc2face_prior(inputs: PriorInputs) -> GuidancePrior:
    """Arc2Face ISM guidance conditioned on the photos' identity (paper §3.1–3.3)."""
    if inputs.identity is None or inputs.weights is None:
        raise InputError("the arc2face prior needs the identity of the photos and the weights")
    return Arc2FaceGuidance.from_pretrained(inputs.weights, inputs.identity, device=inputs.device, lora=inputs.lora,
                                            config=inputs.config.prior, accel=inputs.config.accel)


@dataclass(frozen=True)
class OraclePhoto:
    """The oracle's photo texture: the pixels, their five ArcFace keypoints (None: centre square),
    how the photo was placed (for ``metrics.json``) and its 68 landmarks (``oracle.eye_shifts``)."""

    pixels: np.ndarray | None = None
    keypoints: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)
    landmarks: np.ndarray | None = None


def oracle_photo(photos: tuple[Photo, ...]) -> OraclePhoto:
    """The first photo, placed on the target's face by its landmarks (``oracle.photo_keypoints``)."""
    if not photos:
        return OraclePhoto()
    return OraclePhoto(*photo_keypoints(photos[0]))


def oracle_prior(inputs: PriorInputs) -> GuidancePrior:
    """The offline demo's prior: the built-in target head (photo-textured with ``prepared``)."""
    photo = inputs.prepared if isinstance(inputs.prepared, OraclePhoto) else OraclePhoto()
    setup = inputs.setup
    target = default_target(setup.upsampled.head, photo=photo.pixels, face_triangles=setup.upsampled.num_face_triangles,
                            photo_keypoints=photo.keypoints, photo_landmarks=photo.landmarks).to(inputs.device)
    return OraclePrior(target, inputs.config.prior, oracle_latent_encoder(inputs.config))


PRIORS: Mapping[str, PriorFactory] = MappingProxyType({
    "arc2face": PriorFactory(arc2face_prior, needs_identity=True),
    "oracle": PriorFactory(oracle_prior, prepare=oracle_photo,
                           info=lambda photo: {"photo": photo.info} if photo.info else {}),
})


def resolve_prior(
    prior: GuidancePrior | PriorFactory | str | None, config: CreateConfig, priors: Mapping[str, PriorFactory] | None = None
) -> PriorFactory:
    """The factory of ``prior``: a name (of ``PRIORS`` or ``priors``; None = ``config.guidance``),
    a factory as it is, or a ready prior wrapped in one. ``InputError`` for an unknown name."""
    if prior is None:
        prior = config.guidance
    if isinstance(prior, str):
        known = {**PRIORS, **(priors or {})}
        if prior not in known:
            raise InputError(f"unknown prior {prior!r}; known priors: {', '.join(sorted(known))}")
        return known[prior]
    if isinstance(prior, PriorFactory):
        return prior
    if not callable(prior):
        raise InputError(f"prior must be a GuidancePrior, a PriorFactory or a name, not {type(prior).__name__}")
    ready = prior
    return PriorFactory(lambda inputs: ready)


__all__ = ["PRIORS", "OraclePhoto", "PriorFactory", "PriorInputs", "arc2face_prior", "oracle_photo", "oracle_prior",
           "resolve_prior"]
