"""Claims about loading the prior from the real layouts, the tokenizer, the ID prompt and the LoRA.

The real CLIP BPE vocabulary comes from the ``open_clip_torch`` wheel: set ARC2AVATAR_CLIP_BPE to
that wheel (or to ``bpe_simple_vocab_16e6.txt.gz``); otherwise the wheel is fetched once with
``pip download`` into ARC2AVATAR_TEST_CACHE (default ~/.cache/arc2avatar-tests). Offline, a small
fallback vocabulary is used and the id-1014 test is skipped.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from arc2avatar.errors import InputError, MissingWeightsError
from arc2avatar.prior.arc2face import encode_id_prompt, id_token_embeddings, encode_token_embeddings
from arc2avatar.prior.configs import PriorConfig
from arc2avatar.prior.guidance import Arc2FaceGuidance, GuidanceContext
from arc2avatar.prior.latents import VaeLatentEncoder
from arc2avatar.prior.loading import load_lora, load_prior_models, set_lora_scale
from arc2avatar.testing.prior_weights import write_random_lora, write_random_weights

OPEN_CLIP_PIN = "open_clip_torch==3.3.0"


def _clip_bpe() -> Path | None:
    env = os.environ.get("ARC2AVATAR_CLIP_BPE")
    if env:
        return Path(env)
    cache = Path(os.environ.get("ARC2AVATAR_TEST_CACHE", Path.home() / ".cache" / "arc2avatar-tests"))
    wheels = sorted(cache.glob("open_clip_torch-*.whl"))
    if not wheels:
        try:
            subprocess.run(
                [sys.executable, "-m", "pip", "download", "-q", "--no-deps", OPEN_CLIP_PIN, "-d", str(cache)],
                check=True, timeout=120, capture_output=True,
            )
        except (subprocess.SubprocessError, OSError):
            return None
        wheels = sorted(cache.glob("open_clip_torch-*.whl"))
    return wheels[0] if wheels else None


@pytest.fixture(scope="module")
def bpe() -> Path | None:
    return _clip_bpe()


@pytest.fixture(scope="module")
def tiny_paths(tmp_path_factory, bpe):
    return write_random_weights(tmp_path_factory.mktemp("prior-weights"), "tiny", seed=0, bpe_gz_path=bpe)


@pytest.fixture(scope="module")
def models(tiny_paths):
    return load_prior_models(tiny_paths, "cpu")


def test_real_clip_tokenizer_built_offline_gives_id_1014_at_position_4(models, bpe) -> None:
    if bpe is None:
        pytest.skip("open_clip_torch wheel unavailable: the fallback vocabulary has other ids")
    tok = models.tokenizer
    assert tok.encode("id", add_special_tokens=False) == [1014]
    ids = tok("photo of a id person", padding="max_length", max_length=77, truncation=True).input_ids
    assert ids[:7] == [49406, 1125, 539, 320, 1014, 2533, 49407] and len(ids) == 77
    assert tok.encode("it and cat", add_special_tokens=False) == [585, 537, 2368]


def test_loader_reads_the_real_layout_including_the_bin_encoder(models, tiny_paths) -> None:
    assert (tiny_paths.arc2face_encoder / "pytorch_model.bin").is_file()
    assert not (tiny_paths.arc2face_encoder / "model.safetensors").exists()
    saved = torch.load(tiny_paths.arc2face_encoder / "pytorch_model.bin", weights_only=True)
    loaded = models.id_encoder.get_input_embeddings().weight
    assert torch.equal(saved["text_model.embeddings.token_embedding.weight"], loaded)
    assert models.alphas_cumprod.shape == (1000,)
    assert float(models.alphas_cumprod[1]) == pytest.approx(0.99830, abs=1e-5)
    assert models.dtype == torch.float32 and not any(p.requires_grad for p in models.unet.parameters())


def test_id_prompt_puts_the_padded_vector_at_the_placeholder_only(models) -> None:
    id_vec = torch.nn.functional.normalize(torch.randn(2, 512), dim=-1)
    input_ids, substituted = id_token_embeddings(models.id_encoder, models.tokenizer, id_vec)
    plain = models.id_encoder.get_input_embeddings()(input_ids)
    changed_rows = (substituted != plain).any(dim=-1)  # (2, 77)
    position = int((input_ids[0] == models.tokenizer.encode("id", add_special_tokens=False)[0]).nonzero())
    assert position == 4
    assert changed_rows[:, 4].all() and changed_rows.sum() == 2
    torch.testing.assert_close(substituted[:, 4, :512], id_vec)
    assert substituted[:, 4, 512:].abs().max() == 0
    with torch.no_grad():
        same = encode_token_embeddings(models.id_encoder, input_ids, plain)
        torch.testing.assert_close(same, models.id_encoder(input_ids=input_ids).last_hidden_state)
    e_id = encode_id_prompt(models.id_encoder, models.tokenizer, id_vec)
    assert e_id.shape == (2, 77, 768)
    assert (e_id[0] - e_id[1]).abs().max() > 1e-4  # the identity reaches the output


def test_missing_weights_error_names_every_missing_piece(tiny_paths, tmp_path) -> None:
    paths = dataclasses.replace(tiny_paths, arc2face_unet=None, sd_vae=tmp_path / "nowhere")
    with pytest.raises(MissingWeightsError) as info:
        load_prior_models(paths)
    message = str(info.value)
    assert "Arc2Face UNet" in message and "arc2face_unet is unset" in message
    assert "SD-1.5 VAE" in message and "nowhere" in message
    assert "text encoder" not in message and "tokenizer (" not in message  # present pieces not listed


def test_corrupt_encoder_weights_raise_input_error_naming_the_folder(tiny_paths, tmp_path) -> None:
    broken = tmp_path / "encoder"
    broken.mkdir()
    (broken / "config.json").write_text((tiny_paths.arc2face_encoder / "config.json").read_text())
    (broken / "pytorch_model.bin").write_bytes(b"not a pickle at all")
    with pytest.raises(InputError, match="Arc2Face text encoder"):
        load_prior_models(dataclasses.replace(tiny_paths, arc2face_encoder=broken))


def _unet_out(unet) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    x, ctx = torch.randn(2, 4, 8, 8, generator=g), torch.randn(2, 77, 768, generator=g)
    with torch.no_grad():
        return unet(x, torch.tensor([100, 300]), encoder_hidden_states=ctx).sample


@pytest.mark.parametrize("style", ["peft", "lora_layer", "attn_processor"])
def test_diffusers_format_lora_changes_output_and_scale_zero_gives_base_exactly(models, tmp_path, style) -> None:
    unet = models.unet
    base = _unet_out(unet)
    path = write_random_lora(tmp_path / "pytorch_lora_weights.safetensors", unet, rank=4, style=style)
    load_lora(unet, path, scale=0.45, adapter_name=style)
    try:
        assert (_unet_out(unet) - base).abs().max() > 1e-4
        set_lora_scale(unet, 0.0, style)
        assert torch.equal(_unet_out(unet), base)
    finally:
        unet.delete_adapters(style)


def test_lora_file_that_is_corrupt_or_unmatched_raises_input_error(models, tmp_path) -> None:
    from safetensors.torch import save_file

    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"\x00" * 64)
    with pytest.raises(InputError, match="corrupt.safetensors"):
        load_lora(models.unet, corrupt)
    unmatched = tmp_path / "other.safetensors"
    save_file({"unet.no.such.layer.lora_A.weight": torch.zeros(4, 8),
               "unet.no.such.layer.lora_B.weight": torch.zeros(8, 4)}, unmatched)
    with pytest.raises(InputError, match="does not fit"):
        load_lora(models.unet, unmatched)
    text_only = tmp_path / "text.safetensors"
    save_file({"text_encoder.x.lora_A.weight": torch.zeros(4, 8)}, text_only)
    with pytest.raises(InputError, match="no UNet keys"):
        load_lora(models.unet, text_only)
    assert torch.isfinite(_unet_out(models.unet)).all()


def test_arc2face_guidance_injects_g_on_the_vae_latents(models) -> None:
    class RecordingVae(VaeLatentEncoder):
        def encode(self, images, generator):
            self.latents = super().encode(images, generator)
            self.latents.retain_grad()
            return self.latents

    from arc2avatar.cameras.model import orbit_cameras

    encoder = RecordingVae(models.vae)
    prior = Arc2FaceGuidance(models, PriorConfig(), torch.nn.functional.normalize(torch.randn(512), dim=0),
                             latent_encoder=encoder)
    cams = orbit_cameras(radius=5.7, polar_deg=90.0, azimuth_deg=torch.tensor([0.0, 100.0]), fovy=0.5,
                         width=16, height=16)
    renders = torch.rand(2, 3, 16, 16, requires_grad=True)
    out = prior(renders, cams, GuidanceContext(torch.Generator().manual_seed(0)))
    out.loss.backward()
    assert encoder.latents.shape == (2, 4, 8, 8)
    assert encoder.latents.grad.norm().item() == pytest.approx(float(out.grad_norm), rel=1e-5)  # grad_norm is a 0-d tensor (issue 9)
    assert renders.grad is not None and torch.isfinite(renders.grad).all() and renders.grad.abs().sum() > 0
