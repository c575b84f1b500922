"""The fast path of the Arc2Face prior on a CUDA GPU (issue 9): same maths, fewer microseconds.

What it does, each switchable in ``AccelConfig`` (all of it is skipped on a CPU):

* **CUDA graphs.** One ISM step calls the UNet at two fixed shapes (B views for each DDIM
  inversion step, 4B for the batched Perp-Neg call) and the VAE encoder forward + backward at
  one. Each is captured once (``torch.cuda.CUDAGraph`` for the no-grad UNet,
  ``torch.cuda.make_graphed_callables`` for the VAE encoder, whose backward is captured too) and
  replayed: the ≈ 1000 kernel launches of a UNet call leave the host's critical path, which is
  what made the B = 4 inversion calls cost as much as the B = 16 one (docs/benchmarks.md).
* **channels_last** memory format for the UNet's convolutions (not the VAE's by default: in eager
  PyTorch its GroupNorms at 512² made the NHWC encoder slower, 36 + 54 ms against 33 + 40 ms
  forward + backward for 4 views on an H200, docs/benchmarks.md).
* **Fused LoRA.** The multi-view LoRA is fixed while an avatar is optimised, so W + s·B·A is
  merged into the UNet weights once (peft's ``merge``) instead of running two extra matmuls per
  projection per call.
* **torch.compile** (Inductor, "default" mode) under our graphs: 1.6× faster UNet calls and
  VAE forward for about three minutes of compilation on a machine's first run (Inductor caches
  on disk); a short run (the ``fast`` preset) turns it off. ``compile="reduce-overhead"`` uses
  Inductor's own CUDA graphs instead of ours. A compiler failure falls back to eager with a
  warning.
* **Inductor's layout choice for the VAE** (``AccelConfig.vae_inductor``): the compiled VAE
  encoder runs its convolutions NHWC inside the graph (``force_layout_optimization``; cuDNN
  otherwise spent 9 of its 35 ms transposing NCHW↔NHWC) and tunes its fused GroupNorm/SiLU
  kernels' launch parameters (``coordinate_descent_tuning``): forward + backward 35.0 → 29.8 ms,
  for ≈ 2 more minutes of compilation on a machine's first run (docs/benchmarks.md; a one-off
  avatar on a fresh machine is quicker with ``--set accel.vae_inductor=[force_layout_optimization]``).
* **Wide-head attention** (``prior/attention.py``): the VAE's single 512-wide attention head as
  two matrix products around a float32 softmax instead of the memory-efficient kernel, whose
  backward was a third of the VAE's forward + backward.
* **cuDNN autotuning** for the fixed shapes (the process-wide ``torch.backends.cudnn.benchmark``).

None of these changes a formula: the benchmark harness (``arc2avatar bench``) checks that the
fast step's guidance gradient matches the eager step's within fp16 tolerance.

Written by hand: the capture/replay bookkeeping around PyTorch's own graph API (static input
buffers per shape, warm-up on a side stream); the kernels are PyTorch's, cuDNN's and cuBLAS's.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import torch
from torch import Tensor

from .attention import explicit_attention, install_attention
from .configs import AccelConfig
from .latents import VaeLatentEncoder, vae_moments
from .loading import PriorModels

if TYPE_CHECKING:
    from arc2avatar.cameras.model import Cameras  # typing only

log = logging.getLogger(__name__)

def fuse_lora(unet: torch.nn.Module) -> int:
    """Merge every active LoRA adapter into its base weights at its current scale; returns how
    many layers were merged (0 when the UNet has no LoRA or it is merged already)."""
    try:
        from peft.tuners.lora import LoraLayer
    except ImportError:  # no peft → no LoRA could have been loaded
        return 0
    merged = 0
    for module in unet.modules():
        if isinstance(module, LoraLayer) and not module.merged:
            module.merge(safe_merge=True)
            merged += 1
    return merged


def prepare_models(models: PriorModels, accel: AccelConfig) -> dict[str, Any]:
    """Apply the in-place parts of the fast path to ``models`` (idempotent); returns what was done.

    In place because one avatar run holds exactly one UNet and one VAE (docs/method.md §2): the LoRA
    merge and the memory format change the loaded weights themselves.
    """
    done: dict[str, Any] = {"fused_lora_layers": 0, "channels_last": False, "vae_channels_last": False,
                            "vae_explicit_attention_layers": 0}
    if not accel.active(models.device):
        return done
    if accel.cudnn_benchmark:
        torch.backends.cudnn.benchmark = True
    if accel.fuse_lora:
        done["fused_lora_layers"] = fuse_lora(models.unet)
    if accel.channels_last:
        models.unet.to(memory_format=torch.channels_last)
        done["channels_last"] = True
    if accel.vae_channels_last:
        models.vae.to(memory_format=torch.channels_last)
    done["vae_channels_last"] = accel.vae_channels_last
    if accel.explicit_attention_above is not None:
        done["vae_explicit_attention_layers"] = install_attention(
            models.vae, explicit_attention, wider_than=accel.explicit_attention_above)
    return done


class _CompiledOrEager:
    """Calls the compiled function; if compiling fails (no Triton or C compiler, an unsupported
    GPU...), warns once and calls the eager function from then on: a slower run, not a crash."""

    def __init__(self, compiled: Callable[..., Any], eager: Callable[..., Any], what: str) -> None:
        self.compiled: Callable[..., Any] | None = compiled
        self.eager = eager
        self.what = what

    def __call__(self, *args: Any) -> Any:
        if self.compiled is not None:
            try:
                return self.compiled(*args)
            except Exception as error:  # noqa: BLE001 - any compiler failure falls back to eager
                log.warning("torch.compile of the %s failed (%s: %s); it runs uncompiled",
                            self.what, type(error).__name__, str(error).splitlines()[0][:200] if str(error) else "")
                self.compiled = None
        return self.eager(*args)


def _compile_kwargs(mode: str, flags: tuple[str, ...]) -> dict[str, Any]:
    """``torch.compile`` keywords for ``mode`` plus boolean Inductor ``flags`` (torch.compile takes
    either a mode or an options dict, so with flags the mode is spelled out as its options)."""
    if not flags:
        return {"mode": mode}
    import torch._inductor

    options = dict(torch._inductor.list_mode_options(mode))
    options.update({flag: True for flag in flags})
    return {"options": options}


def _maybe_compile(fn: Callable[..., Any], accel: AccelConfig, what: str, flags: tuple[str, ...] = ()) -> Callable[..., Any]:
    if accel.compile == "none":
        return fn
    return _CompiledOrEager(torch.compile(fn, dynamic=False, **_compile_kwargs(accel.compile, flags)), fn, what)


@dataclass
class _CapturedCall:
    """One captured UNet call: its graph and the static buffers it reads and writes."""

    graph: torch.cuda.CUDAGraph
    latents: Tensor  # (N, 4, h, w) in the UNet dtype
    timesteps: Tensor  # (N,) int64
    context: Tensor  # (N, 77, D) in the UNet dtype
    output: Tensor  # (N, 4, h, w) ε, overwritten by every replay


class AcceleratedUNetDenoiser:
    """The Arc2Face UNet as a ``Denoiser`` on the fast path: compiled if asked, and with
    ``accel.cuda_graphs`` its calls replay CUDA graphs (one per input shape).

    The first call of a shape runs ``accel.warmup_calls`` calls on a side stream, then
    captures; later calls copy their inputs into the static buffers and replay. Outputs are
    cloned, so a result stays valid after the next replay.
    """

    def __init__(self, unet: Any, accel: AccelConfig = AccelConfig()) -> None:
        self.unet = unet
        self.accel = accel
        self._forward = _maybe_compile(self._eager_forward, accel, "UNet", accel.unet_inductor)
        self._calls: dict[tuple[tuple[int, ...], tuple[int, ...]], _CapturedCall] = {}
        self.capture_s = 0.0  # wall time spent warming up and capturing (reported by the harness)

    def _eager_forward(self, latents: Tensor, timesteps: Tensor, context: Tensor) -> Tensor:
        return self.unet(latents, timesteps, encoder_hidden_states=context, return_dict=False)[0]

    def prepare(self, clean_latents: Tensor, cameras: Cameras | None, flipped: bool) -> None:
        """Nothing to prepare for a real UNet."""

    def predict_eps(self, latents: Tensor, timesteps: Tensor, context: Tensor, branch: Tensor) -> Tensor:
        if not self.accel.cuda_graphs:
            dtype = self.unet.dtype
            # cloned: Inductor's own graphs ("reduce-overhead") reuse their output buffers
            return self._forward(latents.to(dtype), timesteps, context.to(dtype)).clone()
        key = (tuple(latents.shape), tuple(context.shape))
        call = self._calls.get(key)
        if call is None:
            call = self._calls[key] = self._capture(latents, timesteps, context)
        call.latents.copy_(latents)  # casts to the UNet dtype, as the eager path's .to(dtype)
        call.timesteps.copy_(timesteps)
        call.context.copy_(context)
        call.graph.replay()
        return call.output.clone()

    @torch.no_grad()
    def _capture(self, latents: Tensor, timesteps: Tensor, context: Tensor) -> _CapturedCall:
        started = time.perf_counter()
        dtype = self.unet.dtype
        static_latents = latents.detach().to(dtype).clone()
        static_timesteps = timesteps.detach().clone()
        static_context = context.detach().to(dtype).clone()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(self.accel.warmup_calls):
                self._forward(static_latents, static_timesteps, static_context)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            output = self._forward(static_latents, static_timesteps, static_context)
        torch.cuda.synchronize()
        self.capture_s += time.perf_counter() - started
        log.debug("captured the UNet at latents %s, context %s", tuple(latents.shape), tuple(context.shape))
        return _CapturedCall(graph, static_latents, static_timesteps, static_context, output)


class _VaeMoments(torch.nn.Module):
    """``vae_moments`` as one module (what gets compiled and captured)."""

    def __init__(self, vae: Any) -> None:
        super().__init__()
        self.vae = vae

    def forward(self, images: Tensor) -> Tensor:
        return vae_moments(self.vae, images)


class AcceleratedVaeLatentEncoder(VaeLatentEncoder):
    """``VaeLatentEncoder`` on the fast path: compiled if asked, and with ``accel.cuda_graphs``
    its encoder forward AND backward replay CUDA graphs.

    Captured per input shape for inputs that require grad (the training renders); anything else
    (a no-grad call) runs eagerly. The posterior sample is drawn outside the graph, exactly as
    the eager encoder draws it.
    """

    def __init__(self, vae: Any, accel: AccelConfig = AccelConfig()) -> None:
        super().__init__(vae)
        self.accel = accel
        self._module = _VaeMoments(vae)
        self._compiled = _maybe_compile(self._module, accel, "VAE encoder", accel.vae_inductor)
        self._graphed: dict[tuple[int, ...], Callable[[Tensor], Tensor]] = {}
        self.capture_s = 0.0

    def moments(self, images: Tensor) -> Tensor:
        x = images.to(self.vae.dtype)
        if not self.accel.cuda_graphs:
            return self._compiled(x)
        if not x.requires_grad or not torch.is_grad_enabled():
            return self._module(x)
        key = tuple(x.shape)
        graphed = self._graphed.get(key)
        if graphed is None:
            graphed = self._graphed[key] = self._capture(x)
        return graphed(x)

    def _capture(self, x: Tensor) -> Callable[[Tensor], Tensor]:
        started = time.perf_counter()
        # random (not zero) sample inputs: zeros can pick different, faster paths than real data
        sample = torch.randn(x.shape, device=x.device, dtype=x.dtype)
        if self.accel.vae_channels_last:
            sample = sample.contiguous(memory_format=torch.channels_last)
        sample.requires_grad_(True)
        graphed = torch.cuda.make_graphed_callables(self._compiled, (sample,), num_warmup_iters=self.accel.warmup_calls)
        torch.cuda.synchronize()
        self.capture_s += time.perf_counter() - started
        log.debug("captured the VAE encoder forward + backward at %s", tuple(x.shape))
        return graphed


__all__ = [
    "AccelConfig",
    "AcceleratedUNetDenoiser",
    "AcceleratedVaeLatentEncoder",
    "fuse_lora",
    "prepare_models",
]
