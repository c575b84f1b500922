"""The avatar optimisation loop: face phase, then full head (paper §3.3–3.4, A.2, E.3–E.6; docs/method.md §4–§5).

One iteration: learning rates → cameras (zoomed frontal in the face phase, the paper's or the
release's sampler after) → augmented backgrounds and scale jitter → render → guidance loss
(any ``GuidancePrior``) + TV / scale / face-position / face-Laplacian terms → backward →
densification statistics and the masked densify/prune/reset schedule (full-head phase only) →
Adam step. Everything random comes from two seeded generators whose states are checkpointed,
so ``resume`` ends with the same avatar as an uninterrupted run.

Written by hand: the loop is the method's own. Run hygiene: a NaN/Inf step is skipped and
counted (the run aborts after ``max_bad_steps`` in a row), checkpoints are atomic and written on
SIGINT/SIGTERM too, a JSON-lines log records losses, guidance gradient norm, splat counts and
timings.

GPU hygiene (issue 9): one host–device sync per iteration (the finite check that decides
whether the step is taken) besides the renderer's own and the guidance's read of the view
azimuths (which pick the prompt mix); host data (cameras, backgrounds) goes to
the GPU without waiting; the guidance's flip and timestep are drawn on the CPU camera generator;
log values stay tensors until a record is written; periodic checkpoints are copied to the host
and written by a background thread. The backward pass is split at the renders (guidance → VAE
backward first, then renderer + regularisers) so a ``StageTimer`` can time each part; the
gradient is the same by the chain rule.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from torch import Tensor

from arc2avatar._io import atomic_path, atomic_write_text
from arc2avatar._timing import NULL_TIMER, Timer
from arc2avatar.avatar.layout import LOG_NAME, PROGRESS_NAME
from arc2avatar._io import JsonlLogger
from arc2avatar.avatar.media import write_sheet
from arc2avatar.avatar.template import HeadSetup
from arc2avatar.cameras.model import Cameras
from arc2avatar.cameras.samplers import sample_face_phase, sample_paper, sample_release, test_ring_cameras
from arc2avatar.errors import Arc2AvatarError, error_line
from arc2avatar.head.laplacian import laplacian_loss, uniform_laplacian
from arc2avatar.pipeline.config import CreateConfig
from arc2avatar.prior.guidance import GuidanceContext, GuidancePrior
from arc2avatar.pipeline.losses import disparity, regularisation_losses
from arc2avatar.splats.checks import check_splat_values
from arc2avatar.splats.densify import MaskedDensifier
from arc2avatar.splats.model import GaussianSplats
from arc2avatar.splats.optim import make_optimizer, update_learning_rates, zero_rows
from arc2avatar.splats.render import rasterize

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "checkpoint.pt"
CHECKPOINT_VERSION = 1
#: The regularisation terms logged as ``loss_<name>`` (``RegularisationLosses`` fields).
REG_TERMS: tuple[str, ...] = ("tv_rgb", "tv_disparity", "scale", "face_position", "face_laplacian", "total")


class TrainingAborted(Arc2AvatarError):
    """The optimisation diverged (non-finite steps kept coming)."""


class TrainingInterrupted(KeyboardInterrupt):
    """SIGINT/SIGTERM arrived; a checkpoint was written first.

    Attributes:
        checkpoint: the checkpoint file written (``--resume`` continues from it).
        iteration: the last iteration completed.
    """

    def __init__(self, message: str, checkpoint: Path | None = None, iteration: int | None = None) -> None:
        super().__init__(message)
        self.checkpoint = checkpoint
        self.iteration = iteration


@dataclass
class TrainerState:
    """Everything a checkpoint restores."""

    iteration: int
    splats: GaussianSplats
    optimizer: torch.optim.Adam
    densifier: MaskedDensifier
    camera_generator: torch.Generator  # CPU: cameras, backgrounds, jitter
    device_generator: torch.Generator  # splats' device: guidance noise and timesteps, splits
    skipped_steps: int = 0
    bad_in_a_row: int = 0
    elapsed_s: float = 0.0


@dataclass(frozen=True)
class TrainerHooks:
    """Optional callbacks (e.g. progress reporting for notebooks).

    Attributes:
        on_log: called with each JSON-lines record.
    """

    on_log: Callable[[dict[str, Any]], None] | None = None


@dataclass
class FaceIndex:
    """Rows of the face splats ordered like the upsampled head's face vertices (for the Laplacian)."""

    rows: Tensor  # (F,) int64 rows of ``splats`` in face-vertex order
    num_splats: int


