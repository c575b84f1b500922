"""``arc2avatar doctor --deep`` (issue 28): synthetic weights that behave like trained ones pass every
check; each deliberately broken set fails its check with one line (swapped RGB in ArcFace's input,
a VAE with the wrong scaling factor, a random UNet, a LoRA with unmatched keys, a detector that
finds faces everywhere). The real-model path (``deep_check`` on weight folders) runs on tiny files."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from arc2avatar.cli.main import main
from arc2avatar.identity.arcface import ArcFaceEmbedder
from arc2avatar.identity.detect import ScrfdDetector, letterbox
from arc2avatar.pipeline.doctor import (
    DeepCheckConfig, DeepReport, DoctorPhoto, bundled_photo, check_arcface, check_detector, check_prior, deep_check,
    format_deep_report,
)
from arc2avatar.testing.identity_weights import (
    plant_face, template_keypoint_offsets, write_mirror_arcface, write_random_scrfd, write_tiny_scrfd,
)
from arc2avatar.weights.layout import WeightsPaths

FAST = DeepCheckConfig(crop_side=64)        # the VAE/UNet crop; the real default is 256
SCALING = 0.18215
IMAGE_STD = 0.5                             # about the std of a photo mapped to [-1, 1]


def _line(report_text: str, name: str) -> str:
    return next(line for line in report_text.splitlines() if name in line)


@pytest.fixture(scope="module")
def photo() -> DoctorPhoto:
    return bundled_photo()


@pytest.fixture(scope="module")
def planted(photo) -> DoctorPhoto:
    """The bundled photo with one red-square "face" the tiny SCRFD finds, and the keypoints it must report."""
    image = photo.image.copy()
    _, det_scale = letterbox(image, 640)
    centre, stride = np.array([320.0, 160.0]), 32          # an anchor of stride 32, letterboxed pixels
    plant_face(image, tuple(centre / det_scale), 4 * stride / det_scale)
    keypoints = (centre + template_keypoint_offsets(2.0).reshape(5, 2) * stride) / det_scale
    return DoctorPhoto(image, keypoints.astype(np.float32), photo.nonface_xy)


class LinearDenoiserProbe:
    """Stand-ins that behave like the trained VAE and UNet: an 4× average-pool "VAE" whose scaled
    latents have unit std, and the Wiener denoiser ε̂ = √(1−ᾱ_t)·x_t (what a UNet that knows only
    the latents' variance predicts)."""

    def __init__(self, scaling_factor: float = SCALING, lora_gain: float | None = None):
        self.scaling_factor = scaling_factor
        betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2   # SD-1.5's scaled-linear schedule
        self.alphas_cumprod = torch.cumprod(1.0 - betas, 0).float()
        self.context = torch.zeros(1, 77, 768)
        self.lora_error, self.has_lora, self.lora_gain, self.scale = None, lora_gain is not None, lora_gain, 0.0

    def encode(self, images):
        pooled = torch.nn.functional.avg_pool2d(images, 4)
        raw = torch.cat([pooled, pooled.mean(1, keepdim=True)], 1) / (IMAGE_STD * SCALING)   # × 0.18215: ≈ unit std
        return raw * self.scaling_factor

    def decode(self, latents):
        return torch.nn.functional.interpolate(latents[:, :3] / self.scaling_factor * IMAGE_STD * SCALING,
                                               scale_factor=4, mode="bilinear", align_corners=False)

    def predict_eps(self, latents, timestep, context):
        eps = (1.0 - float(self.alphas_cumprod[timestep])) ** 0.5 * latents
        return eps * (1.0 + self.scale * self.lora_gain) if self.has_lora else eps

    def set_lora_scale(self, scale):
        self.scale = scale


def test_the_bundled_photos_reference_points_are_dlibs(photo):
    from arc2avatar.identity.dlib_faces import DlibFaceDetector

    face = DlibFaceDetector().largest_face(photo.image)
    assert np.abs(face.keypoints - photo.keypoints).max() < 0.5
    x, y = photo.nonface_xy
    assert DlibFaceDetector().detect(np.ascontiguousarray(photo.image[y:y + 112, x:x + 112])) == []


# ------------------------------------------------------------------------------------------- pass
def test_synthetic_weights_that_behave_like_trained_ones_pass_every_check(tmp_path, photo, planted):
    detector = ScrfdDetector(write_tiny_scrfd(tmp_path / "scrfd.onnx"))
    embedder = ArcFaceEmbedder(write_mirror_arcface(tmp_path / "arcface.onnx"))
    results = [check_detector(detector.detect, planted, FAST), *check_arcface(embedder.embed, photo, FAST),
               *check_prior(LinearDenoiserProbe(lora_gain=0.1), photo, FAST)]
    assert [r.name for r in results if not r.passed] == []
    assert len(results) == 8
    text = format_deep_report(DeepReport(results))
    assert text.count("PASS") == 8 and "relative error 0.2" in text      # ≈ ᾱ_500 = 0.28: the linear denoiser's error


# ------------------------------------------------------------------------------------------- fail
def test_each_broken_weight_set_fails_its_check_in_one_line(tmp_path, photo, planted, weights):
    # detector with random weights: faces everywhere
    broken_detector = ScrfdDetector(write_random_scrfd(tmp_path / "random_scrfd.onnx"))
    result = check_detector(broken_detector.detect, planted, FAST)
    assert not result.passed and result.measured.endswith("faces") and int(result.measured.split()[0]) > 1

    # ArcFace reading its input as BGR: the colour-order check warns (advisory), the others pass
    swapped = ArcFaceEmbedder(write_mirror_arcface(tmp_path / "bgr_arcface.onnx", swap_rb=True))
    colour = check_arcface(swapped.embed, photo, FAST)[2]
    assert colour.passed is False and colour.advisory and "BGR" in colour.hint

    # VAE whose config carries the wrong scaling factor (1.0 instead of 0.18215)
    vae = {r.name: r for r in check_prior(LinearDenoiserProbe(scaling_factor=1.0), photo, FAST)}
    assert vae["VAE latent scale"].passed is False and vae["VAE reconstructs the photo"].passed

    # random UNet (the tiny random prior in the real layouts, through the real loaders), and a LoRA whose keys match nothing
    unmatched = tmp_path / "unmatched_lora.safetensors"
    save_file({"unet.no.such.layer.lora_A.weight": torch.zeros(4, 8),
               "unet.no.such.layer.lora_B.weight": torch.zeros(8, 4)}, str(unmatched))
    prior_only = WeightsPaths(**{k: getattr(weights, k) for k in (
        "arc2face_unet", "arc2face_encoder", "sd_vae", "sd_tokenizer", "sd_text_encoder", "sd_scheduler")})
    report = deep_check(prior_only, lora=unmatched, device="cpu", dtype="fp32", photo=photo, config=FAST)
    text = format_deep_report(report)
    assert not report.ok
    unet_line = _line(text, "UNet predicts the noise")
    assert unet_line.lstrip().startswith("FAIL") and "random or wrong UNet" in unet_line
    assert float(unet_line.split("relative error ")[1].split()[0]) > 0.9
    lora_line = _line(text, "LoRA loads")
    assert lora_line.lstrip().startswith("FAIL") and "unmatched_lora.safetensors" in lora_line
    assert _line(text, "detector").lstrip().startswith("skip")          # no detector file given: not run
    print(text)


def test_lora_outside_the_plausible_band_fails(photo):
    for gain, passes in ((0.1, True), (1e-5, False), (5.0, False)):
        result = check_prior(LinearDenoiserProbe(lora_gain=gain), photo, FAST)[-1]
        assert result.name.startswith("LoRA changes") and result.passed is passes, (gain, result)


def test_doctor_deep_on_a_missing_folder_reports_every_check_as_not_run(tmp_path, capsys):
    assert main(["doctor", "--deep", "--device", "cpu", "--weights", str(tmp_path)]) == 2
    out = capsys.readouterr().out
    assert "deep check" in out and out.count("  skip  ") >= 6 and "FAIL" not in out


def test_nan_outputs_as_from_an_fp16_overflow_fail_the_vae_and_unet_checks(photo):
    class Overflowing(LinearDenoiserProbe):
        def decode(self, latents):
            return torch.full_like(super().decode(latents), float("nan"))

        def predict_eps(self, latents, timestep, context):
            return torch.full_like(latents, float("nan"))

    results = {r.name: r for r in check_prior(Overflowing(), photo, FAST)}
    for name in ("VAE reconstructs the photo", "UNet predicts the noise"):
        assert results[name].passed is False and "fp16 overflow" in results[name].hint


def test_deep_check_runs_the_identity_files_through_the_real_loaders(tmp_path, capsys):
    paths = WeightsPaths(scrfd_onnx=write_random_scrfd(tmp_path / "scrfd.onnx"),
                         arcface_onnx=write_mirror_arcface(tmp_path / "arcface.onnx", swap_rb=True))
    report = deep_check(paths, config=FAST)                 # the bundled photo; no prior files
    text = format_deep_report(report)
    assert _line(text, "detector").lstrip().startswith("FAIL")
    assert _line(text, "colour order").lstrip().startswith("WARN")
    assert _line(text, "UNet").lstrip().startswith("skip") and not report.ok
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not an onnx file")
    text = format_deep_report(deep_check(WeightsPaths(arcface_onnx=broken), config=FAST))
    assert _line(text, "photo vs its mirror").lstrip().startswith("FAIL") and "broken.onnx" in text
