"""``arc2avatar doctor --deep``: run each network once on a bundled face photo and check that it
behaves like the real model, before a 20-minute run finds out (issue 28; docs/first-run.md).

Written by hand (no library checks weight files by their behaviour). Each check is a small
function of model *callables* and the photo, so its logic is tested with synthetic models made
to pass or fail it; ``deep_check`` builds those callables from the user's real files with the
same loaders ``create`` uses. Every threshold is a ``DeepCheckConfig`` field, derived in
docs/first-run.md ("What each check means").

The bundled photo is scikit-image's ``astronaut`` (Eileen Collins, NASA portrait, public
domain), 512×512 JPEG; its five ArcFace points were measured once with dlib's 68-point model
(``identity.dlib_faces``), independent of the SCRFD under test.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

import numpy as np
import torch
from torch import Tensor

from arc2avatar.errors import Arc2AvatarError, error_line
from arc2avatar.identity.align import align_face
from arc2avatar.identity.arcface import ArcFaceEmbedder
from arc2avatar.identity.detect import ScrfdDetector
from arc2avatar.identity.image import load_image
from arc2avatar.prior.arc2face import encode_text
from arc2avatar.prior.latents import VaeLatentEncoder, vae_moments
from arc2avatar.prior.loading import load_lora, load_prior_models, set_lora_scale
from arc2avatar.weights.layout import WeightsPaths

#: The bundled photo (package data) and its five ArcFace points (x, y), measured with dlib.
PHOTO_FILE = Path(__file__).with_name("doctor_face.jpg")
PHOTO_KEYPOINTS = ((203.3, 101.5), (246.5, 103.5), (225.0, 127.0), (200.0, 138.0), (246.0, 140.0))
#: A face-free 112² region of the bundled photo (the space-shuttle model): x, y of its top-left.
PHOTO_NONFACE_XY = (360, 40)


@dataclass(frozen=True)
class DeepCheckConfig:
    """Thresholds and sizes of ``doctor --deep`` (derivations: docs/first-run.md).

    Attributes:
        landmark_tolerance: largest distance of a detected keypoint from the photo's reference
            point, in inter-ocular distances (0.25: detectors disagree by ≈ 0.05–0.1 on eye
            centres; swapped or garbage points are ≥ 1 away).
        mirror_cosine_min: ArcFace cosine of the aligned crop and its mirror image, at least.
        nonface_cosine_max: ArcFace cosine of the face and a face-free crop, at most.
        colour_norm_ratio_min: ‖f(photo)‖ / ‖f(photo with red and blue swapped)‖, at least
            (advisory: a heuristic not measured on the real file).
        vae_psnr_min_db: PSNR of the VAE's reconstruction of the face crop, at least, dB.
        latent_std_range: allowed std of the scaled latents (the scaling factor makes it ≈ 1).
        unet_timestep: timestep value of the UNet check (a middle one).
        unet_error_max: E‖ε̂ − ε‖² / E‖ε‖² at ``unet_timestep``, at most (zero prediction: 1.0;
            the linear denoiser that knows only the latents' variance: ᾱ_t ≈ 0.28 at t = 500).
        lora_scale: LoRA scale of the check (docs/official-code.md §2.1: 0.45).
        lora_change_range: allowed ‖ε(LoRA) − ε(base)‖ / ‖ε(base)‖ at ``lora_scale``.
        crop_side: side of the square face crop the VAE and UNet see, pixels (a multiple of 8).
        seed: seed of the noise of the UNet and LoRA checks.
    """

    landmark_tolerance: float = 0.25
    mirror_cosine_min: float = 0.6
    nonface_cosine_max: float = 0.4
    colour_norm_ratio_min: float = 1.0
    vae_psnr_min_db: float = 20.0
    latent_std_range: tuple[float, float] = (0.5, 2.0)
    unet_timestep: int = 500
    unet_error_max: float = 0.5
    lora_scale: float = 0.45
    lora_change_range: tuple[float, float] = (1e-3, 0.5)
    crop_side: int = 256
    seed: int = 0


@dataclass(frozen=True)
class CheckResult:
    """One check's outcome.

    Attributes:
        name: what was checked ("ArcFace mirror agreement").
        passed: True / False, or None when it could not run (its files are missing).
        measured: the number with its meaning ("cosine 0.93").
        threshold: the rule ("≥ 0.60").
        hint: what a failure usually means (printed on failure).
        advisory: a failure warns but does not fail the doctor (an unverified heuristic).
    """

    name: str
    passed: bool | None
    measured: str
    threshold: str = ""
    hint: str = ""
    advisory: bool = False

    @property
    def failed(self) -> bool:
        return self.passed is False and not self.advisory


@dataclass(frozen=True)
class DoctorPhoto:
    """A face photo with reference keypoints and a face-free region.

    Attributes:
        image: (H, W, 3) uint8 RGB.
        keypoints: (5, 2) reference ArcFace points (x, y).
        nonface_xy: top-left (x, y) of a 112² region without a face.
    """

    image: np.ndarray
    keypoints: np.ndarray
    nonface_xy: tuple[int, int] = PHOTO_NONFACE_XY


def bundled_photo() -> DoctorPhoto:
    """The bundled astronaut photo with its dlib keypoints."""
    return DoctorPhoto(load_image(PHOTO_FILE), np.asarray(PHOTO_KEYPOINTS, np.float32))


# ------------------------------------------------------------------------------ identity
def check_detector(detect: Callable[[np.ndarray], Sequence[Any]], photo: DoctorPhoto,
                   config: DeepCheckConfig = DeepCheckConfig()) -> CheckResult:
    """Exactly one face, its five keypoints within ``landmark_tolerance`` IODs of the reference."""
    name, hint = "detector: one face, sane landmarks", (
        "not scrfd_10g_bnkps.onnx (another detector or a truncated download), or a detector that "
        "expects BGR; check the file size against `arc2avatar doctor`")
    faces = list(detect(photo.image))
    if len(faces) != 1:
        return CheckResult(name, False, f"{len(faces)} faces", "exactly 1", hint)
    reference = np.asarray(photo.keypoints, np.float64)
    iod = float(np.linalg.norm(reference[1] - reference[0]))
    error = float(np.linalg.norm(np.asarray(faces[0].keypoints, np.float64) - reference, axis=1).max()) / iod
    return CheckResult(name, error <= config.landmark_tolerance, f"1 face, keypoint error {error:.2f} IOD",
                       f"≤ {config.landmark_tolerance:.2f}", hint)


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    return float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-30))


def check_arcface(embed: Callable[[np.ndarray], np.ndarray], photo: DoctorPhoto,
                  config: DeepCheckConfig = DeepCheckConfig()) -> list[CheckResult]:
    """Mirror agreement, face vs non-face, and (advisory) colour order of the recogniser.

    ``embed``: (N, 112, 112, 3) uint8 RGB aligned crops → (N, 512) raw embeddings.
    """
    crop = align_face(photo.image, photo.keypoints)
    x, y = photo.nonface_xy
    nonface = np.ascontiguousarray(photo.image[y:y + crop.shape[0], x:x + crop.shape[1]])
    batch = np.stack([crop, crop[:, ::-1], nonface, crop[..., ::-1]])   # face, mirror, non-face, R<->B
    raw = np.asarray(embed(np.ascontiguousarray(batch)), np.float64)
    if not np.isfinite(raw).all():
        return [CheckResult("ArcFace embedding", False, "non-finite values", "finite",
                            "a corrupt arcface.onnx; download it again")]
    mirror, other = _cosine(raw[0], raw[1]), _cosine(raw[0], raw[2])
    ratio = float(np.linalg.norm(raw[0]) / max(np.linalg.norm(raw[3]), 1e-30))
    return [
        CheckResult("ArcFace: photo vs its mirror", mirror >= config.mirror_cosine_min, f"cosine {mirror:.3f}",
                    f"≥ {config.mirror_cosine_min:.2f}",
                    "not a face recogniser, or inputs normalised differently from (x − 127.5)/127.5"),
        CheckResult("ArcFace: face vs non-face", other <= config.nonface_cosine_max, f"cosine {other:.3f}",
                    f"≤ {config.nonface_cosine_max:.2f}",
                    "an untrained or wrong network (every image maps to the same direction)"),
        CheckResult("ArcFace: colour order", ratio >= config.colour_norm_ratio_min,
                    f"norm ratio RGB/BGR {ratio:.2f}", f"≥ {config.colour_norm_ratio_min:.2f}",
                    "the model may expect BGR input (an mxnet-era export, not Arc2Face's arcface.onnx)",
                    advisory=True),
    ]


# ------------------------------------------------------------------------------ prior
class PriorProbe(Protocol):
    """What the prior checks need of the VAE, UNet and LoRA (real: ``RealPriorProbe``).

    Attributes:
        scaling_factor: the VAE config's latent scaling factor.
        alphas_cumprod: (T,) ᾱ indexed by timestep value.
        context: (1, 77, D) the prompt embedding the UNet is called with (the empty prompt).
        lora_error: the message of a LoRA that could not be loaded, else None.
        has_lora: a LoRA is attached (its scale set by ``set_lora_scale``).
    """

    scaling_factor: float
    alphas_cumprod: Tensor
    context: Tensor
    lora_error: str | None
    has_lora: bool

    def encode(self, images: Tensor) -> Tensor:
        """(1, 3, H, W) in [−1, 1] → posterior mean × scaling factor."""

    def decode(self, latents: Tensor) -> Tensor:
        """Scaled latents → (1, 3, H, W) images in about [−1, 1]."""

    def predict_eps(self, latents: Tensor, timestep: int, context: Tensor) -> Tensor:
        """ε(x_t, t, c) as float32."""

    def set_lora_scale(self, scale: float) -> None:
        """Multiplier of the LoRA branch on later calls."""


def face_crop(photo: DoctorPhoto, side: int) -> np.ndarray:
    """(side, side, 3) uint8 square around the reference keypoints, clamped inside the image."""
    height, width = photo.image.shape[:2]
    side = min(side, height, width)
    cx, cy = np.asarray(photo.keypoints, np.float64).mean(axis=0)
    x0 = int(np.clip(round(cx - side / 2), 0, width - side))
    y0 = int(np.clip(round(cy - side / 2), 0, height - side))
    return np.ascontiguousarray(photo.image[y0:y0 + side, x0:x0 + side])


def psnr_db(a: Tensor, b: Tensor, peak: float = 1.0) -> float:
    """Peak signal-to-noise ratio of two images in [0, peak], dB."""
    mse = float(((a.double() - b.double()) ** 2).mean())
    return math.inf if mse == 0 else 10.0 * math.log10(peak ** 2 / mse)


def check_prior(probe: PriorProbe, photo: DoctorPhoto, config: DeepCheckConfig = DeepCheckConfig()) -> list[CheckResult]:
    """VAE reconstruction and latent scale, UNet noise prediction, LoRA effect (docs/first-run.md)."""
    side = config.crop_side - config.crop_side % 8
    image = torch.from_numpy(face_crop(photo, side)).permute(2, 0, 1)[None].float() / 255.0   # (1, 3, S, S)
    results: list[CheckResult] = []
    with torch.no_grad():
        latents = probe.encode(2.0 * image - 1.0).float()
        decoded = ((probe.decode(latents).float() + 1.0) / 2.0).clamp(0, 1)
        psnr = psnr_db(decoded, image) if torch.isfinite(decoded).all() else float("nan")
        results.append(CheckResult(
            "VAE reconstructs the photo", psnr >= config.vae_psnr_min_db, f"PSNR {psnr:.1f} dB",
            f"≥ {config.vae_psnr_min_db:.0f} dB",
            "not SD-1.5's vae/ (another model's VAE, a truncated file), or fp16 overflow (NaN): try --dtype fp32"))
        std = float(latents.std())
        low, high = config.latent_std_range
        results.append(CheckResult(
            "VAE latent scale", low <= std <= high, f"latent std {std:.2f} (scaling factor {probe.scaling_factor:g})",
            f"in [{low:g}, {high:g}]",
            "a wrong scaling_factor in vae/config.json (SD-1.5: 0.18215), or a VAE of another model"))

        t = config.unet_timestep
        abar = float(probe.alphas_cumprod[t])
        generator = torch.Generator().manual_seed(config.seed)
        noise = torch.randn(latents.shape, generator=generator)
        noisy = abar ** 0.5 * latents + (1.0 - abar) ** 0.5 * noise
        if probe.has_lora:
            probe.set_lora_scale(0.0)
        eps = probe.predict_eps(noisy, t, probe.context).float()
        error = float(((eps - noise) ** 2).mean() / (noise ** 2).mean())
        results.append(CheckResult(
            "UNet predicts the noise", error <= config.unet_error_max,
            f"relative error {error:.3f} at t={t} (zero prediction 1.0, ᾱ_t = {abar:.2f})", f"≤ {config.unet_error_max:.2f}",
            "random or wrong UNet weights (not arc2face/), a wrong scheduler/ config, or fp16 overflow (NaN)"))

        if probe.lora_error is not None:
            results.append(CheckResult("LoRA loads and matches the UNet", False, probe.lora_error, "every key matched",
                                       "a LoRA for another model, or not in the diffusers format"))
        elif probe.has_lora:
            probe.set_lora_scale(config.lora_scale)
            eps_lora = probe.predict_eps(noisy, t, probe.context).float()
            change = float((eps_lora - eps).norm() / eps.norm().clamp_min(1e-30))
            low, high = config.lora_change_range
            results.append(CheckResult(
                f"LoRA changes the UNet at {config.lora_scale:g}", low <= change <= high,
                f"relative change {change:.4f}", f"in [{low:g}, {high:g}]",
                "below: an untrained LoRA or keys that miss the layers; above: a LoRA with a wrong alpha/rank "
                "scaling or for another model"))
    return results


class RealPriorProbe:
    """``PriorProbe`` over the real loaders: ``load_prior_models`` + ``load_lora`` (as ``create``)."""

    def __init__(self, paths: WeightsPaths, lora: str | Path | None = None,
                 device: torch.device | str = "cpu", dtype: Any = "auto") -> None:
        self.models = load_prior_models(paths, device, dtype)
        self.scaling_factor = float(self.models.vae.config.scaling_factor)
        self.alphas_cumprod = self.models.alphas_cumprod.detach().float().cpu()
        self.context = encode_text(self.models.text_encoder, self.models.tokenizer, [""])
        self.lora_error: str | None = None
        self.has_lora = False
        if lora is not None:
            try:
                load_lora(self.models.unet, lora, scale=0.0)
                self.has_lora = True
            except Arc2AvatarError as error:
                self.lora_error = error_line(error)

    def encode(self, images: Tensor) -> Tensor:
        vae = self.models.vae
        moments = vae_moments(vae, images.to(self.models.device, vae.dtype))
        return moments.chunk(2, dim=1)[0].float().cpu() * self.scaling_factor

    def decode(self, latents: Tensor) -> Tensor:
        return VaeLatentEncoder(self.models.vae).decode(latents.to(self.models.device)).float().cpu()

    def predict_eps(self, latents: Tensor, timestep: int, context: Tensor) -> Tensor:
        unet = self.models.unet
        t = torch.full((latents.shape[0],), timestep, device=self.models.device, dtype=torch.long)
        out = unet(latents.to(self.models.device, unet.dtype), t,
                   encoder_hidden_states=context.to(self.models.device, unet.dtype)).sample
        return out.float().cpu()

    def set_lora_scale(self, scale: float) -> None:
        set_lora_scale(self.models.unet, scale)


# ------------------------------------------------------------------------------ all of it
@dataclass
class DeepReport:
    """Every check's result; ``ok`` = none failed (advisory and skipped checks do not count)."""

    results: list[CheckResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(r.failed for r in self.results)


def _skipped(names: Sequence[str], why: str) -> list[CheckResult]:
    return [CheckResult(name, None, why) for name in names]


def _guarded(names: Sequence[str], run: Callable[[], list[CheckResult]]) -> list[CheckResult]:
    """Run checks; a model that cannot even load fails each of them with its one-line error."""
    try:
        return run()
    except (Arc2AvatarError, RuntimeError, ValueError, OSError) as error:   # shapes, dtypes, unreadable files
        return [CheckResult(name, False, error_line(error), hint="the file cannot be loaded; download it again")
                for name in names]


def deep_check(paths: WeightsPaths, lora: str | Path | None = None, device: torch.device | str = "cpu",
               dtype: Any = "auto", photo: DoctorPhoto | None = None,
               config: DeepCheckConfig = DeepCheckConfig()) -> DeepReport:
    """Run every check whose files ``paths`` names (the others are reported as not run).

    Args:
        paths: resolved weights (fields left ``None`` skip their checks).
        lora: the multi-view LoRA file, if any (else ``paths.lora``).
        device, dtype: where and in which precision the UNet and VAE run ("auto": fp16 on CUDA).
        photo: the face photo (default: the bundled one).
    """
    photo = photo or bundled_photo()
    report = DeepReport()
    if paths.scrfd_onnx is not None:
        report.results += _guarded(["detector: one face, sane landmarks"],
                                   lambda: [check_detector(ScrfdDetector(paths.scrfd_onnx).detect, photo, config)])
    else:
        report.results += _skipped(["detector: one face, sane landmarks"], "not run: scrfd_10g_bnkps.onnx missing")
    arcface_names = ["ArcFace: photo vs its mirror", "ArcFace: face vs non-face", "ArcFace: colour order"]
    if paths.arcface_onnx is not None:
        report.results += _guarded(arcface_names,
                                   lambda: check_arcface(ArcFaceEmbedder(paths.arcface_onnx).embed, photo, config))
    else:
        report.results += _skipped(arcface_names, "not run: arcface.onnx missing")
    prior_names = ["VAE reconstructs the photo", "VAE latent scale", "UNet predicts the noise"]
    lora = lora if lora is not None else paths.lora
    if paths.arc2face_unet is not None and paths.sd_vae is not None:
        report.results += _guarded(prior_names,
                                   lambda: check_prior(RealPriorProbe(paths, lora, device, dtype), photo, config))
    else:
        report.results += _skipped(prior_names + (["LoRA"] if lora else []), "not run: prior weights missing")
    return report


def format_deep_report(report: DeepReport) -> str:
    """One line per check: PASS / FAIL / WARN / skip, the number, the rule, and on failure what it usually means."""
    width = max((len(r.name) for r in report.results), default=10)
    lines = ["deep check (each network once on the bundled photo):"]
    for r in report.results:
        label = "skip" if r.passed is None else "PASS" if r.passed else "WARN" if r.advisory else "FAIL"
        line = f"  {label}  {r.name:<{width}}  {r.measured}"
        if r.threshold and r.passed is not None:
            line += f" (needs {r.threshold})"
        if r.passed is False and r.hint:
            line += f": {r.hint}"
        lines.append(line)
    failed = sum(r.failed for r in report.results)
    lines.append("all deep checks passed" if report.ok else f"{failed} deep check(s) failed")
    return "\n".join(lines)
