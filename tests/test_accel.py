"""Claims about the GPU fast path of the prior (issue 9): it changes no maths.

CPU tests: the fused LoRA gives the unfused outputs, our attention processor (and the explicit
wide-head attention) gives diffusers' results, the fast path is inert on a CPU, the
host generator decides the flip and t (no device sync), Inductor options reach torch.compile,
the stage timer sums what it brackets,
and the benchmark harness produces a complete report on tiny weights. CUDA tests (marked
``gpu``, run on the device machine): the CUDA-graphed UNet and VAE encoder return the eager
results, and a whole fast guidance step's gradient is as close to an fp32 reference as the eager
fp16 step's.
"""

from __future__ import annotations

import json
import time

import pytest
import torch

from arc2avatar._timing import NULL_TIMER, StageTimer
from arc2avatar.prior.configs import AccelConfig
from arc2avatar.prior.accel import AcceleratedUNetDenoiser, AcceleratedVaeLatentEncoder, fuse_lora, prepare_models
from arc2avatar.prior.configs import PriorConfig
from arc2avatar.prior.guidance import Arc2FaceGuidance, GuidanceContext, UNetDenoiser
from arc2avatar.prior.latents import VaeLatentEncoder
from arc2avatar.prior.loading import load_lora, load_prior_models
from arc2avatar.testing.prior_weights import write_random_lora, write_random_weights

CUDA = torch.cuda.is_available()
gpu = pytest.mark.gpu  # skipped without a CUDA device (tests/conftest.py)


@pytest.fixture(scope="module")
def tiny_paths(tmp_path_factory):
    return write_random_weights(tmp_path_factory.mktemp("accel-weights"), "tiny", seed=0)


def _models_with_lora(paths, tmp_path, device="cpu", dtype="fp32"):
    models = load_prior_models(paths, device, dtype)
    lora = write_random_lora(tmp_path / "pytorch_lora_weights.safetensors", models.unet, rank=4, seed=1, std=0.2)
    load_lora(models.unet, lora, scale=PriorConfig().lora_scale)
    return models


def _unet_inputs(models, batch=2, seed=0):
    gen = torch.Generator().manual_seed(seed)
    cfg = models.unet.config
    size = cfg.sample_size
    latents = torch.randn(batch, cfg.in_channels, size, size, generator=gen)
    context = torch.randn(batch, 77, cfg.cross_attention_dim, generator=gen)
    timesteps = torch.full((batch,), 321, dtype=torch.long)
    return latents, timesteps, context


def test_fused_lora_gives_the_unfused_unet_output_within_1e_5(tiny_paths, tmp_path) -> None:
    models = _models_with_lora(tiny_paths, tmp_path)
    latents, timesteps, context = _unet_inputs(models)
    with torch.no_grad():
        unfused = models.unet(latents, timesteps, encoder_hidden_states=context).sample
        merged = fuse_lora(models.unet)
        fused = models.unet(latents, timesteps, encoder_hidden_states=context).sample
    base = load_prior_models(tiny_paths, "cpu", "fp32").unet
    with torch.no_grad():
        without = base(latents, timesteps, encoder_hidden_states=context).sample
    assert merged > 0 and fuse_lora(models.unet) == 0  # merged once, idempotent
    assert (unfused - without).abs().max() > 1e-3  # the LoRA matters at this scale...
    torch.testing.assert_close(fused, unfused, rtol=1e-5, atol=1e-5)  # ...and fusing it changes nothing


def test_fast_path_is_inert_on_a_cpu(tiny_paths, tmp_path) -> None:
    models = _models_with_lora(tiny_paths, tmp_path)
    report = prepare_models(models, AccelConfig())
    assert report == {"fused_lora_layers": 0, "channels_last": False, "vae_channels_last": False,
                      "vae_explicit_attention_layers": 0}
    guidance = Arc2FaceGuidance(models, PriorConfig(), torch.nn.functional.normalize(torch.randn(512), dim=0))
    assert type(guidance.denoiser) is UNetDenoiser and type(guidance.latent_encoder) is VaeLatentEncoder
    assert not AccelConfig().active("cpu") and AccelConfig().active("cuda") and not AccelConfig.eager().active("cuda")


