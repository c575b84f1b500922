"""Where the GPU time of one ISM step goes, kernel by kernel, and what each fast-path variant buys.

    python benchmarks/profile_prior.py --out DIR [--what vae,unet,attn] [--views 4]

Full-size random SD-1.5 UNet / VAE (real configs, same FLOPs), fp16, on CUDA. For each variant
of the VAE encoder's forward + backward (input gradient only, as in training) and of the UNet
call (B views for the inversion, 4B for the Perp-Neg call) it reports the median time over
``--reps`` CUDA-event-timed calls, the TFLOP/s that implies, a torch.profiler table of the
top kernels, and ``kernel_ms``: GPU time per call split into GEMM / convolution, attention,
Inductor's fused (Triton) kernels and layout transposes — the tensor-core part is what only
faster kernels or fewer FLOPs can shorten. Every section's JSON is written as soon as it is measured (a run cut short keeps
what it measured). VAE variant names: eager/compile, nchw/cl (memory format), graphs (CUDA-graphed
forward + backward), ``explicit_`` = the fast path's wide-head attention installed
(``arc2avatar.prior.attention``), ``layout``/``tuned`` = Inductor options (``AccelConfig.vae_inductor``);
UNet ``compile_tuned`` = ``AccelConfig.unet_inductor``. A research tool for issue 9 (its findings are in
docs/benchmarks.md); ``arc2avatar bench`` is the acceptance harness.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F

from arc2avatar.prior.configs import unet_config, vae_config

VAE_GFLOP_PER_IMAGE = 2285.0  # forward + input backward at 512² (docs/benchmarks.md)
UNET_GFLOP_PER_SAMPLE = 803.0  # one forward at a 64×64 latent (an H100 profile of SD-1.5's UNet)


def _time(fn: Callable[[], Any], reps: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


KERNEL_CLASSES = (  # (class, name pattern), first match wins; Triton kernels are Inductor's fused ops
    ("layout transposes", re.compile(r"nchwToNhwc|nhwcToNchw|transpose", re.I)),
    ("fused (Triton)", re.compile(r"^triton_")),
    ("attention", re.compile(r"fmha|flash|attention|sdpa", re.I)),
    ("GEMM / convolution", re.compile(r"gemm|xmma|cutlass|nvjet|conv|wgrad|dgrad|sm90|sm80|cudnn", re.I)),
)


def _kernel_profile(fn: Callable[[], Any], calls: int = 3, rows: int = 30) -> tuple[str, dict[str, float]]:
    """One torch.profiler run over ``calls`` calls: the table of the top kernels, and GPU time per
    call (ms) by kernel class — how much of a call is tensor-core work (GEMM, convolution,
    attention) that only faster kernels or fewer FLOPs can shorten."""
    from torch.profiler import ProfilerActivity, profile

    fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(calls):
            fn()
        torch.cuda.synchronize()
    events = prof.key_averages()
    split: dict[str, float] = {}
    for event in events:
        us = event.self_device_time_total
        if us <= 0:
            continue
        kind = next((name for name, pattern in KERNEL_CLASSES if pattern.search(event.key)), "other")
        split[kind] = split.get(kind, 0.0) + us / 1e3 / calls
    split["total"] = sum(split.values())
    table = events.table(sort_by="cuda_time_total", row_limit=rows, max_name_column_width=110)
    return table, split


def _op_shapes(fn: Callable[[], Any], rows: int = 25) -> str:
    """The CPU-side ops (with input shapes) whose CUDA time is largest: finds stray copies."""
    from torch.profiler import ProfilerActivity, profile

    fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA], record_shapes=True) as prof:
        fn()
        torch.cuda.synchronize()
    return prof.key_averages(group_by_input_shape=True).table(sort_by="cuda_time_total", row_limit=rows,
                                                               max_name_column_width=60, max_shapes_column_width=90)


def _vae_variants(views: int, res: int, reps: int, out: Path, results: dict[str, Any], names: list[str]) -> None:
    """The VAE encoder's forward + input backward through the pipeline's own encoder classes."""
    from diffusers import AutoencoderKL
    from diffusers.models.attention_processor import AttnProcessor2_0

    from arc2avatar.prior.accel import AcceleratedVaeLatentEncoder
    from arc2avatar.prior.configs import AccelConfig
    from arc2avatar.prior.attention import install_attention

    torch.manual_seed(0)
    with torch.device("cuda"):
        vae = AutoencoderKL.from_config(vae_config("full")).half().eval().requires_grad_(False)
    x = torch.randn(views, 3, res, res, device="cuda", dtype=torch.float16)
    down = 2 ** (len(vae.config.block_out_channels) - 1)  # 8 for SD-1.5's VAE
    grad = torch.randn(views, 2 * vae.config.latent_channels, res // down, res // down, device="cuda", dtype=torch.float16)
    gflop = VAE_GFLOP_PER_IMAGE * views * (res / 512) ** 2

    def variant(name: str, channels_last: bool, compile_mode: str, graphs: bool, explicit: bool,
                flags: tuple[str, ...] = ()) -> None:
        started = time.perf_counter()
        torch._dynamo.reset()
        vae.set_attn_processor(AttnProcessor2_0())
        if explicit:
            install_attention(vae, wider_than=AccelConfig().explicit_attention_above)
        vae.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
        encoder = AcceleratedVaeLatentEncoder(vae, AccelConfig(compile=compile_mode, cuda_graphs=graphs,
                                                               vae_channels_last=channels_last, vae_inductor=flags))
        sample = x.clone().contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
        sample.requires_grad_(True)

        def step() -> None:
            torch.autograd.grad(encoder.moments(sample), sample, grad)

        def forward() -> None:
            with torch.no_grad():
                encoder.moments(sample)

        step()
        torch.cuda.synchronize()
        setup_s = time.perf_counter() - started
        ms = _time(step, reps)
        entry = {"ms": ms, "tflops": gflop / ms, "setup_s": setup_s, "peak_gb": torch.cuda.max_memory_allocated() / 1e9}
        if not graphs:
            entry["forward_ms"] = _time(forward, reps)
        results[f"vae/{name}"] = entry
        print(f"vae/{name}: {entry}", flush=True)
        kernel_table, entry["kernel_ms"] = _kernel_profile(step)
        (out / f"kernels_vae_{name}.txt").write_text(kernel_table)
        if not graphs:
            (out / f"copies_vae_{name}.txt").write_text(_op_shapes(step))
        (out / "profile.json").write_text(json.dumps(results, indent=1))

    table = {  # name: (channels_last, compile mode, CUDA graphs, explicit wide-head attention[, Inductor flags])
        "eager_nchw": (False, "none", False, False),
        "eager_cl": (True, "none", False, False),
        "compile_nchw_graphs": (False, "default", True, False),  # the fast path before the explicit attention
        "compile_cl_graphs": (True, "default", True, False),
        "explicit_compile_nchw_graphs": (False, "default", True, True),  # the fast path
        "explicit_compile_cl_graphs": (True, "default", True, True),
        "explicit_compile_cl": (True, "default", False, True),
        "explicit_compile_nchw": (False, "default", False, True),
        "explicit_autotune_cl_graphs": (True, "max-autotune-no-cudagraphs", True, True),
        "explicit_autotune_nchw_graphs": (False, "max-autotune-no-cudagraphs", True, True),
        # Inductor converts to NHWC inside the graph (no cuDNN NCHW↔NHWC transposes)
        "explicit_layout_nchw_graphs": (False, "default", True, True, ("force_layout_optimization",)),
        "explicit_layout_tuned_nchw_graphs": (False, "default", True, True,
                                              ("force_layout_optimization", "coordinate_descent_tuning")),
    }
    for name in names:
        if name in table:
            variant(name, *table[name])


def _unet_variants(views: int, reps: int, out: Path, results: dict[str, Any], names: list[str]) -> None:
    """One UNet call at B and 4B through the pipeline's own graphed denoiser."""
    from diffusers import UNet2DConditionModel
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from arc2avatar.prior.accel import AcceleratedUNetDenoiser
    from arc2avatar.prior.configs import AccelConfig

    torch.manual_seed(0)
    with torch.device("cuda"):
        unet = UNet2DConditionModel.from_config(unet_config("full")).half().eval().requires_grad_(False)
    unet.to(memory_format=torch.channels_last)
    forced = {"cudnn": [SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION],
              "flash": [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION]}

    def variant(name: str, compile_mode: str, backend: str | None, flags: tuple[str, ...] = ()) -> None:
        torch._dynamo.reset()
        denoiser = AcceleratedUNetDenoiser(unet, AccelConfig(compile=compile_mode, unet_inductor=flags))
        for batch in (views, 4 * views):
            lat = torch.randn(batch, 4, 64, 64, device="cuda", dtype=torch.float16)
            t = torch.full((batch,), 300, device="cuda", dtype=torch.long)
            ctx = torch.randn(batch, 77, 768, device="cuda", dtype=torch.float16)
            branch = torch.zeros(batch, device="cuda", dtype=torch.long)

            def call() -> None:
                denoiser.predict_eps(lat, t, ctx, branch)

            before = denoiser.capture_s
            # the SDPA priority is read when the graph is traced (i.e. here, at capture)
            with torch.no_grad(), sdpa_kernel(forced[backend], set_priority=True) if backend else nullcontext():
                call()
            entry = {"ms": _time(call, reps), "setup_s": denoiser.capture_s - before}
            entry["tflops"] = UNET_GFLOP_PER_SAMPLE * batch / entry["ms"]
            kernel_table, entry["kernel_ms"] = _kernel_profile(call)
            results[f"unet/{name}/B{batch}"] = entry
            print(f"unet/{name}/B{batch}: {entry}", flush=True)
            if batch == 4 * views:
                (out / f"kernels_unet_{name}_B{batch}.txt").write_text(kernel_table)
            (out / "profile.json").write_text(json.dumps(results, indent=1))

    # Inductor's AOTAutograd cache does not key on the SDPA priority: run one forced-backend
    # variant per process (or per TORCHINDUCTOR_CACHE_DIR).
    table = {
        "compile_default": ("default", None),  # the fast path: PyTorch's own kernel choice
        "compile_flash": ("default", "flash"),  # FlashAttention forced
        "compile_cudnn": ("default", "cudnn"),  # cuDNN attention first
        "autotune_default": ("max-autotune-no-cudagraphs", None),
        "graphs_default": ("none", None),  # CUDA graphs, no compilation (the fast preset)
        # diffusers' SDXL speed-up guide's Inductor options
        "compile_tuned": ("default", None, ("conv_1x1_as_mm", "coordinate_descent_tuning")),
        "compile_1x1mm": ("default", None, ("conv_1x1_as_mm",)),
    }
    for name in names:
        if name in table:
            variant(name, *table[name])


