"""Claims about multi-view LoRA training on tiny random models (docs/method.md §8).

Tiny prior weights in the real layout (``write_random_weights``) and a synthetic dataset, both from conftest.py
(16 px views: the tiny VAE keeps an 8×8 latent), CPU fp32.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from arc2avatar.cli.main import main
from arc2avatar.errors import InputError
from arc2avatar.finetune.dataset import DatasetLimits
from arc2avatar.finetune.train import FinetuneConfig, add_lora, iter_log, loss_trend, train_lora
from arc2avatar.prior.loading import load_lora, load_prior_models


LIMITS = DatasetLimits(min_views=4, min_side=16)
TINY = FinetuneConfig(rank=4, alpha=8.0, learning_rate=5e-3, batch_size=4, resolution=16, steps=20,
                      validate_every=0, checkpoint_every=5, holdout_views=1, view_text=True, device="cpu")

RUN_CONFIG = FinetuneConfig(**{**TINY.__dict__, "validate_every": 20, "validation_inference_steps": 2,
                               "keep_checkpoints": 4})


@pytest.fixture(scope="module")
def run(weights, dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("ft-run") / "run"
    return out, train_lora(dataset, weights, out, RUN_CONFIG, limits=LIMITS, progress=False)


def test_loss_falls_over_twenty_steps_and_every_step_is_logged(run) -> None:
    out, result = run
    first, last = loss_trend(result.losses, 5)
    assert last < first, result.losses
    log = list(iter_log(out))
    assert [r["step"] for r in log] == list(range(1, 21))
    assert np.allclose([r["loss"] for r in log], result.losses)
    assert (out / "validation" / "step-000020.png").is_file()
    assert json.loads((out / "finetune_config.json").read_text())["rank"] == 4


def _unet_out(unet) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    x, ctx = torch.randn(2, 4, 8, 8, generator=g), torch.randn(2, 77, 768, generator=g)
    with torch.no_grad():
        return unet(x, torch.tensor([100, 700]), encoder_hidden_states=ctx).sample


def test_saved_lora_loads_into_the_prior_and_reproduces_the_trained_unet(run, weights) -> None:
    out, result = run
    keys = list(load_file(result.lora_path))
    assert keys and all(k.startswith("unet.") for k in keys)
    assert any(k.endswith("attn2.to_k.lora.down.weight") for k in keys)
    models = load_prior_models(weights, "cpu")
    base = _unet_out(models.unet)
    load_lora(models.unet, result.lora_path, scale=1.0)
    loaded = _unet_out(models.unet)
    assert (loaded - base).abs().max() > 1e-4
    # the trained UNet itself: a fresh one with the last checkpoint's peft LoRA (α = 2r)
    from peft import set_peft_model_state_dict

    trained = load_prior_models(weights, "cpu").unet
    add_lora(trained, TINY)
    set_peft_model_state_dict(trained, torch.load(out / "checkpoints" / "step-000020.pt", weights_only=True)["lora"])
    torch.testing.assert_close(loaded, _unet_out(trained), atol=1e-5, rtol=1e-5)


def test_resume_continues_the_same_run(run, weights, dataset, tmp_path) -> None:
    """Interrupt the 20-step run after its step-15 checkpoint; resuming reproduces its last 5 steps."""
    out, straight = run
    copy = tmp_path / "run"
    shutil.copytree(out, copy)
    (copy / "checkpoints" / "step-000020.pt").unlink()
    (copy / "pytorch_lora_weights.safetensors").unlink()
    log_lines = (copy / "train_log.jsonl").read_text().splitlines()[:15]
    (copy / "train_log.jsonl").write_text("\n".join(log_lines) + "\n")
    sets = [f"{k}={json.dumps(list(v) if isinstance(v, tuple) else v)}" for k, v in RUN_CONFIG.__dict__.items()]
    argv = ["finetune", "train", str(dataset), "-o", str(copy), "--weights", str(weights.arc2face_unet.parent),
            "--resume", "--min-views", "4", "--min-size", "16"]
    assert main(argv + [a for kv in sets for a in ("--set", kv)]) == 0  # the CLI, as a user resumes
    resumed_losses = [r["loss"] for r in iter_log(copy)][15:]
    np.testing.assert_allclose(resumed_losses, straight.losses[15:], rtol=0, atol=1e-6)
    a, b = load_file(straight.lora_path), load_file(copy / "pytorch_lora_weights.safetensors")
    assert a.keys() == b.keys()
    assert max((a[k] - b[k]).abs().max().item() for k in a) <= 1e-6
    assert [r["step"] for r in iter_log(copy)] == list(range(1, 21))


def test_used_run_folder_needs_resume_and_resume_needs_a_checkpoint(weights, dataset, run, tmp_path) -> None:
    out, _ = run
    with pytest.raises(InputError, match="--resume"):
        train_lora(dataset, weights, out, TINY, limits=LIMITS, progress=False)
    with pytest.raises(InputError, match="no checkpoint"):
        train_lora(dataset, weights, tmp_path / "empty", TINY, resume=True, limits=LIMITS, progress=False)


def test_gradient_checkpointing_gives_the_same_training_steps(run, weights, dataset, tmp_path) -> None:
    """Recomputing activations in backward changes memory, not maths: the first steps' losses match."""
    _, straight = run
    config = FinetuneConfig(**{**TINY.__dict__, "steps": 3, "checkpoint_every": 0, "gradient_checkpointing": True})
    result = train_lora(dataset, weights, tmp_path / "gc", config, limits=LIMITS, progress=False)
    np.testing.assert_allclose(result.losses, straight.losses[:3], rtol=0, atol=1e-5)