def _attention_outputs(models, kernel=None, wider_than=0):
    """UNet ε and VAE encoder moments + input gradient, with ``kernel`` installed on the heads
    wider than ``wider_than`` (None: diffusers' default processors)."""
    import copy

    from arc2avatar.prior.attention import install_attention

    unet, vae = copy.deepcopy(models.unet), copy.deepcopy(models.vae)
    if kernel is not None:
        assert install_attention(unet, kernel, wider_than) > 0 and install_attention(vae, kernel, wider_than) > 0
    latents, timesteps, context = _unet_inputs(models)
    with torch.no_grad():
        eps = unet(latents, timesteps, encoder_hidden_states=context).sample
    images = (torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(3)) * 2 - 1).requires_grad_(True)
    moments = VaeLatentEncoder(vae).moments(images)
    (moments * torch.linspace(-1, 1, moments.numel()).reshape(moments.shape)).sum().backward()
    return eps, moments.detach(), images.grad


def test_fast_attention_processor_gives_diffusers_results_in_the_unet_and_the_vae(tiny_paths, tmp_path) -> None:
    import copy

    from arc2avatar.prior.attention import explicit_attention, install_attention, sdpa_attention

    models = _models_with_lora(tiny_paths, tmp_path)
    reference = _attention_outputs(models)
    # the explicit two-matmul form on every head (by default only heads wider than 256 take it)
    # and the SDPA kernel, both through our processor; the tiny models' heads are all ≤ 256 wide
    unet, vae = models.unet, models.vae
    assert install_attention(copy.deepcopy(unet), wider_than=256) == install_attention(copy.deepcopy(vae), wider_than=256) == 0
    for kernel in (explicit_attention, sdpa_attention):
        for got, want in zip(_attention_outputs(models, kernel), reference):
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_the_default_threshold_picks_exactly_the_real_vaes_512_wide_heads() -> None:
    from diffusers import AutoencoderKL, UNet2DConditionModel

    from arc2avatar.prior.attention import FastAttnProcessor, install_attention
    from arc2avatar.prior.configs import unet_config, vae_config

    with torch.device("meta"):  # the real SD-1.5 shapes, no memory
        vae = AutoencoderKL.from_config(vae_config("full"))
        unet = UNet2DConditionModel.from_config(unet_config("full"))
    threshold = AccelConfig().explicit_attention_above
    assert install_attention(vae, wider_than=threshold) == 2  # encoder and decoder mid blocks
    assert isinstance(vae.encoder.mid_block.attentions[0].processor, FastAttnProcessor)
    assert install_attention(unet, wider_than=threshold) == 0  # 40/80/160-wide heads keep diffusers' processor