def _attention(views: int, reps: int, out: Path, results: dict[str, Any]) -> None:
    """SDPA alone at the UNet's and the VAE's shapes, per backend (forward; VAE also backward)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    shapes = {  # name: (batch, heads, tokens, head_dim, kv_tokens, backward)
        "unet64_self": (4 * views, 8, 4096, 40, 4096, False),
        "unet32_self": (4 * views, 8, 1024, 80, 1024, False),
        "unet16_self": (4 * views, 8, 256, 160, 256, False),
        "unet64_cross": (4 * views, 8, 4096, 40, 77, False),
        "vae_mid": (views, 1, 4096, 512, 4096, True),
    }
    backends = {"flash": SDPBackend.FLASH_ATTENTION, "efficient": SDPBackend.EFFICIENT_ATTENTION,
                "cudnn": SDPBackend.CUDNN_ATTENTION, "math": SDPBackend.MATH}
    for name, (b, h, n, d, m, backward) in shapes.items():
        q = torch.randn(b, h, n, d, device="cuda", dtype=torch.float16, requires_grad=backward)
        k = torch.randn(b, h, m, d, device="cuda", dtype=torch.float16, requires_grad=backward)
        v = torch.randn(b, h, m, d, device="cuda", dtype=torch.float16, requires_grad=backward)
        gflop = 4 * b * h * n * m * d / 1e9 * (3 if backward else 1)
        for bname, backend in backends.items():
            def call() -> None:
                with sdpa_kernel([backend]):
                    y = F.scaled_dot_product_attention(q, k, v)
                    if backward:
                        torch.autograd.grad(y, (q, k, v), torch.ones_like(y))
            try:
                ms = _time(call, reps)
            except Exception as error:  # noqa: BLE001 - a backend that does not take the shape
                results[f"attn/{name}/{bname}"] = {"error": str(error).splitlines()[0][:160]}
                continue
            results[f"attn/{name}/{bname}"] = {"ms": ms, "tflops": gflop / ms}
            print(f"attn/{name}/{bname}: {ms:.3f} ms {gflop / ms:.0f} TFLOP/s", flush=True)
    (out / "profile.json").write_text(json.dumps(results, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--what", default="attn,vae,unet")
    parser.add_argument("--vae", default="compile_nchw_graphs,explicit_compile_nchw_graphs,explicit_compile_cl_graphs")
    parser.add_argument("--unet", default="compile_default")
    parser.add_argument("--views", type=int, default=4)
    parser.add_argument("--res", type=int, default=512)
    parser.add_argument("--reps", type=int, default=20)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    torch.backends.cudnn.benchmark = True
    results: dict[str, Any] = {"device": torch.cuda.get_device_name(), "torch": torch.__version__,
                               "cudnn": torch.backends.cudnn.version()}
    what = args.what.split(",")
    if "attn" in what:
        _attention(args.views, args.reps, args.out, results)
    if "vae" in what:
        _vae_variants(args.views, args.res, args.reps, args.out, results, args.vae.split(","))
    if "unet" in what:
        _unet_variants(args.views, args.reps, args.out, results, args.unet.split(","))
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