class Trainer:
    """Runs the optimisation for one avatar.

    Args:
        config: the resolved ``CreateConfig``.
        prior: a ``GuidancePrior`` (Arc2Face ISM, or the oracle); called as
            ``prior(renders (B,3,H,W), cameras, GuidanceContext(...))``.
        setup: the template (for the face-Laplacian connectivity).
        splats: the initial (mean-face fitted) splats, on ``device``.
        out_dir: where checkpoints and the log go.
        device: torch device of the run.
        timer: a ``StageTimer`` for per-stage times (the benchmark harness); none by default.
    """

    def __init__(
        self,
        config: CreateConfig,
        prior: GuidancePrior,
        setup: HeadSetup,
        splats: GaussianSplats,
        out_dir: Path,
        device: torch.device,
        *,
        progress: bool = True,
        hooks: TrainerHooks = TrainerHooks(),
        max_bad_steps: int = 20,
        timer: Timer = NULL_TIMER,
    ) -> None:
        self.config = config
        self.prior = prior
        self.setup = setup
        self.out_dir = Path(out_dir)
        self.device = device
        self.progress = progress
        self.hooks = hooks
        self.max_bad_steps = max_bad_steps
        self.timer = timer
        self._writer: ThreadPoolExecutor | None = None
        self._pending_write: Future | None = None
        self.face_phase_iterations = int(round(config.face_phase_fraction * config.iterations))
        self.laplacian = uniform_laplacian(setup.upsampled.face_triangles(), int(setup.upsampled.head.face_mask.sum())).to(device)
        self.state = self._fresh_state(splats)
        self._face_index: FaceIndex | None = None
        self._frozen: tuple[int, Tensor | None] | None = None  # (splat count, frozen_rows)

    # ------------------------------------------------------------------ state and checkpoints
    def _fresh_state(self, splats: GaussianSplats) -> TrainerState:
        optimizer = make_optimizer(splats, self.config.optim)
        densifier = MaskedDensifier(self.config.densify, max_steps=self.config.iterations)
        return TrainerState(
            iteration=0,
            splats=splats,
            optimizer=optimizer,
            densifier=densifier,
            camera_generator=torch.Generator().manual_seed(self.config.seed),
            device_generator=torch.Generator(device=self.device).manual_seed(self.config.seed + 1),
        )

    @property
    def checkpoint_path(self) -> Path:
        return self.out_dir / CHECKPOINT_NAME

    @torch.no_grad()
    def write_progress_views(self) -> Path:
        """The eye-level ring of test views (8 azimuths, training resolution, white) as one PNG row,
        ``progress.png`` in the output folder: how the avatar looks while it is being made."""
        cfg, splats = self.config, self.state.splats
        cameras = test_ring_cameras(cfg.resolution, cfg.resolution, cfg.view_rings)[: cfg.view_rings.azimuths_per_ring]
        background = torch.ones(len(cameras), 3, device=self.device)
        out = rasterize(splats.means, splats.rotations, splats.scales, splats.opacities, splats.colors,
                        cameras.to(self.device), background)
        return write_sheet(out.rgb.clamp(0, 1).cpu(), self.out_dir / PROGRESS_NAME, columns=len(cameras))

    def save_checkpoint(self, wait: bool = True) -> Path:
        """Write the state atomically; ``wait=False`` copies it to the host and writes it on a
        background thread (the optimisation goes on meanwhile)."""
        s = self.state
        payload = _to_host({
            "version": CHECKPOINT_VERSION,
            "iteration": s.iteration,
            "splats": {k: v.detach() for k, v in s.splats.to_tensors().items()},
            "optimizer": s.optimizer.state_dict(),
            "densifier": None if s.densifier.stats is None else dict(s.densifier.stats),
            "camera_generator": s.camera_generator.get_state(),
            "device_generator": s.device_generator.get_state(),
            "skipped_steps": s.skipped_steps,
            "bad_in_a_row": s.bad_in_a_row,
            "elapsed_s": s.elapsed_s,
        })
        self.wait_for_writes()
        if wait:
            _write_checkpoint(payload, self.checkpoint_path)
        else:
            if self._writer is None:
                self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="checkpoint")
            self._pending_write = self._writer.submit(_write_checkpoint, payload, self.checkpoint_path)
        return self.checkpoint_path

    def wait_for_writes(self) -> None:
        """Block until a background checkpoint write has finished (re-raising its error)."""
        pending, self._pending_write = self._pending_write, None
        if pending is not None:
            pending.result()

    def load_checkpoint(self, path: Path | None = None) -> int:
        """Restore the state saved by ``save_checkpoint``; returns the iteration reached."""
        path = self.checkpoint_path if path is None else Path(path)
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # noqa: BLE001 - any unreadable checkpoint is the user's file problem
            raise Arc2AvatarError(f"cannot read checkpoint {path}: {error_line(error, limit=200)}; "
                                  "delete it to start over") from None
        if not isinstance(payload, dict):
            raise Arc2AvatarError(f"checkpoint {path} is not an arc2avatar checkpoint; delete it to start over")
        if payload.get("version") != CHECKPOINT_VERSION:
            raise Arc2AvatarError(f"checkpoint {path} has format {payload.get('version')}, expected {CHECKPOINT_VERSION}")
        try:
            iteration = self._restore(payload, path)
        except Arc2AvatarError:
            raise
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError, IndexError) as error:
            raise Arc2AvatarError(f"checkpoint {path} is malformed ({type(error).__name__}: "
                                  f"{error_line(error, limit=200)}); delete it to start over") from None
        truncate_log(self.out_dir / LOG_NAME, iteration)
        return iteration

    def _restore(self, payload: dict[str, Any], path: Path) -> int:
        tensors = payload["splats"]
        if not isinstance(tensors, dict) or not all(isinstance(v, Tensor) for v in tensors.values()):
            raise TypeError("its splats are not a mapping of tensors")
        splats = GaussianSplats.from_tensors(tensors)
        check_splat_values(splats.to_tensors(), f"checkpoint {path}")
        splats = splats.to(self.device)
        state = self._fresh_state(splats)
        state.optimizer.load_state_dict(payload["optimizer"])
        if payload["densifier"] is not None:
            state.densifier.stats = {k: v.to(self.device) for k, v in payload["densifier"].items()}
        state.camera_generator.set_state(payload["camera_generator"])
        state.device_generator.set_state(payload["device_generator"].cpu())  # a CPU ByteTensor for any device
        state.iteration = int(payload["iteration"])
        if not 0 <= state.iteration <= self.config.iterations:
            raise ValueError(f"iteration {state.iteration} is outside 0..{self.config.iterations}")
        state.skipped_steps = int(payload["skipped_steps"])
        state.bad_in_a_row = int(payload["bad_in_a_row"])
        state.elapsed_s = float(payload["elapsed_s"])
        self.state = state
        self._face_index = self._frozen = None
        return state.iteration

    # ------------------------------------------------------------------ the loop
    def run(self, stop_after: int | None = None, checkpoint_at_stop: bool = True) -> GaussianSplats:
        """Optimise until ``config.iterations`` (or until ``stop_after``, for tests of resume and
        benchmark windows; ``checkpoint_at_stop=False`` skips the checkpoint written there)."""
        from tqdm.auto import tqdm

        cfg = self.config
        last = cfg.iterations if stop_after is None else min(stop_after, cfg.iterations)
        logger = JsonlLogger(self.out_dir / LOG_NAME)
        bar = tqdm(total=cfg.iterations, initial=self.state.iteration, desc="avatar", unit="it",
                   disable=not self.progress, dynamic_ncols=True)
        try:
            with _stop_signals() as stop:
                while self.state.iteration < last:
                    started = time.perf_counter()
                    record = self.step(self.state.iteration + 1)
                    self.state.elapsed_s += time.perf_counter() - started
                    bar.update(1)
                    bar.set_postfix(splats=self.state.splats.num_splats, phase=record["phase"], refresh=False)
                    it = self.state.iteration
                    if it % cfg.log_every == 0 or it == last:
                        with self.timer.stage("io"):
                            record = _to_log_values(record)
                            record["elapsed_s"] = round(self.state.elapsed_s, 3)
                            logger.log(record)
                        if self.hooks.on_log is not None:
                            self.hooks.on_log(record)
                    if cfg.checkpoint_every and it % cfg.checkpoint_every == 0 and it < cfg.iterations:
                        with self.timer.stage("io"):
                            self.save_checkpoint(wait=False)
                    if cfg.test_every and it % cfg.test_every == 0 and it < cfg.iterations:
                        with self.timer.stage("io"):
                            self.write_progress_views()
                    if stop.is_set():
                        path = self.save_checkpoint()
                        raise TrainingInterrupted(f"interrupted at iteration {it}; checkpoint {path} written",
                                                  checkpoint=path, iteration=it)
        finally:
            bar.close()
            logger.close()
            self.wait_for_writes()
            if self._writer is not None:
                self._writer.shutdown(wait=True)
                self._writer = None
        if self.state.iteration < cfg.iterations and checkpoint_at_stop:
            self.save_checkpoint()
        return self.state.splats

    def phase(self, iteration: int) -> str:
        return "face" if iteration <= self.face_phase_iterations else "head"

    def sample_cameras(self, iteration: int) -> Cameras:
        cfg, gen = self.config, self.state.camera_generator
        size = cfg.resolution
        if self.phase(iteration) == "face":
            cams = sample_face_phase(cfg.face_cameras, gen, size, size, cfg.views_per_step)
        elif cfg.sampler == "paper":
            cams = sample_paper(cfg.cameras, iteration, gen, size, size, cfg.views_per_step)
        else:
            cams = sample_release(cfg.cameras, iteration, gen, size, size, cfg.views_per_step)
        return cams.to(self.device, non_blocking=True)

    def sample_backgrounds(self, count: int) -> Tensor:
        """(count, 3) training backgrounds: white, or with p = 0.66 a random colour (½) or black (½)."""
        aug, gen = self.config.augment, self.state.camera_generator
        base = torch.tensor(aug.background, dtype=torch.float32).expand(count, 3).clone()
        replace = torch.rand(count, generator=gen) < aug.background_replace_prob
        random_color = torch.rand(count, generator=gen) < aug.random_color_fraction
        colors = torch.rand(count, 3, generator=gen)
        replaced = torch.where(random_color[:, None], colors, torch.zeros_like(colors))
        return torch.where(replace[:, None], replaced, base).to(self.device, non_blocking=True)

    def face_index(self) -> FaceIndex:
        splats = self.state.splats
        if self._face_index is None or self._face_index.num_splats != splats.num_splats:
            rows = splats.face_mask.nonzero().squeeze(-1)
            order = torch.argsort(splats.vertex_index[rows])
            self._face_index = FaceIndex(rows=rows[order], num_splats=splats.num_splats)
        return self._face_index

    def frozen_rows(self) -> Tensor | None:
        """(N,) bool: the splats bound to a vertex of ``config.losses.frozen_regions`` (they keep
        their initial values; ``LossWeights.frozen_regions``), or None when there are none.
        Found once per splat set (like ``face_index``), not every step."""
        splats = self.state.splats
        if self._frozen is None or self._frozen[0] != splats.num_splats:
            self._frozen = (splats.num_splats, self._find_frozen_rows(splats))
        return self._frozen[1]

    def _find_frozen_rows(self, splats: GaussianSplats) -> Tensor | None:
        regions = self.setup.upsampled.head.regions
        names = [name for name in self.config.losses.frozen_regions if name in regions]
        if not names:
            return None
        vertices = torch.zeros_like(regions[names[0]], dtype=torch.bool)
        for name in names:
            vertices |= regions[name]
        vertices = vertices.to(self.device)
        bound = splats.vertex_index >= 0
        rows = torch.zeros_like(bound)
        rows[bound] = vertices[splats.vertex_index[bound]]
        return rows if bool(rows.any()) else None

    def step(self, iteration: int) -> dict[str, Any]:
        """One iteration; returns its log record (values may be 0-dim tensors: ``_to_log_values``)."""
        cfg, state, timer = self.config, self.state, self.timer
        splats, optimizer = state.splats, state.optimizer
        phase = self.phase(iteration)
        update_learning_rates(optimizer, iteration, cfg.optim)
        cameras = self.sample_cameras(iteration)
        backgrounds = self.sample_backgrounds(len(cameras))

        jitter = torch.randn(splats.num_splats, 3, generator=state.device_generator, device=self.device)
        scales = (splats.scales * (1.0 + cfg.augment.scale_jitter_std_ratio * jitter)).clamp_min(0.0)
        face = self.face_index()
        rows = face.rows if phase == "face" else None
        pick = (lambda t: t[rows]) if rows is not None else (lambda t: t)
        with timer.stage("render"):
            out = rasterize(
                pick(splats.means), pick(splats.rotations), pick(scales), pick(splats.opacities), pick(splats.colors),
                cameras, backgrounds,
            )
        renders = out.rgb.permute(0, 3, 1, 2)  # (B, 3, H, W)
        # The backward is split here: guidance (→ VAE backward) first, then the renderer.
        renders_in = renders.detach().requires_grad_(True)
        context = GuidanceContext(state.device_generator, state.camera_generator, backgrounds, phase, timer)
        guidance = self.prior(renders_in, cameras, context)
        with timer.stage("vae_backward"):
            guidance.loss.backward()
        with timer.stage("losses"):
            fovx = cameras.fovy  # square images
            disp = disparity(out.depth.permute(0, 3, 1, 2), out.alpha.permute(0, 3, 1, 2), fovx)
            means_face = splats.means[face.rows]
            anchors_face = splats.anchors[face.rows]
            reg = regularisation_losses(
                cfg.losses,
                rgb_bchw=renders,
                disparity_b1hw=disp,
                scales=pick(scales),
                means_face=means_face,
                anchors_face=anchors_face,
                laplacian_fn=lambda x, x0: laplacian_loss(x, x0, self.laplacian),
            )
        with timer.stage("render_backward"):
            through_renders = reg.total
            if renders_in.grad is not None:
                through_renders = through_renders + (renders * renders_in.grad).sum()
            through_renders.backward()
        loss = guidance.loss.detach() + reg.total.detach()

        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        finite = bool(torch.stack([torch.isfinite(loss), *(torch.isfinite(g).all() for g in grads)]).all())
        report = None
        if finite:
            state.bad_in_a_row = 0
            if phase == "head":
                with timer.stage("densify"):
                    state.densifier.accumulate(out.means2d.grad, out.radii, cameras.width, cameras.height)
                    report = state.densifier.step(iteration, splats, optimizer, state.device_generator)
                if report.topology_changed:
                    self._face_index = self._frozen = None
            with timer.stage("optimizer"):
                if cfg.losses.freeze_face_xyz:
                    zero_rows(splats, optimizer, self.face_index().rows, names=("means",))
                frozen = self.frozen_rows()
                if frozen is not None:
                    zero_rows(splats, optimizer, frozen, names=tuple(splats.params))
                optimizer.step()
        else:
            state.skipped_steps += 1
            state.bad_in_a_row += 1
            state.iteration = iteration
            if state.bad_in_a_row >= self.max_bad_steps:
                raise TrainingAborted(
                    f"{state.bad_in_a_row} non-finite steps in a row at iteration {iteration}: the optimisation "
                    "diverged (try a lower learning rate or guidance scale, or report a bug with log.jsonl)"
                )
        optimizer.zero_grad(set_to_none=True)
        state.iteration = iteration
        record: dict[str, Any] = {
            "iteration": iteration,
            "phase": phase,
            "loss_total": loss if finite else None,
            "guidance_grad_norm": guidance.grad_norm,
            "timestep": guidance.timestep,
            **{f"loss_{k}": getattr(reg, k) for k in REG_TERMS},
            "splats": splats.num_splats,
            "skipped_steps": state.skipped_steps,
            "backend": out.backend,
        }
        if report is not None and report.events:
            record["densify"] = report.as_dict()
        return record