def test_explicit_attention_is_softmax_attention_with_a_mask_too() -> None:
    from arc2avatar.prior.attention import explicit_attention

    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 1, 64, 512, generator=gen) for _ in range(3))
    mask = torch.zeros(2, 1, 64, 64).masked_fill(torch.rand(2, 1, 64, 64, generator=gen) < 0.3, float("-inf"))
    for m in (None, mask):
        want = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=m)
        torch.testing.assert_close(explicit_attention(q, k, v, m), want, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(explicit_attention(q, k, v, mask), explicit_attention(q, k, v, None))


def test_accel_config_rejects_unknown_compile_modes() -> None:
    with pytest.raises(ValueError, match="compile"):
        AccelConfig(compile="fastest")
    with pytest.raises(ValueError, match="warmup"):
        AccelConfig(warmup_calls=0)
    with pytest.raises(ValueError, match="cuda_graphs=false"):
        AccelConfig(compile="reduce-overhead")
    assert AccelConfig(compile="reduce-overhead", cuda_graphs=False).compile == "reduce-overhead"
    with pytest.raises(ValueError, match="explicit_attention_above"):
        AccelConfig(explicit_attention_above=-1)


def test_inductor_options_reach_torch_compile_with_the_mode_spelled_out(monkeypatch) -> None:
    import arc2avatar.prior.accel as accel_module

    seen: list[dict] = []

    def fake_compile(fn, **kwargs):
        seen.append(kwargs)
        return fn

    monkeypatch.setattr(accel_module.torch, "compile", fake_compile)
    unet, vae = torch.nn.Identity(), torch.nn.Identity()
    AcceleratedUNetDenoiser(unet, AccelConfig(unet_inductor=("conv_1x1_as_mm",)))
    AcceleratedVaeLatentEncoder(vae, AccelConfig(compile="max-autotune-no-cudagraphs"))
    AcceleratedUNetDenoiser(unet, AccelConfig())
    assert seen[0] == {"dynamic": False, "options": {"conv_1x1_as_mm": True}}
    # torch.compile takes a mode OR options: with flags the mode travels as its own options
    assert seen[1] == {"dynamic": False, "options": {"max_autotune": True, "coordinate_descent_tuning": True,
                                                     "force_layout_optimization": True}}
    assert seen[2] == {"dynamic": False, "mode": "default"}  # the UNet: no flags by default
    with pytest.raises(ValueError, match="'triton' is not a boolean option"):
        AccelConfig(vae_inductor=("triton",)).check_inductor_options()  # a group, not a flag
    AccelConfig(unet_inductor=("triton.cudagraphs",)).check_inductor_options()
    AccelConfig().check_inductor_options()  # the defaults are real options of this torch


def test_an_unknown_inductor_option_stops_the_run_before_anything_is_written(tmp_path, capsys, monkeypatch) -> None:
    from arc2avatar.cli.main import main

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # the options are checked where the run may compile
    out = tmp_path / "out"
    assert main(["demo", "-o", str(out), "--set", "accel.vae_inductor=[no_such_option]", "--set", "device=auto",
                 "--no-progress"]) == 1
    assert "'no_such_option' is not a boolean option of torch._inductor.config" in capsys.readouterr().err
    assert not out.exists()


def test_a_cpu_run_neither_checks_nor_imports_inductor(tmp_path) -> None:
    """Inductor's options are unused without a CUDA device, and importing Inductor costs seconds."""
    import subprocess
    import sys

    code = ("import sys; from arc2avatar.pipeline.presets import resolve_config; "
            "resolve_config('cpu-smoke', None, ['accel.vae_inductor=[no_such_option]', 'device=cpu']); "
            "print('torch._inductor' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "False", done.stderr


def test_host_generator_alone_decides_flip_and_timestep(tiny_paths, tmp_path) -> None:
    models = _models_with_lora(tiny_paths, tmp_path)
    guidance = Arc2FaceGuidance(models, PriorConfig(), torch.nn.functional.normalize(torch.randn(512), dim=0))
    renders = torch.rand(2, 3, 64, 64)
    from arc2avatar.cameras.model import orbit_cameras

    cameras = orbit_cameras(5.0, 90.0, torch.tensor([0.0, 120.0]), 0.5, 64, 64)
    seen = set()
    for device_seed in (1, 2, 3):
        out = guidance(renders, cameras, GuidanceContext(torch.Generator().manual_seed(device_seed), torch.Generator().manual_seed(7)))
        seen.add((out.timestep, out.extra["flipped"]))
    assert len(seen) == 1  # the device generator only draws noise
    draws = {guidance(renders, cameras, GuidanceContext(torch.Generator().manual_seed(1), torch.Generator().manual_seed(s))).timestep
             for s in range(8)}
    assert len(draws) > 1 and all(21 <= t <= 500 for t in draws)


def test_stage_timer_sums_bracketed_host_time_and_null_timer_records_nothing() -> None:
    timer = StageTimer("cpu")
    for _ in range(3):
        with timer.stage("sleep"):
            time.sleep(0.01)
    totals, counts = timer.collect(), timer.counts()
    assert counts == {"sleep": 3} and 25.0 < totals["sleep"] < 500.0
    timer.reset()
    assert timer.collect() == {}
    with NULL_TIMER.stage("anything"):
        pass
    assert NULL_TIMER.collect() == {} and not NULL_TIMER.enabled


def test_benchmark_harness_reports_every_stage_and_a_projection_on_tiny_weights(tmp_path) -> None:
    from arc2avatar.bench.harness import STAGES, BenchConfig, run_benchmark, summary_lines

    bench = BenchConfig(
        iterations=6, baseline_iterations=3, extra_iterations=3, warmup_iterations=1, window_before_head=3,
        size="tiny", lora_rank=4, gradient_seeds=2, outputs=False, meanface_iterations=(3, 3),
        overrides=("device=cpu", "iterations=60", "resolution=16", "template.face_levels=0", "template.rest_levels=0",
                   "meanface.resolution=16", "prior.t_max=100", "densify.densify_from=1", "densify.densify_every=5"),
    )
    out = tmp_path / "bench.json"
    report = run_benchmark(bench, work=tmp_path / "work", out=out, progress=False)
    saved = json.loads(out.read_text())
    fast = saved["fast"]
    assert set(fast["stage_ms_per_iteration"]) == set(STAGES)
    for stage in ("render", "vae_encode", "inversion", "main_prediction", "vae_backward", "render_backward", "optimizer"):
        assert fast["stage_ms_per_iteration"][stage] > 0, stage
    # window: face phase ends at 6; start 6 − 3, one warm-up iteration, then 4..9
    assert fast["window"] == [5, 10] and fast["iterations_by_phase"] == {"face": 2, "head": 4}
    assert saved["baseline"]["iterations"] == 3 and saved["speedup_vs_eager"] > 0
    # on a CPU the fast path is the eager path: the gradients agree to rounding
    assert saved["gradient_check"]["min_cosine_fast_vs_eager"] > 0.99999
    proj = saved["projection"]["paper"]
    assert proj["iterations"] == 60 and proj["face_iterations"] == 6 and proj["total_min"] > 0
    assert "fast" in saved["projection"] and saved["extra"]["fast"]["iterations"] == 3
    assert any("projected paper" in line for line in summary_lines(report))


# --------------------------------------------------------------------------- CUDA only
@gpu
def test_graphed_unet_returns_the_eager_output_and_survives_the_next_replay(tiny_paths, tmp_path) -> None:
    models = _models_with_lora(tiny_paths, tmp_path, device="cuda", dtype="fp16")
    eager = UNetDenoiser(models.unet)
    graphed = AcceleratedUNetDenoiser(models.unet, AccelConfig(compile="none"))  # replay alone: bit-exact
    outs = []
    for seed in (0, 1):
        latents, timesteps, context = (t.cuda() for t in _unet_inputs(models, seed=seed))
        branch = torch.zeros(latents.shape[0], dtype=torch.long, device="cuda")
        expected = eager.predict_eps(latents, timesteps, context, branch)
        got = graphed.predict_eps(latents, timesteps, context, branch)
        torch.testing.assert_close(got, expected, rtol=0, atol=0)
        outs.append((got, expected))
    torch.testing.assert_close(outs[0][0], outs[0][1], rtol=0, atol=0)  # a clone, not the static buffer
    assert len(graphed._calls) == 1


@gpu
def test_graphed_vae_encoder_gives_eager_moments_and_input_gradients(tiny_paths, tmp_path) -> None:
    models = _models_with_lora(tiny_paths, tmp_path, device="cuda", dtype="fp16")
    eager, graphed = VaeLatentEncoder(models.vae), AcceleratedVaeLatentEncoder(models.vae, AccelConfig(compile="none"))
    for seed in (0, 1):
        images = torch.rand(2, 3, 64, 64, device="cuda", generator=torch.Generator("cuda").manual_seed(seed)) * 2 - 1
        grads = []
        for encoder in (eager, graphed):
            x = images.clone().requires_grad_(True)
            moments = encoder.moments(x)
            (moments.float() * torch.linspace(-1, 1, moments.numel(), device="cuda").reshape(moments.shape)).sum().backward()
            grads.append((moments.detach().clone(), x.grad.clone()))
        torch.testing.assert_close(grads[1][0], grads[0][0], rtol=0, atol=0)  # same kernels, replayed
        torch.testing.assert_close(grads[1][1], grads[0][1], rtol=1e-3, atol=1e-3)  # backward may use atomics


@gpu
def test_fast_guidance_gradient_is_as_close_to_fp32_as_the_eager_fp16_one(tiny_paths, tmp_path) -> None:
    """The fast path (compiled, graphed, fused LoRA, fast attention) in fp16 against an fp32 eager
    reference: its error is at most the eager fp16 step's (×1.5, + slack for tiny gradients)."""
    from arc2avatar.cameras.model import orbit_cameras
    from arc2avatar.bench.harness import guidance_gradient

    identity = torch.nn.functional.normalize(torch.randn(512, generator=torch.Generator().manual_seed(0)), dim=0)
    cameras = orbit_cameras(5.0, 90.0, torch.tensor([-45.0, 30.0, -135.0, 150.0]), 0.5, 64, 64).to("cuda")
    renders = torch.rand(4, 3, 64, 64, device="cuda", generator=torch.Generator("cuda").manual_seed(0))
    seeds = (1, 2)

    def gradients(dtype, accel):
        prior = Arc2FaceGuidance(_models_with_lora(tiny_paths, tmp_path, device="cuda", dtype=dtype), PriorConfig(),
                                 identity, accel=accel)
        return prior, [guidance_gradient(prior, renders, cameras, s).float() for s in seeds]

    _, reference = gradients("fp32", AccelConfig.eager())
    _, eager = gradients("fp16", AccelConfig.eager())
    # explicit attention on every VAE head: the tiny VAE's heads are narrower than the real 512
    fast_prior, fast = gradients("fp16", AccelConfig(explicit_attention_above=0))
    assert fast_prior.accel_report["vae_explicit_attention_layers"] > 0
    assert fast_prior.accel_report["fused_lora_layers"] > 0 and isinstance(fast_prior.denoiser, AcceleratedUNetDenoiser)
    for ref, want, got in zip(reference, eager, fast):
        eager_error = ((want - ref).norm() / ref.norm()).item()
        fast_error = ((got - ref).norm() / ref.norm()).item()
        assert fast_error <= 1.5 * eager_error + 5e-3, (fast_error, eager_error)
        assert torch.nn.functional.cosine_similarity(got.flatten(), ref.flatten(), dim=0) > 0.995


def test_a_failing_compiler_falls_back_to_eager_once_with_a_warning(caplog) -> None:
    from arc2avatar.prior.accel import _CompiledOrEager

    calls = []

    def broken(x):
        calls.append("compiled")
        raise RuntimeError("no C compiler found\nlong details")

    fn = _CompiledOrEager(broken, lambda x: x + 1, "UNet")
    with caplog.at_level("WARNING"):
        assert fn(1) == 2 and fn(2) == 3
    assert calls == ["compiled"]  # tried once, then eager for good
    assert "torch.compile of the UNet failed (RuntimeError: no C compiler found)" in caplog.text


def test_the_cli_keeps_compiled_kernels_in_the_arc2avatar_cache_unless_told_otherwise(tmp_path, monkeypatch) -> None:
    import os
    from pathlib import Path

    from arc2avatar._cache import persist_compile_cache
    from arc2avatar.cli.main import main

    env = {"ARC2AVATAR_CACHE": str(tmp_path)}
    assert persist_compile_cache(env) == tmp_path / "inductor" and env["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "inductor")
    chosen = {"ARC2AVATAR_CACHE": str(tmp_path), "TORCHINDUCTOR_CACHE_DIR": "/somewhere/else"}
    assert persist_compile_cache(chosen) == Path("/somewhere/else")  # the user's choice stands
    monkeypatch.setenv("ARC2AVATAR_CACHE", str(tmp_path / "cli"))
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", "unset-below")  # recorded, so the test leaves os.environ as it was
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR")
    assert main([]) == 1  # no command: help, exit 1; the process's cache is set all the same
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "cli" / "inductor")


@pytest.mark.skipif(CUDA, reason="checks the message given where there is no CUDA device")
def test_bench_without_a_gpu_refuses_full_size_weights_in_one_line_and_writes_nothing(tmp_path, capsys) -> None:
    from arc2avatar.cli.main import main

    out = tmp_path / "bench.json"
    assert main(["bench", "--out", str(out), "--work", str(tmp_path / "work"), "--no-progress"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no CUDA device" in err[0] and "--size tiny" in err[0]
    assert not out.exists() and not (tmp_path / "work" / "weights").exists()
