"""Claims about the whole optimisation (issue 4): it rebuilds an oracle target, resumes exactly,
survives non-finite steps, stops cleanly on SIGINT, and refuses bad input before doing anything."""

from __future__ import annotations

import os
from dataclasses import replace
import signal
from pathlib import Path

import pytest
import torch

from arc2avatar.cli.main import main
from arc2avatar.pipeline.api import demo
from arc2avatar.pipeline.oracle import OraclePrior, default_target
from arc2avatar.pipeline.presets import resolve_config
from arc2avatar.avatar.template import build_head
from arc2avatar.pipeline.meanface import fit_mean_face, initial_splats
from arc2avatar.pipeline.trainer import Trainer, TrainerHooks, TrainingAborted, TrainingInterrupted
from arc2avatar.prior.guidance import GuidanceOutput
from arc2avatar.prior.latents import RgbLatentEncoder

# A small but complete run: 64² renders, the unsubdivided built-in head, all schedules rescaled.
SMALL = [
    "resolution=64", "meanface.resolution=64", "meanface.iterations=60", "meanface.head_iterations=60",
    "rgb_latent_resolution=32",
    "view_rings.turntable_frames=6", "outputs.size=64", "log_every=10", "checkpoint_every=50",
]


@pytest.fixture(scope="module")
def _module_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(autouse=True)
def _private_cache(_module_cache, monkeypatch):
    """One cache for this file's tests (never the user's): the runs with ``SMALL``'s mean face fit it
    once (about a minute on 2 cores) and read it after."""
    monkeypatch.setenv("ARC2AVATAR_CACHE", str(_module_cache))


@pytest.fixture(scope="module")
def small_setup():
    config = resolve_config("cpu-smoke", None, [*SMALL, "iterations=40"])
    setup = build_head(config.template)
    return config, setup


def _trainer(config, setup, out_dir: Path, prior=None) -> Trainer:
    target = default_target(setup.upsampled.head)
    prior = prior if prior is not None else OraclePrior(target, config.prior, RgbLatentEncoder((32, 32)))
    splats = initial_splats(setup, config.splat_init)
    return Trainer(config, prior, setup, splats, out_dir, torch.device("cpu"), progress=False)


def test_oracle_demo_rebuilds_the_held_out_views_of_the_target(tmp_path):
    result = demo(tmp_path / "out", overrides=[*SMALL, "iterations=160"], progress=False)
    heldout = result.metrics["heldout"]
    start = demo(tmp_path / "start", overrides=[*SMALL, "iterations=1"], progress=False).metrics["heldout"]
    assert heldout["num_views"] == 16
    assert heldout["psnr"] >= 17.0, heldout
    assert heldout["psnr"] >= start["psnr"] + 2.0  # the guidance, not the initialisation, did it
    assert result.metrics["correspondence"]["mean_fraction_of_height"] < 0.005
    for name in ("avatar.ply", "avatar/avatar.json", "views.png", "turntable.mp4", "config.yaml", "log.jsonl", "metrics.json"):
        assert (tmp_path / "out" / name).is_file(), name
    assert not (tmp_path / "out" / "checkpoint.pt").exists()


def test_resumed_run_ends_with_the_same_splats_as_an_uninterrupted_one(small_setup, tmp_path):
    config, setup = small_setup
    # 24 iterations: the face phase (the first 2), densification at 8 and 16 (one before the stop, one after)
    config = resolve_config("cpu-smoke", None, [*SMALL, "iterations=24", "face_phase_fraction=0.1",
                                                 "densify.densify_every=8", "densify.densify_from=8"])
    straight = _trainer(config, setup, tmp_path / "a").run()

    first = _trainer(config, setup, tmp_path / "b")
    first.run(stop_after=12)
    assert (tmp_path / "b" / "checkpoint.pt").is_file()
    second = _trainer(config, setup, tmp_path / "b")
    assert second.load_checkpoint() == 12
    resumed = second.run()

    assert resumed.num_splats == straight.num_splats
    for name, value in straight.to_tensors().items():
        other = resumed.to_tensors()[name]
        if value.is_floating_point():
            assert torch.allclose(value, other, atol=1e-5, rtol=0), name
        else:
            assert torch.equal(value, other), name