def _to_log_values(record: dict[str, Any]) -> dict[str, Any]:
    """The record with every tensor read as a Python number (this is where the host waits)."""
    return {k: (float(v.detach()) if isinstance(v, Tensor) else v) for k, v in record.items()}


def _to_host(value: Any) -> Any:
    """A copy of a nested checkpoint payload with every tensor on the CPU (detached, cloned)."""
    if isinstance(value, Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        return {k: _to_host(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_host(v) for v in value)
    return value


def _write_checkpoint(payload: dict[str, Any], path: Path) -> None:
    """Write atomically; a full disk (torch reports a RuntimeError, the OS an OSError) is one
    ``Arc2AvatarError`` and the previous checkpoint stays as it was (the temp file is removed)."""
    try:
        with atomic_path(path) as tmp:
            torch.save(payload, tmp)
    except (OSError, RuntimeError) as error:
        raise Arc2AvatarError(f"cannot write checkpoint {path} ({error_line(error, limit=200)}); is the disk full or "
                              "read-only? The previous checkpoint is kept: free space, then --resume") from None


def truncate_log(path: Path, iteration: int) -> None:
    """Keep only the records of ``path`` (JSON lines) up to ``iteration``, atomically: a resumed run
    repeats the iterations after its checkpoint, so their records (and a half-written last
    line of a killed run) are dropped instead of appearing twice."""
    if not path.is_file():
        return
    kept: list[str] = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and isinstance(record.get("iteration"), int) and record["iteration"] > iteration:
            continue
        kept.append(line)
    atomic_write_text(path, "".join(f"{line}\n" for line in kept))


@contextmanager
def _stop_signals() -> Iterator[threading.Event]:
    """Turn SIGINT/SIGTERM into a flag checked after each iteration (main thread only)."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def handler(signum: int, frame: Any) -> None:  # noqa: ARG001
        if stop.is_set():  # a second Ctrl-C stops at once
            raise KeyboardInterrupt
        stop.set()

    for sig in previous:
        signal.signal(sig, handler)
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


__all__ = ["CHECKPOINT_NAME", "Trainer", "TrainerHooks", "TrainingAborted", "TrainingInterrupted"]
