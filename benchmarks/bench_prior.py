"""Time one Arc2Face ISM guidance step (docs/method.md §2) on random weights of the real sizes.

    python benchmarks/bench_prior.py --out RESULT.json [--device cuda] [--dtype auto|fp16|bf16] [--iters 10]
    python benchmarks/bench_prior.py --out smoke.json --device cpu --size tiny --res 16 --iters 2

Builds the UNet and VAE in memory from the real SD-1.5 configs (same FLOPs as the real weights;
``--size tiny`` for a CPU smoke check), optionally attaches a random multi-view LoRA through the
real loader, and times B renders → VAE encode → ISM (DDIM inversion + one batched 4B Perp-Neg
call) → backward through the VAE encoder. Reports per-phase times (CUDA events; warm-up
excluded), UNet calls, peak memory and the device name as JSON. Timesteps are drawn as in
training, so the number of inversion calls varies per iteration (≤ 9 + 1); the JSON gives both
the mean and the per-iteration values, and a ``--fixed-t`` option pins t for a worst case.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from arc2avatar._timing import StageTimer
from arc2avatar.prior.configs import PriorConfig, scheduler_config, unet_config, vae_config
from arc2avatar.prior.guidance import UNetDenoiser
from arc2avatar.prior.latents import VaeLatentEncoder
from arc2avatar.prior.ism import Branch, ism_step
from arc2avatar.prior.loading import load_lora, resolve_dtype
from arc2avatar.testing.prior_weights import write_random_lora
from arc2avatar.prior.views import ViewEmbeddings, view_conditioning


class _TimedDenoiser(UNetDenoiser):
    """UNet denoiser that times inversion calls and the main call separately."""

    def __init__(self, unet: Any, timer: StageTimer) -> None:
        super().__init__(unet)
        self.timer = timer
        self.calls = 0

    def predict_eps(self, latents, timesteps, context, branch):
        phase = "inversion_ms" if int(branch[0]) == int(Branch.INVERSION) else "main_prediction_ms"
        with self.timer.stage(phase):
            out = super().predict_eps(latents, timesteps, context, branch)
        self.calls += 1
        return out


def _build(size: str, device: torch.device, dtype: torch.dtype, lora_rank: int, seed: int) -> tuple[Any, Any]:
    from diffusers import AutoencoderKL, UNet2DConditionModel

    torch.manual_seed(seed)
    with torch.device(device):
        unet = UNet2DConditionModel.from_config(unet_config(size))
        vae = AutoencoderKL.from_config(vae_config(size))
    unet.to(dtype=dtype).eval().requires_grad_(False)
    vae.to(dtype=dtype).eval().requires_grad_(False)
    if lora_rank > 0:
        with tempfile.TemporaryDirectory() as tmp:
            path = write_random_lora(Path(tmp) / "pytorch_lora_weights.safetensors", unet, rank=lora_rank)
            load_lora(unet, path, scale=PriorConfig().lora_scale)
    return unet, vae


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, type=Path, help="JSON result path")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default="auto", choices=["auto", "fp32", "fp16", "bf16"], help="auto: fp16 on CUDA, fp32 on CPU")
    parser.add_argument("--size", default="full", choices=["full", "tiny"])
    parser.add_argument("--batch", type=int, default=4, help="views per step (spec: 4)")
    parser.add_argument("--res", type=int, default=512, help="render resolution (spec: 512)")
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--lora-rank", type=int, default=16, help="random LoRA rank (0 = no LoRA)")
    parser.add_argument("--fixed-t", type=int, default=None, help="pin t (e.g. 500 = most inversion calls)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    dtype = resolve_dtype(device, args.dtype)
    config = PriorConfig()
    if args.fixed_t is not None:
        config = PriorConfig(t_min=args.fixed_t, t_max=args.fixed_t)
    from diffusers import DDPMScheduler

    alphas_cumprod = DDPMScheduler.from_config(scheduler_config()).alphas_cumprod.to(device)
    build_start = time.perf_counter()
    unet, vae = _build(args.size, device, dtype, args.lora_rank, args.seed)
    build_s = time.perf_counter() - build_start
    timer = StageTimer(device)
    denoiser = _TimedDenoiser(unet, timer)
    encoder = VaeLatentEncoder(vae)
    gen = torch.Generator(device=device).manual_seed(args.seed)
    embeds = ViewEmbeddings(*torch.randn(5, 77, 768, generator=gen, device=device).unbind(0))
    azimuths = torch.linspace(-135.0, 135.0, args.batch)
    conditioning = view_conditioning(azimuths, embeds, config)
    renders = torch.rand(args.batch, 3, args.res, args.res, generator=gen, device=device, requires_grad=True)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    per_iter: list[dict[str, float]] = []
    for it in range(args.warmup + args.iters):
        denoiser.calls = 0
        renders.grad = None
        wall = time.perf_counter()
        with timer.stage("vae_encode_ms"):
            latents = encoder.encode(2.0 * renders - 1.0, gen)
        result = ism_step(denoiser, latents, conditioning, alphas_cumprod, config, gen)
        with timer.stage("vae_backward_ms"):
            (result.grad.detach().float() * latents.float()).sum().backward()
        phases = timer.collect()
        timer.reset()
        phases["step_wall_ms"] = (time.perf_counter() - wall) * 1000.0
        phases["unet_calls"] = float(denoiser.calls)
        phases["timestep"] = float(result.timestep)
        phases.setdefault("inversion_ms", 0.0)
        if it >= args.warmup:
            per_iter.append(phases)

    keys = ["vae_encode_ms", "inversion_ms", "main_prediction_ms", "vae_backward_ms", "step_wall_ms", "unet_calls"]
    report: dict[str, Any] = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "dtype": str(dtype).removeprefix("torch."),
        "size": args.size,
        "batch": args.batch,
        "resolution": args.res,
        "lora_rank": args.lora_rank,
        "iters": args.iters,
        "warmup": args.warmup,
        "fixed_t": args.fixed_t,
        "build_s": build_s,
        "mean": {k: statistics.fmean(p[k] for p in per_iter) for k in keys},
        "per_iter": per_iter,
        "peak_memory_bytes": torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None,
        "torch": torch.__version__,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2), encoding="utf-8")
    print(json.dumps(report["mean"], indent=2))
    return report


if __name__ == "__main__":
    main()
