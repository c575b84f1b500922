"""Claims about photos -> identity embedding end to end, with tiny ONNX models in the real
layout, through the CLI (docs/method.md §1)."""

import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data

from arc2avatar.cli.main import main
from arc2avatar.identity import embed as embed_module
from arc2avatar.identity.align import align_face
from arc2avatar.identity.arcface import ArcFaceEmbedder
from arc2avatar.identity.detect import ScrfdDetector, largest_face
from arc2avatar.identity.embed import embed_photos
from arc2avatar.identity.image import load_image
from arc2avatar.testing.identity_weights import plant_face, write_tiny_identity_weights
from arc2avatar.weights.resolver import WeightsConfig, resolve_weights


@pytest.fixture(scope="module")
def weights_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("weights")
    write_tiny_identity_weights(root)
    return root


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> dict[str, Path]:
    """640×640 photos (letterbox scale 1): faces are squares of 4·stride on anchors."""
    folder = tmp_path_factory.mktemp("photos")
    coffee = data.coffee()[:400, :600]                      # real content, no pure red
    base = np.array(Image.fromarray(data.astronaut()).convert("L").resize((640, 640)))
    grey = np.stack([base] * 3, -1)
    one = grey.copy()
    plant_face(one, (320, 288), 128)
    two = grey.copy()
    plant_face(two, (160, 160), 64)
    plant_face(two, (448, 416), 128)
    none = np.asarray(Image.fromarray(coffee).convert("L").convert("RGB"))
    paths = {"one": folder / "one.jpg", "two": folder / "two.png", "none": folder / "none.png"}
    Image.fromarray(one).save(paths["one"], quality=98)
    Image.fromarray(two).save(paths["two"])
    Image.fromarray(none).save(paths["none"])
    (folder / "bad.jpg").write_text("this is not a photo")
    paths["bad"] = folder / "bad.jpg"
    return paths


def _reference_vector(paths: list[Path], root: Path) -> np.ndarray:
    """Spec §1 computed step by step: largest face, align, embed, normalise, mean, normalise."""
    weights = resolve_weights(WeightsConfig(root=root), {"identity", "detector"})
    detector, embedder = ScrfdDetector(weights.scrfd_onnx), ArcFaceEmbedder(weights.arcface_onnx)
    units = []
    for path in paths:
        image = load_image(path)
        face = largest_face(detector.detect(image))
        raw = embedder.embed(align_face(image, face.keypoints)[None])[0].astype(np.float64)
        units.append(raw / np.linalg.norm(raw))
    mean = np.mean(units, axis=0)
    return mean / np.linalg.norm(mean)


def test_embed_cli_writes_the_normalised_mean_of_normalised_embeddings(
        tmp_path: Path, weights_root: Path, photos, capsys):
    out = tmp_path / "id.npy"
    code = main(["embed", str(photos["one"]), str(photos["two"]), "-o", str(out),
                 "--weights", str(weights_root)])
    assert code == 0
    vector = np.load(out)
    assert vector.shape == (512,) and vector.dtype == np.float32
    assert abs(np.linalg.norm(vector) - 1.0) < 1e-6
    assert np.allclose(vector, _reference_vector([photos["one"], photos["two"]], weights_root),
                       atol=1e-6)
    printed = capsys.readouterr().out
    assert "two.png: 2 face(s) (using the largest of 2), box [384, 352, 512, 480]" in printed
    assert "one.jpg: 1 face(s)" in printed


def test_photo_without_face_is_skipped_with_a_warning(weights_root: Path, photos, caplog):
    weights = resolve_weights(WeightsConfig(root=weights_root), {"identity", "detector"})
    with caplog.at_level(logging.WARNING):
        result = embed_photos([photos["none"], photos["one"]], weights)
    assert np.allclose(result.vector, embed_photos([photos["one"]], weights).vector)
    assert [p.faces_found for p in result.per_photo] == [0, 1]
    assert result.photos_used == [photos["one"]]
    assert any("none.png" in r.message and "no face" in r.message for r in caplog.records)


def test_no_face_in_any_photo_fails_naming_them_and_keeps_old_output(
        tmp_path: Path, weights_root: Path, photos, capsys):
    out = tmp_path / "id.npy"
    out.write_bytes(b"previous result")
    code = main(["embed", str(photos["none"]), "-o", str(out), "--weights", str(weights_root)])
    assert code == 1
    assert "no face found in any photo" in capsys.readouterr().err
    assert out.read_bytes() == b"previous result"


def test_unreadable_photo_fails_before_any_model_loads(
        tmp_path: Path, weights_root: Path, photos, capsys, monkeypatch):
    loaded = []
    monkeypatch.setattr(embed_module, "ScrfdDetector", lambda *a, **k: loaded.append(a))
    out = tmp_path / "id.npy"
    code = main(["embed", str(photos["one"]), str(photos["bad"]), "-o", str(out),
                 "--weights", str(weights_root)])
    assert code == 1
    err = capsys.readouterr().err
    assert str(photos["bad"]) in err and "not an image" in err
    assert loaded == [] and not out.exists()


def test_missing_photo_and_missing_weights_have_their_exit_codes(tmp_path: Path, photos, capsys):
    out = tmp_path / "id.npy"
    assert main(["embed", str(tmp_path / "absent.jpg"), "-o", str(out),
                 "--weights", str(tmp_path)]) == 1
    assert "absent.jpg" in capsys.readouterr().err
    assert main(["embed", str(photos["one"]), "-o", str(out), "--weights", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "arcface.onnx" in err and "scrfd_10g_bnkps.onnx" in err and "weights download" in err
    assert not out.exists()