def test_training_keeps_the_lid_splats_as_made_and_the_frozen_regions_only(small_setup, tmp_path):
    # LossWeights.frozen_regions: the neutral views never show the lid shells, but their splats'
    # edges peek out beside the eyes; trained on, they took the eye's colours (a trained photo
    # demo blinked a dark smear, issue 24). The mouth's inside trains unless it is listed too.
    config, setup = small_setup
    head = setup.upsampled.head
    config = resolve_config("cpu-smoke", None, [*SMALL, "iterations=12", "face_phase_fraction=0.0"])
    before = initial_splats(setup, config.splat_init)
    for regions in (("eyelids",), ("eyelids", "mouth_interior"), ()):
        run = replace(config, losses=replace(config.losses, frozen_regions=regions))
        after = _trainer(run, setup, tmp_path / "-".join(regions or ("none",))).run()
        bound = after.vertex_index >= 0
        vertex = after.vertex_index[bound]
        count = int(bound.sum())
        changed = torch.zeros(count, dtype=torch.bool)
        for name in ("f_dc", "opacity_logits", "log_scales"):
            changed |= (after.params[name][bound] != before.params[name][vertex]).reshape(count, -1).any(-1)
        for region in ("eyelids", "mouth_interior"):
            on_region = changed[head.regions[region][vertex]]
            assert bool(on_region.any()) != (region in regions), (region, regions, int(on_region.sum()))
        skin = ~(head.regions["eyelids"] | head.regions["mouth_interior"])[vertex]
        assert bool(changed[skin].any()), regions  # the rest of the face trains


class _NaNPrior:
    """A prior whose loss turns non-finite from a given call on."""

    def __init__(self, good_calls: int) -> None:
        self.calls = 0
        self.good_calls = good_calls

    def __call__(self, renders, cameras, generator=None):
        self.calls += 1
        scale = 1.0 if self.calls <= self.good_calls else float("nan")
        return GuidanceOutput(loss=renders.mean() * scale, grad_norm=0.0, timestep=0)


def test_non_finite_steps_are_skipped_and_a_persistent_divergence_aborts(small_setup, tmp_path):
    config, setup = small_setup
    trainer = _trainer(config, setup, tmp_path, prior=_NaNPrior(good_calls=3))
    before = trainer.state.splats.detach_copy()
    trainer.max_bad_steps = 5
    with pytest.raises(TrainingAborted, match="non-finite"):
        trainer.run()
    assert trainer.state.skipped_steps == 5
    assert trainer.state.iteration == 3 + 5
    after = trainer.state.splats
    assert torch.isfinite(after.means).all() and torch.isfinite(after.opacity_logits if hasattr(after, "opacity_logits") else after.opacities).all()
    assert not torch.equal(before.colors, after.colors.detach())  # the 3 good steps did update


def test_sigint_writes_a_checkpoint_and_stops(small_setup, tmp_path):
    config, setup = small_setup
    trainer = _trainer(config, setup, tmp_path)
    trainer.hooks = TrainerHooks(on_log=lambda record: os.kill(os.getpid(), signal.SIGINT))
    with pytest.raises(TrainingInterrupted) as info:
        trainer.run()
    assert trainer.state.iteration == config.log_every
    assert info.value.checkpoint == tmp_path / "checkpoint.pt" and info.value.iteration == config.log_every  # for the CLI's message
    assert Trainer(config, trainer.prior, setup, initial_splats(setup), tmp_path, torch.device("cpu")).load_checkpoint() == config.log_every


def test_mean_face_fit_matches_the_mesh_render(small_setup, tmp_path):
    config, setup = small_setup
    meanface = type(config.meanface)(iterations=150, head_iterations=40, resolution=64, views_per_step=4, cache=True)
    splats, stats = fit_mean_face(setup, initial_splats(setup), meanface, config.face_cameras)
    assert stats["psnr"] >= 20.0, stats
    again, cached = fit_mean_face(setup, initial_splats(setup), meanface, config.face_cameras)
    assert cached["cached"] == 1.0
    assert torch.equal(again.means, splats.means)
    face = splats.face_mask
    vertices = setup.upsampled.head.vertices[splats.vertex_index[face]]
    assert (splats.means[face] - vertices).norm(dim=-1).mean() < 0.005 * setup.upsampled.head.height


