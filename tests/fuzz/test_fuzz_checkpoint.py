"""Fuzz: checkpoints for ``--resume`` (``Trainer.load_checkpoint``): read with ``weights_only=True``
(a pickle payload runs nothing), malformed contents are one line naming the file."""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import given, strategies as st

from arc2avatar.pipeline.oracle import OraclePrior, default_target
from arc2avatar.pipeline.presets import resolve_config
from arc2avatar.avatar.template import build_head
from arc2avatar.pipeline.meanface import initial_splats
from arc2avatar.pipeline.trainer import Trainer
from arc2avatar.prior.latents import RgbLatentEncoder

from fuzz_support import FUZZ, FUZZ_FEW, cli, assert_read_or_refused, assert_refused, scratch

TINY = ["resolution=32", "rgb_latent_resolution=16", "iterations=8", "template.face_levels=0", "template.rest_levels=0"]


@pytest.fixture(scope="module")
def trainer(tmp_path_factory):
    config = resolve_config("cpu-smoke", None, TINY)
    setup = build_head(config.template)
    prior = OraclePrior(default_target(setup.upsampled.head), config.prior, RgbLatentEncoder((16, 16)))
    out = tmp_path_factory.mktemp("ckpt")
    made = Trainer(config, prior, setup, initial_splats(setup, config.splat_init), out, torch.device("cpu"), progress=False)
    made.save_checkpoint()
    return made


@pytest.fixture(scope="module")
def good(trainer):
    return torch.load(trainer.checkpoint_path, weights_only=True)


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _load(trainer):
    return lambda path: trainer.load_checkpoint(path)


def test_a_pickle_payload_in_a_checkpoint_runs_nothing(trainer, tmp_path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "checkpoint.pt"
    torch.save({"version": 1, "splats": _Payload(marker)}, path)
    assert_refused(_load(trainer), path, match="cannot read checkpoint")
    assert not marker.exists()


def _edited(good, **changes):
    payload = dict(good)
    payload.update(changes)
    return payload


def _splats_with(good, name, fill):
    splats = {k: v.clone() for k, v in good["splats"].items()}
    splats[name][0] = fill
    return splats


CASES = {
    "not_a_dict": lambda g: [1, 2, 3],
    "wrong_version": lambda g: _edited(g, version=7),
    "missing_splats": lambda g: {k: v for k, v in g.items() if k != "splats"},
    "splats_not_tensors": lambda g: _edited(g, splats={"means": [1, 2]}),
    "nan_splats": lambda g: _edited(g, splats=_splats_with(g, "means", float("nan"))),
    "zero_quaternion": lambda g: _edited(g, splats=_splats_with(g, "quats", 0.0)),
    "iteration_beyond": lambda g: _edited(g, iteration=10**9),
    "iteration_negative": lambda g: _edited(g, iteration=-1),
    "optimizer_garbage": lambda g: _edited(g, optimizer={"state": 3}),
    "generator_garbage": lambda g: _edited(g, camera_generator=torch.zeros(3)),
    "elapsed_text": lambda g: _edited(g, elapsed_s="soon"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_malformed_checkpoints_are_one_line(trainer, good, tmp_path, name) -> None:
    path = tmp_path / "checkpoint.pt"
    torch.save(CASES[name](good), path)
    assert_refused(_load(trainer), path, names="checkpoint.pt")


@FUZZ
@given(body=st.binary(max_size=400), prefix=st.sampled_from([b"", b"PK\x03\x04", b"\x80\x02"]))
def test_random_bytes(trainer, body, prefix) -> None:
    with scratch() as folder:
        path = folder / "checkpoint.pt"
        path.write_bytes(prefix + body)
        assert_refused(_load(trainer), path)


@FUZZ_FEW
@given(key=st.sampled_from(["iteration", "skipped_steps", "bad_in_a_row", "elapsed_s", "densifier", "device_generator"]),
       value=st.one_of(st.none(), st.integers(-10**20, 10**20), st.floats(), st.text(max_size=3),
                       st.builds(torch.zeros, st.integers(0, 4))))
def test_any_value_for_a_field(trainer, good, key, value) -> None:
    with scratch() as folder:
        path = folder / "checkpoint.pt"
        torch.save(_edited(good, **{key: value}), path)
        assert_read_or_refused(_load(trainer), path)


def test_cli_resume_from_a_tampered_checkpoint(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("ARC2AVATAR_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "out"
    out.mkdir()
    (out / "config.yaml").write_text("preset: cpu-smoke\n")
    marker = tmp_path / "pwned"
    torch.save({"version": 1, "splats": _Payload(marker)}, out / "checkpoint.pt")
    code, err = cli(["demo", "-o", str(out), "--resume", "--no-progress"], capsys)
    assert code == 1 and "checkpoint.pt" in err and not marker.exists()
