"""Claims about the pipeline config system, presets and schedule rescaling."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import pytest
import yaml

from arc2avatar.errors import InputError
from arc2avatar.confkit import apply_overrides, dump_yaml, field_docs, from_dict, get_value, load_yaml, save_yaml, to_dict
from arc2avatar.pipeline.config import CreateConfig, LossWeights
from arc2avatar.pipeline.presets import (
    PRESETS,
    REFERENCE_ITERATIONS,
    SCHEDULE_PATHS,
    preset_config,
    rescale_schedules,
    resolve_config,
)


def test_overrides_parse_yaml_values_into_typed_fields():
    cfg = apply_overrides(CreateConfig(), [
        "iterations=1500",
        "losses.face_position=1e7",  # YAML 1.1 would read this as a string
        "augment.background=[0, 0.5, 1]",
        "template.kind=flame",
        "template.flame_path=/models/flame2023_Open.pkl",
        "losses.freeze_face_xyz=true",
        "device=cuda:1",
    ])
    assert cfg.iterations == 1500
    assert cfg.losses.face_position == 1e7 and isinstance(cfg.losses.face_position, float)
    assert cfg.augment.background == (0.0, 0.5, 1.0)
    assert cfg.template.flame_path == "/models/flame2023_Open.pkl"
    assert cfg.losses.freeze_face_xyz is True
    assert cfg.device == "cuda:1"
    assert CreateConfig().iterations == 7000  # the input is never mutated


def test_unknown_key_names_the_key_and_suggests_the_nearest():
    with pytest.raises(InputError) as info:
        apply_overrides(CreateConfig(), ["losses.face_positon=1"])
    message = str(info.value)
    assert "losses.face_positon" in message and "face_position" in message and "--set" in message


@pytest.mark.parametrize("override, fragment", [
    ("iterations=many", "iterations must be an integer"),
    ("losses.scale=true", "losses.scale must be a number"),
    ("sampler=random", "one of 'paper', 'release'"),
    ("augment.background=[1, 1]", "list of 3"),
    ("template=3", "template must be a mapping"),
    ("seed.value=3", "seed is a single value"),
    ("no_equals_sign", "KEY=VALUE"),
    # a config's own validation (__post_init__) is a one-line InputError too, not a traceback
    ("accel.explicit_attention_above=-1", "--set: AccelConfig.explicit_attention_above must be"),
    ("accel.vae_inductor=[not a name]", "'not a name' is not an option name"),
])
def test_wrong_types_and_malformed_overrides_raise_input_error(override, fragment):
    with pytest.raises(InputError, match=fragment.replace("[", r"\[").replace("(", r"\(")):
        apply_overrides(CreateConfig(), [override])


def test_from_dict_rejects_unknown_keys_in_nested_groups_with_file_name():
    with pytest.raises(InputError, match=r"my\.yaml: unknown key 'meanface\.iteration'.*iterations"):
        from_dict(CreateConfig, {"meanface": {"iteration": 3}}, source="my.yaml")


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_yaml_round_trip_equals_the_config(tmp_path, preset):
    cfg = apply_overrides(resolve_config(preset), ["losses.face_laplacian=1e-15", "seed=7"])
    path = save_yaml(cfg, tmp_path / "config.yaml", header="resolved")
    assert from_dict(CreateConfig, load_yaml(path)) == cfg
    assert resolve_config(yaml_path=path) == cfg  # a resolved config reproduces its run exactly
    assert [p.name for p in tmp_path.iterdir()] == ["config.yaml"]  # no temporary left behind


def test_yaml_writes_every_documented_field_with_its_doc_as_comment():
    text = dump_yaml(CreateConfig())
    docs = field_docs(LossWeights)
    assert set(docs) == {f.name for f in dataclasses.fields(LossWeights)}
    lines = text.splitlines()
    i = lines.index("  face_position: 1.0e+8")
    assert lines[i - 1].startswith("  # ") and "1e8" in " ".join(lines[i - 3:i])
    for f in dataclasses.fields(CreateConfig):  # every top-level field documented
        j = next(k for k, line in enumerate(lines) if line.startswith(f"{f.name}:"))
        assert lines[j - 1].startswith("# "), f.name
    yaml.safe_load(text)  # plain YAML for any reader


def test_yaml_writer_falls_back_for_undocumented_foreign_dataclasses():
    @dataclass(frozen=True)
    class Foreign:  # no docstring at all, one field documented through metadata
        a: int = 1
        b: tuple[float, ...] = (0.5,)
        c: str = field(default="x", metadata={"doc": "from metadata"})

    @dataclass(frozen=True)
    class Holder:
        """Holder.

        Attributes:
            foreign, other: two groups
                described on two lines.
        """

        foreign: Foreign = field(default_factory=Foreign)
        other: Foreign = field(default_factory=Foreign)

    assert field_docs(Holder) == {"foreign": "two groups described on two lines.",
                                  "other": "two groups described on two lines."}
    text = dump_yaml(Holder())
    assert "  a: 1" in text and "  # from metadata" in text
    assert from_dict(Holder, yaml.safe_load(text)) == Holder()


def test_load_yaml_errors_name_the_file(tmp_path):
    missing = tmp_path / "missing.yaml"
    with pytest.raises(InputError, match="missing.yaml does not exist"):
        load_yaml(missing)
    broken = tmp_path / "broken.yaml"
    broken.write_text("iterations: [1, 2\n")
    with pytest.raises(InputError, match=r"broken.yaml is not valid YAML at line \d"):
        load_yaml(broken)
    listing = tmp_path / "list.yaml"
    listing.write_text("- 1\n- 2\n")
    with pytest.raises(InputError, match="list.yaml must hold a mapping"):
        load_yaml(listing)


def test_resolution_order_is_preset_then_yaml_then_set(tmp_path):
    path = tmp_path / "user.yaml"
    path.write_text("iterations: 3000\nseed: 5\nlosses:\n  tv_rgb: 2.0\n")
    cfg = resolve_config("fast", path, ["seed=9"])
    assert cfg.preset == "fast"
    assert cfg.iterations == 3000  # YAML over preset
    assert cfg.seed == 9  # --set over YAML
    assert cfg.losses.tv_rgb == 2.0
    assert cfg.meanface.iterations == PRESETS["fast"].overrides["meanface.iterations"]


def test_conflicting_preset_names_and_set_preset_are_refused(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("preset: fast\n")
    assert resolve_config(yaml_path=path).preset == "fast"
    with pytest.raises(InputError, match="says preset 'fast'"):
        resolve_config("paper", path)
    with pytest.raises(InputError, match="--preset"):
        resolve_config("paper", overrides=["preset=fast"])
    with pytest.raises(InputError, match="unknown preset 'quick'.*paper"):
        resolve_config("quick")


def test_presets_resolve_and_differ_as_documented():
    paper, release, fast, smoke = (resolve_config(n) for n in ("paper", "release", "fast", "cpu-smoke"))
    assert paper == dataclasses.replace(CreateConfig(), preset="paper")  # defaults are the paper
    assert (paper.sampler, release.sampler) == ("paper", "release")
    assert paper.face_phase_fraction == 0.1 and release.face_phase_fraction == 0.0
    assert get_value(paper, "densify.prune_below_face_every") is None
    assert get_value(release, "densify.prune_below_face_every") == 100
    assert get_value(paper, "densify.late") is not None and get_value(release, "densify.late") is None
    assert 800 <= fast.iterations <= 2500 and fast.resolution == 512
    assert fast.prior.delta_s == 4 * paper.prior.delta_s  # the fast preset's cheaper inversion
    assert paper.accel.compile == "default" and fast.accel.compile == "none"
    assert 300 <= smoke.iterations <= 600 and smoke.resolution == 128
    assert smoke.latent_encoder == "rgb" and smoke.device == "cpu"
    assert smoke.template.face_levels < paper.template.face_levels
    for cfg in (paper, release, fast, smoke):  # same losses in every preset
        assert cfg.losses == LossWeights()


def test_schedule_rescaling_is_proportional_to_iterations():
    base = preset_config("paper")
    scaled = rescale_schedules(base, 700)
    assert scaled.checkpoint_every == 100 and scaled.test_every == 100
    rescaled_any = False
    for path in SCHEDULE_PATHS:
        try:
            before = get_value(base, path)
        except KeyError:
            continue
        if before is not None:
            assert get_value(scaled, path) == max(1, round(before * 700 / REFERENCE_ITERATIONS)), path
            rescaled_any = True
    assert rescaled_any
    assert rescale_schedules(base, REFERENCE_ITERATIONS) == base


def test_schedules_follow_iterations_unless_set_explicitly():
    smoke = resolve_config("cpu-smoke")
    assert smoke.checkpoint_every == round(1000 * smoke.iterations / REFERENCE_ITERATIONS)
    custom = resolve_config("paper", overrides=["iterations=3500", "test_every=10"])
    assert custom.test_every == 10  # explicit: untouched
    assert custom.checkpoint_every == 500  # follows the run length
    if dataclasses.is_dataclass(custom.densify):
        assert custom.densify.densify_until == 1400 and custom.optim.max_steps == 3500


def test_schedule_table_names_real_fields():
    cfg = preset_config("paper")
    rescale_schedules(cfg, 123)  # raises if a path names a field a dataclass lacks
    with pytest.raises(ValueError, match="does not have"):
        rescale_schedules(cfg, 123, paths=("losses.densify_every",))


def test_validation_reports_invalid_combinations():
    with pytest.raises(InputError, match="flame_path"):
        resolve_config("paper", overrides=["template.kind=flame"])
    with pytest.raises(InputError, match="multiple of 4"):
        resolve_config("paper", overrides=["views_per_step=3"])
    assert resolve_config("release", overrides=["views_per_step=3"]).views_per_step == 3
    with pytest.raises(InputError, match="multiple of 8"):
        resolve_config("paper", overrides=["resolution=100"])
    with pytest.raises(InputError, match=r"densify\.grad_threshold must be > 0.*densify\.reset_max_opacity must be in"):
        resolve_config("paper", overrides=["densify.grad_threshold=-1", "densify.reset_max_opacity=0"])


def test_to_dict_is_plain_data():
    data = to_dict(CreateConfig())
    assert yaml.safe_load(yaml.safe_dump(data)) == data
