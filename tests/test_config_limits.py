"""Settings that used to pass validation and crash later are refused up front, in one line (issue 19)."""

from __future__ import annotations

import pytest

from arc2avatar.cli.main import main
from arc2avatar.errors import InputError
from arc2avatar.confkit import nonfinite_fields
from arc2avatar.pipeline.config import CreateConfig
from arc2avatar.pipeline.presets import resolve_config


@pytest.mark.parametrize("setting", [
    "view_rings.turntable_frames=0", "seed=99999999999999999999999", "seed=-1", "optim.eps=nan",
    "splat_init.knn_neighbours=-3", "meanface.views_per_step=0", "view_rings.fovy=nan", "view_rings.fovy=.inf",
    "prior.cfg_scale=nan", "cameras.fovy=[nan, 0.5]", "optim.means_lr_init=-1", "optim.betas=[1.5, 0.9]",
    "template.face_levels=12", "meanface.lr_scale=0", "splat_init.opacity=2",
    "iterations=1e400", "augment.background=[.nan, 1, 1]",
])
def test_a_setting_that_would_crash_later_is_refused_before_anything_is_written(tmp_path, capsys, setting) -> None:
    out = tmp_path / "out"
    code = main(["demo", "-o", str(out), "--no-progress", "--set", setting])
    err = capsys.readouterr().err
    assert code == 1, err
    assert err.startswith("arc2avatar: error:") and len(err.strip().splitlines()) == 1, err
    assert not out.exists()


def test_every_float_field_is_checked_for_finiteness() -> None:
    assert nonfinite_fields(CreateConfig()) == []
    config = resolve_config("cpu-smoke", None, [])
    import dataclasses

    broken = dataclasses.replace(config, face_phase_fraction=float("nan"))
    assert nonfinite_fields(broken) == ["face_phase_fraction must be a finite number (got nan)"]


@pytest.mark.parametrize("text", ["smile=nan", "smile=inf", "smile=-inf", "smile=1e400"])
def test_express_weights_must_be_finite(text) -> None:
    from arc2avatar.avatar.rig import parse_assignments

    with pytest.raises(InputError, match="finite"):
        parse_assignments(text)


def test_express_weights_beyond_the_bound_are_refused() -> None:
    from arc2avatar.head.builtin import builtin_head
    from arc2avatar.avatar.rig import expression_coefficients

    head = builtin_head()
    name = head.expression_names[0]
    with pytest.raises(InputError, match="within"):
        expression_coefficients(head, {name: 1e6})
    assert float(expression_coefficients(head, {name: 0.5}).abs().max()) == 0.5
