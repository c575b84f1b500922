"""Claims about finding, checking and fetching weights (docs/method.md §1–§2, docs/method.md §2.5)."""

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file

from arc2avatar.cli.main import main
from arc2avatar.errors import MissingWeightsError
from arc2avatar.testing.identity_weights import write_tiny_arcface, write_tiny_scrfd
from arc2avatar.weights.integrity import check_file
from arc2avatar.weights.resolver import (
    COMPONENTS,
    WeightsConfig,
    check_weights,
    download_weights,
    resolve_weights,
)

ALL_CANONICAL = [f"{c.download_base}/{n}".lstrip("/") for c in COMPONENTS for n in c.files]


def _write_weight_file(path: Path) -> None:
    """A tiny but whole file of the right kind for ``path``'s suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".safetensors":
        save_file({"weight": np.arange(12, dtype=np.float32).reshape(3, 4)}, str(path))
    elif path.suffix == ".bin":
        torch.save({"weight": torch.arange(12.0)}, path)
    elif path.name == "arcface.onnx":
        write_tiny_arcface(path)
    elif path.suffix == ".onnx":
        write_tiny_scrfd(path)
    elif path.suffix == ".json":
        path.write_text('{"_class_name": "tiny"}')
    else:
        path.write_text("#version: 0.2\nh e\n")


def make_layout(root: Path, sd_base: str = "stable-diffusion-v1-5",
                antelope: str = "antelopev2", skip: tuple[str, ...] = ()) -> Path:
    """Write every weight file in an official layout (SD-1.5 under ``sd_base``)."""
    for comp in COMPONENTS:
        if comp.hub == "sd":
            base = f"{sd_base}/{comp.download_base.split('/')[-1]}".lstrip("/")
        elif comp.attr == "scrfd_onnx":
            base = antelope
        else:
            base = comp.download_base
        for name in comp.files:
            rel = f"{base}/{name}".lstrip("/")
            if rel not in skip:
                _write_weight_file(root / rel)
    return root


def test_missing_weights_error_lists_every_missing_file_at_once(tmp_path: Path):
    with pytest.raises(MissingWeightsError) as info:
        resolve_weights(WeightsConfig(root=tmp_path))
    message = str(info.value)
    assert info.value.exit_code == 2
    for name in ALL_CANONICAL:
        assert name in message
    assert f"arc2avatar weights download --to {tmp_path}" in message
    assert "FoivosPar/Arc2Face" in message and "stable-diffusion-v1-5" in message


def test_missing_message_names_only_what_is_missing(tmp_path: Path):
    make_layout(tmp_path, skip=("encoder/pytorch_model.bin", "arcface.onnx"))
    with pytest.raises(MissingWeightsError) as info:
        resolve_weights(WeightsConfig(root=tmp_path))
    listed = [line for line in str(info.value).splitlines() if line.startswith("  - ")]
    assert len(listed) == 2
    assert "encoder/pytorch_model.bin" in listed[0] and "arcface.onnx" in listed[1]


@pytest.mark.parametrize("sd_base", ["", "stable-diffusion-v1-5"])
def test_flat_and_subfolder_sd_layouts_both_resolve(tmp_path: Path, sd_base: str):
    make_layout(tmp_path, sd_base=sd_base)
    paths = resolve_weights(WeightsConfig(root=tmp_path))
    assert paths.arc2face_unet == tmp_path / "arc2face"
    assert paths.arc2face_encoder == tmp_path / "encoder"
    assert paths.sd_vae == tmp_path / sd_base / "vae"
    assert paths.sd_tokenizer == tmp_path / sd_base / "tokenizer"
    assert (paths.sd_text_encoder / "model.safetensors").is_file()
    assert (paths.sd_scheduler / "scheduler_config.json").is_file()
    assert paths.arcface_onnx == tmp_path / "arcface.onnx"
    assert paths.scrfd_onnx == tmp_path / "antelopev2" / "scrfd_10g_bnkps.onnx"
    assert paths.lora is None


@pytest.mark.parametrize("antelope", ["models/antelopev2", "antelopev2/antelopev2"])
def test_other_antelopev2_layouts_are_accepted(tmp_path: Path, antelope: str):
    make_layout(tmp_path, antelope=antelope)
    paths = resolve_weights(WeightsConfig(root=tmp_path), {"detector"})
    assert paths.scrfd_onnx == tmp_path / antelope / "scrfd_10g_bnkps.onnx"
    state = {s.name: s.state for s in check_weights(WeightsConfig(root=tmp_path), {"detector"})}
    expected = "nested" if antelope == "antelopev2/antelopev2" else "found"
    assert state == {f"{antelope}/scrfd_10g_bnkps.onnx": expected}


def test_only_needed_groups_are_required(tmp_path: Path):
    make_layout(tmp_path, skip=tuple(n for n in ALL_CANONICAL if "onnx" not in n))
    paths = resolve_weights(WeightsConfig(root=tmp_path), {"identity", "detector"})
    assert paths.arcface_onnx is not None and paths.scrfd_onnx is not None
    assert paths.arc2face_unet is None and paths.sd_vae is None


def test_encoder_may_be_safetensors_instead_of_bin(tmp_path: Path):
    make_layout(tmp_path, skip=("encoder/pytorch_model.bin",))
    _write_weight_file(tmp_path / "encoder" / "model.safetensors")
    assert resolve_weights(WeightsConfig(root=tmp_path)).arc2face_encoder == tmp_path / "encoder"


def _truncate(path: Path, keep: float = 0.6) -> None:
    content = path.read_bytes()
    path.write_bytes(content[: int(len(content) * keep)])


@pytest.mark.parametrize("broken", [
    "arc2face/diffusion_pytorch_model.safetensors",
    "encoder/pytorch_model.bin",
    "arcface.onnx",
    "stable-diffusion-v1-5/vae/config.json",
])
def test_truncated_file_is_named_with_re_download_advice(tmp_path: Path, broken: str):
    make_layout(tmp_path)
    _truncate(tmp_path / broken)
    with pytest.raises(MissingWeightsError) as info:
        resolve_weights(WeightsConfig(root=tmp_path))
    message = str(info.value)
    assert str(tmp_path / broken) in message
    assert "re-download" in message
    states = {s.name: s.state for s in check_weights(WeightsConfig(root=tmp_path))}
    assert states[broken] == "truncated"
    assert sum(state != "found" for state in states.values()) == 1


def test_safetensors_check_compares_declared_data_with_file_size(tmp_path: Path):
    path = tmp_path / "w.safetensors"
    save_file({"w": np.zeros(1000, np.float32)}, str(path))
    assert check_file(path) is None
    _truncate(path, keep=0.9)
    assert "header declares" in check_file(path)


def test_weights_root_is_argument_then_env_then_default(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("ARC2AVATAR_WEIGHTS", str(tmp_path / "env"))
    assert WeightsConfig(root=tmp_path / "arg").local_root() == tmp_path / "arg"
    assert WeightsConfig().local_root() == tmp_path / "env"
    monkeypatch.delenv("ARC2AVATAR_WEIGHTS")
    assert WeightsConfig().local_root() == Path("~/.cache/arc2avatar/weights").expanduser()


def test_download_offline_explains_offline_mode_and_lists_files(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(MissingWeightsError, match="HF_HUB_OFFLINE") as info:
        download_weights(WeightsConfig(), tmp_path, {"detector"})
    assert "scrfd_10g_bnkps.onnx" in str(info.value)
    with pytest.raises(MissingWeightsError, match="HF_HUB_OFFLINE"):
        resolve_weights(WeightsConfig(root=tmp_path), {"identity"}, download=True)
    assert not any(tmp_path.iterdir())


def test_download_fetches_only_missing_files_at_pinned_revisions(tmp_path: Path, monkeypatch):
    """hf_hub_download is replaced by a fake Hub; files land where the resolver reads them."""
    import huggingface_hub

    calls = []

    def fake_hf_hub_download(repo_id, filename, *, revision, local_dir, force_download=False):
        calls.append((repo_id, filename, revision))
        target = Path(local_dir) / filename
        _write_weight_file(target)
        return str(target)

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_hf_hub_download)
    monkeypatch.setattr("arc2avatar.weights.resolver.probe_hub", lambda *a, **k: None)  # the fake Hub is "reachable"
    make_layout(tmp_path, skip=("arcface.onnx", "antelopev2/scrfd_10g_bnkps.onnx",
                                "stable-diffusion-v1-5/vae/config.json"))
    paths = download_weights(WeightsConfig(), tmp_path)
    config = WeightsConfig()
    assert sorted(calls) == sorted([
        ("FoivosPar/Arc2Face", "arcface.onnx", config.arc2face_revision),
        ("lithiumice/insightface", "models/antelopev2/scrfd_10g_bnkps.onnx",
         config.detector_revision),
        ("stable-diffusion-v1-5/stable-diffusion-v1-5", "vae/config.json", config.sd_revision),
    ])
    assert paths.scrfd_onnx == tmp_path / "models" / "antelopev2" / "scrfd_10g_bnkps.onnx"
    assert all(s.usable for s in check_weights(WeightsConfig(root=tmp_path)))


def test_pinned_revisions_are_commit_hashes():
    config = WeightsConfig()
    for revision in (config.arc2face_revision, config.sd_revision, config.detector_revision):
        assert len(revision) == 40 and int(revision, 16) >= 0


def test_doctor_exits_2_when_weights_are_missing_and_0_when_complete(tmp_path: Path, capsys):
    assert main(["doctor", "--weights", str(tmp_path)]) == 2
    out = capsys.readouterr().out
    assert out.count("MISSING") == len(ALL_CANONICAL)
    assert "torch:" in out and "onnxruntime:" in out and "gsplat:" in out
    make_layout(tmp_path, antelope="antelopev2/antelopev2")
    assert main(["doctor", "--weights", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "MISSING" not in out and "nested (ok)" in out


def test_doctor_reports_wrong_size(tmp_path: Path, capsys):
    make_layout(tmp_path)
    _truncate(tmp_path / "stable-diffusion-v1-5" / "text_encoder" / "model.safetensors")
    assert main(["doctor", "--weights", str(tmp_path)]) == 2
    assert "WRONG SIZE" in capsys.readouterr().out


def test_weights_path_prints_resolved_root(tmp_path: Path, capsys, monkeypatch):
    monkeypatch.setenv("ARC2AVATAR_WEIGHTS", str(tmp_path))
    assert main(["weights", "path"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path)
