"""Expression correction (paper §3.5, §4.3): ``arc2avatar refine-expression``.

Runs the avatar optimisation loop (``Trainer``) from the deformed avatar with the expression
learning rates, no template regularisers, no face phase and no densification, for 500 iterations
by default.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from torch import Tensor

from arc2avatar.prior.guidance import Arc2FaceGuidance, GuidancePrior
from arc2avatar._device import pick_device
from arc2avatar.animate.express import check_new_out_dir, save_avatar_folder
from arc2avatar.avatar.model import Avatar
from arc2avatar.avatar.rig import apply_expression, expression_coefficients, pose_tensors, setup_for_avatar
from arc2avatar.avatar.template import HeadSetup
from arc2avatar.errors import InputError
from arc2avatar.pipeline.config import CreateConfig
from arc2avatar.head.names import check_expression_names
from arc2avatar.pipeline.api import check_lora
from arc2avatar.pipeline.oracle import OraclePrior, default_target, oracle_latent_encoder
from arc2avatar.pipeline.presets import resolve_config
from arc2avatar.pipeline.trainer import Trainer
from arc2avatar.splats.optim import SplatOptimConfig
from arc2avatar.weights.resolver import WeightsConfig, resolve_weights

log = logging.getLogger(__name__)


def correction_config(base: CreateConfig, iterations: int = 500) -> CreateConfig:
    """The run config of expression correction (docs/method.md §7), derived from the avatar's own config.

    ``iterations`` ISM steps (500); expression learning rates (``SplatOptimConfig.expression``);
    no template regularisers (``losses.face_position = losses.face_laplacian = 0``); no face
    phase; no densification, pruning, opacity reset or late pruning (the splat set is kept, so
    the binding stays valid); checkpoints only at the end.
    """
    densify = base.densify
    if hasattr(densify, "densify_until"):
        densify = replace(densify, densify_until=0, reset_until=0, prune_below_face_every=None, late=None)
    return replace(
        base,
        iterations=iterations,
        face_phase_fraction=0.0,
        checkpoint_every=max(iterations, 1),
        losses=replace(base.losses, face_position=0.0, face_laplacian=0.0, freeze_face_xyz=False, frozen_regions=()),
        optim=SplatOptimConfig.expression(max_steps=max(iterations, 1)),
        densify=densify,
    )


def refine_expression(
    avatar: Avatar,
    setup: HeadSetup,
    prior: GuidancePrior,
    config: CreateConfig,
    *,
    work_dir: str | os.PathLike | None = None,
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> Avatar:
    """Expression correction (docs/method.md §7; paper §3.5): optimise the (already deformed) avatar.

    Args:
        avatar: the expressive avatar (``apply_expression``'s result).
        setup: its template.
        prior: any ``GuidancePrior`` (Arc2Face ISM, or ``OraclePrior`` in tests).
        config: a config from ``correction_config`` (used as given).
        work_dir: where the Trainer's log goes (default: a temporary folder, removed after).
        device: torch device.

    Returns:
        A new ``Avatar``; ``extra["expression_correction"]`` = the iteration count.
    """
    device = torch.device(device)
    temporary = work_dir is None
    folder = Path(tempfile.mkdtemp(prefix="arc2avatar-refine-")) if temporary else Path(work_dir)
    try:
        trainer = Trainer(config, prior, setup, avatar.splats.detach_copy().to(device), folder, device, progress=progress)
        splats = trainer.run()
    finally:
        if temporary:
            shutil.rmtree(folder, ignore_errors=True)
    extra = {**avatar.extra, "expression_correction": config.iterations}
    return Avatar(splats.detach_copy().to("cpu"), dict(avatar.template), extra)


def deformed_oracle_target(setup: HeadSetup, expression: Mapping[str, float] | Tensor | None,
                           pose: Mapping[str, Any] | None = None) -> Any:
    """The oracle target of expression tests: the default target (hair cap) deformed with the expression."""
    up = setup.upsampled
    head = up.head
    deformed = head.deform(expression_coefficients(head, expression), pose_tensors(head, pose))
    return default_target(replace(head, vertices=deformed), face_triangles=up.num_face_triangles)


def refine_expression_folder(
    avatar_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    expression: Mapping[str, float],
    pose: Mapping[str, Any] | None = None,
    *,
    oracle: bool = False,
    iterations: int = 500,
    preset: str | None = None,
    overrides: tuple[str, ...] = (),
    flame: str | os.PathLike | None = None,
    flame_masks: str | os.PathLike | None = None,
    weights: str | os.PathLike | None = None,
    lora: str | os.PathLike | None = None,
    size: int = 256,
    progress: bool = True,
) -> Avatar:
    """``arc2avatar refine-expression``: express, correct with the prior, write a new folder.

    The run config is the avatar folder's ``config.yaml`` when present (else ``preset``), with
    ``overrides`` and the correction settings on top. The real prior needs the folder's
    ``identity.npy`` (written by ``create``) and the weights; ``oracle`` uses the deformed
    template as a known target instead (offline diagnostics).
    """
    avatar_dir, out_dir = Path(avatar_dir), Path(out_dir)
    check_new_out_dir(out_dir)
    saved = avatar_dir / "config.yaml"
    base = resolve_config(preset, saved if saved.is_file() and preset is None else None, list(overrides))
    if iterations < 1:
        raise InputError(f"--iterations must be ≥ 1, got {iterations}")
    config = correction_config(base, iterations)
    avatar = Avatar.load(avatar_dir)
    if avatar.template.get("kind") in ("builtin", "flame"):
        check_expression_names(avatar.template["kind"], expression)
    setup = setup_for_avatar(avatar, flame, flame_masks)
    expressive = apply_expression(avatar, setup, expression, pose)
    device = pick_device(config.device)
    prior = _oracle_prior(setup, expression, pose, config, device) if oracle else _real_prior(
        avatar_dir, config, device, weights, lora)
    refined = refine_expression(expressive, setup, prior, config, device=device, progress=progress)
    save_avatar_folder(out_dir, refined, size, setup)
    return refined


def _oracle_prior(setup: HeadSetup, expression: Any, pose: Any, config: CreateConfig, device: torch.device) -> Any:
    target = deformed_oracle_target(setup, expression, pose).to(device)
    return OraclePrior(target, config.prior, oracle_latent_encoder(config))


def _real_prior(avatar_dir: Path, config: CreateConfig, device: torch.device, weights: Any, lora: Any) -> Any:
    identity_file = avatar_dir / "identity.npy"
    if not identity_file.is_file():
        raise InputError(f"{identity_file} is missing: the Arc2Face prior needs the identity embedding that "
                         "`arc2avatar create` saves there (or use --oracle for an offline check)")
    try:
        identity = np.load(identity_file, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise InputError(f"{identity_file} is not a readable .npy file ({exc})") from None
    if identity.shape != (512,):
        raise InputError(f"{identity_file} holds shape {identity.shape}, expected a 512-d ArcFace embedding")
    lora_path = check_lora(lora)
    paths = resolve_weights(WeightsConfig(root=weights, lora=lora_path), need={"prior"})
    return Arc2FaceGuidance.from_pretrained(paths, torch.from_numpy(identity.astype(np.float32)), device=device,
                                            lora=lora_path, config=config.prior, accel=config.accel)