def test_demo_with_a_missing_photo_fails_fast_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["demo", "-o", str(out), "--photo", str(tmp_path / "nope.jpg"), "--no-progress"])
    assert code == 1
    assert "nope.jpg" in capsys.readouterr().err
    assert not out.exists()


def test_unknown_config_key_fails_with_a_suggestion_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["demo", "-o", str(out), "--set", "iteratoins=5", "--no-progress"])
    assert code == 1
    assert "iterations" in capsys.readouterr().err
    assert not out.exists()


def test_create_without_weights_names_the_missing_files_and_writes_nothing(tmp_path, capsys):
    from PIL import Image

    photo = tmp_path / "me.png"
    Image.new("RGB", (64, 64), (200, 150, 120)).save(photo)
    out = tmp_path / "out"
    code = main(["create", str(photo), "-o", str(out), "--weights", str(tmp_path / "empty"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2
    assert "arcface.onnx" in err and "arc2face" in err
    assert not out.exists()


def test_a_finished_avatar_is_never_overwritten(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["demo", "-o", str(out), "--no-progress", *sum((["--set", s] for s in [*SMALL, "iterations=2"]), [])]) == 0
    stamp = (out / "avatar.ply").stat().st_mtime_ns
    assert main(["demo", "-o", str(out), "--no-progress"]) == 1
    assert "already holds" in capsys.readouterr().err
    assert (out / "avatar.ply").stat().st_mtime_ns == stamp
    assert main(["render", str(out), "--sheet", "--size", "48", "-o", str(tmp_path / "sheet.png")]) == 0
    assert (tmp_path / "sheet.png").stat().st_size > 0


def test_template_with_a_corrupt_flame_file_fails_with_one_message(tmp_path, capsys):
    bad = tmp_path / "generic_model.pkl"
    bad.write_bytes(b"not a pickle at all")
    out = tmp_path / "tpl"
    code = main(["template", "-o", str(out), "--flame", str(bad), "--no-progress"])
    assert code == 1
    err = capsys.readouterr().err
    assert "generic_model.pkl" in err and "Traceback" not in err
    assert not out.exists()


def test_a_resolution_beyond_the_cap_fails_in_one_line_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["demo", "-o", str(out), "--set", "resolution=100000", "--no-progress"]) == 1
    assert "resolution must be ≤ 2048" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("error", [
    torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB\n(details)"),
    RuntimeError("[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory: you tried"),
    MemoryError(),
])
def test_running_out_of_memory_is_one_line_naming_what_to_lower(error, tmp_path, capsys, monkeypatch):
    import arc2avatar.pipeline.api as api

    def out_of_memory(*args, **kwargs):
        raise error

    monkeypatch.setattr(api, "demo", out_of_memory)  # what `arc2avatar demo` calls
    assert main(["demo", "-o", str(tmp_path / "out"), "--no-progress"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("arc2avatar: error: out of memory") and "--set resolution" in err
    assert len(err.splitlines()) == 1


def test_other_runtime_errors_keep_their_traceback(tmp_path, monkeypatch):
    import arc2avatar.pipeline.api as api

    def bug(*args, **kwargs):
        raise RuntimeError("shape mismatch: a bug, not the user's doing")

    monkeypatch.setattr(api, "demo", bug)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        main(["demo", "-o", str(tmp_path / "out"), "--no-progress"])


def test_test_every_writes_the_eye_level_views_while_the_run_goes_on(tmp_path, small_setup):
    """``test_every`` renders the 8 eye-level test views to progress.png during the run (it was a
    setting that did nothing); 0 turns it off."""
    import numpy as np
    from PIL import Image

    config, setup = small_setup
    from dataclasses import replace

    trainer = _trainer(replace(config, test_every=10), setup, tmp_path / "on")
    trainer.run(stop_after=10, checkpoint_at_stop=False)
    with Image.open(tmp_path / "on" / "progress.png") as sheet:
        image = np.asarray(sheet.convert("RGB"))
    assert image.shape[0] < 2 * 64 and image.shape[1] >= 8 * 64  # one row of 8 views at the training size
    assert image.min() < 200 and image.max() == 255  # a head on white
    trainer = _trainer(replace(config, test_every=0), setup, tmp_path / "off")
    trainer.run(stop_after=10, checkpoint_at_stop=False)
    assert not (tmp_path / "off" / "progress.png").exists()
