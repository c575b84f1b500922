"""Claims about the prior seam (issue 25.4): a prior written outside the library, registered by
name or passed as an object, runs through ``create`` without editing the library; unknown names
fail before anything is written; the oracle goes through the same door."""

from __future__ import annotations

import pytest
import torch

from arc2avatar.cameras.model import Cameras
from arc2avatar.confkit import load_yaml
from arc2avatar.errors import InputError
from arc2avatar.pipeline.api import create
from arc2avatar.pipeline.meanface import fit_mean_face_for_run
from arc2avatar.pipeline.presets import resolve_config
from arc2avatar.pipeline.priors import PRIORS, PriorFactory, PriorInputs
from arc2avatar.prior.guidance import GuidanceContext, GuidanceOutput
from arc2avatar.avatar.template import build_head

# A small run: 32² renders, the unsubdivided built-in head, all schedules rescaled.
TINY = ["resolution=32", "meanface.resolution=32", "meanface.iterations=20", "meanface.head_iterations=20",
        "rgb_latent_resolution=16", "view_rings.turntable_frames=2", "outputs.size=32", "log_every=5",
        "checkpoint_every=50", "outputs.video_fps=2"]
RED = (1.0, 0.0, 0.0)


class RedPrior:
    """A trivial ``GuidancePrior``: its loss pulls every render towards pure red."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, renders: torch.Tensor, cameras: Cameras, context: GuidanceContext = GuidanceContext()) -> GuidanceOutput:
        self.calls += 1
        red = torch.tensor(RED, device=renders.device).view(1, 3, 1, 1)
        loss = 100.0 * ((renders - red) ** 2).mean()
        return GuidanceOutput(loss=loss, grad_norm=float(loss.detach()), timestep=0)


def _redness(colors: torch.Tensor) -> float:
    return float((colors[:, 0] - colors[:, 1:].mean(dim=1)).mean().detach())


@pytest.fixture(scope="module")
def _module_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")  # one mean-face fit for the module's runs (same settings)


@pytest.fixture(autouse=True)
def _private_cache(_module_cache, monkeypatch):
    monkeypatch.setenv("ARC2AVATAR_CACHE", str(_module_cache))


def test_a_prior_registered_by_name_runs_through_create_and_its_loss_moves_the_splats(tmp_path):
    built: list[PriorInputs] = []
    made: list[RedPrior] = []

    def build(inputs: PriorInputs) -> RedPrior:
        built.append(inputs)
        made.append(RedPrior())
        return made[-1]

    settings = [*TINY, "iterations=12", "guidance=red"]  # the config selects the new name
    result = create([], tmp_path / "out", priors={"red": PriorFactory(build)}, preset="cpu-smoke", overrides=settings,
                    progress=False)
    assert made[0].calls >= 12 and built[0].identity is None and built[0].photos == ()
    assert load_yaml(tmp_path / "out" / "config.yaml")["guidance"] == "red"
    assert "heldout" not in result.metrics and (tmp_path / "out" / "avatar.ply").is_file()
    config = resolve_config("cpu-smoke", None, settings)
    start, _ = fit_mean_face_for_run(build_head(config.template), config)  # cached: the run's own start
    assert _redness(result.avatar.splats.colors) > _redness(start.colors) + 0.01  # +0.046 after 30 steps


def test_a_prior_object_runs_through_create_and_unknown_names_fail_before_any_write(tmp_path):
    with pytest.raises(InputError, match="unknown prior 'nope'; known priors: arc2face, oracle"):
        create([], tmp_path / "none", prior="nope", preset="cpu-smoke", progress=False)
    with pytest.raises(InputError, match="no photo given"):  # arc2face needs the person's photos
        create([], tmp_path / "none", preset="cpu-smoke", progress=False)
    assert not (tmp_path / "none").exists()
    assert sorted(PRIORS) == ["arc2face", "oracle"] and PRIORS["arc2face"].needs_identity
    prior = RedPrior()
    create([], tmp_path / "obj", prior=prior, preset="cpu-smoke", overrides=[*TINY, "iterations=12"], progress=False)
    assert prior.calls >= 12 and (tmp_path / "obj" / "metrics.json").is_file()
