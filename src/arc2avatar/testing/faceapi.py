"""A second, independent face tracker for tests: ``@vladmandic/face-api``'s tiny face detector and
68-point landmark net (iBUG 300-W layout, as dlib's), run in headless Chromium on a batch of
images (docs/expressions.md).

The live page (docs/live.md) tracks the camera with the same nets; here they run as the library
documents them (``detectSingleFace(image, TinyFaceDetectorOptions).withFaceLandmarks()``: the
detector's box cut out and the landmark net run on it), with no smoothing, crop of our own or
mirror averaging, so the points are face-api's alone. One page for the whole batch: face-api's
script, the two nets' weights and the WASM kernels (each checked against its pinned sha256 by
``weights.webcam.webcam_assets``) and the images are handed to an ``about:blank`` page through
the driver; the TensorFlow.js WASM backend runs the nets.

The caller brings the selenium driver (the tests' ``headless_chromium``), so this module needs no
browser of its own. Written by hand: the page script that feeds face-api (a few lines); the
detection and landmarks are face-api's.
"""

from __future__ import annotations

import base64
import io
import json
import os
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from arc2avatar.errors import InputError
from arc2avatar.weights.webcam import WEBCAM_ASSETS, webcam_assets


@dataclass(frozen=True)
class FaceApiConfig:
    """How face-api looks for the face.

    Attributes:
        detector_input_px: the tiny face detector's input size, pixels (a multiple of 32; face-api's
            default is 416, at which it misses the faces of 512² renders with an eye closed).
        detector_score: the detector's score threshold (face-api's default 0.5; the avatars'
            faces with an eye closed score lower).
        script_timeout_s: how long the page may take for the whole batch, seconds.
    """

    detector_input_px: int = 320
    detector_score: float = 0.1
    script_timeout_s: float = 180.0


_PAGE_JS = """
const [faceApiJs, files, images, options, done] = arguments;
(async () => {
  const bytes = (b64) => { const s = atob(b64), out = new Uint8Array(s.length);
                           for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i); return out; };
  if (!window.faceapi) {
    const script = document.createElement("script");
    script.textContent = faceApiJs;
    document.head.appendChild(script);
  }
  const faceapi = window.faceapi;
  const paths = {};
  for (const name of Object.keys(files)) {
    if (name.endsWith(".wasm")) paths[name] = URL.createObjectURL(new Blob([bytes(files[name])], { type: "application/wasm" }));
  }
  faceapi.tf.setWasmPaths(paths);
  await faceapi.tf.setBackend("wasm");
  await faceapi.tf.ready();
  const load = (net, stem) => {
    const manifest = JSON.parse(new TextDecoder().decode(bytes(files[stem + "-weights_manifest.json"])));
    net.loadFromWeightMap(faceapi.tf.io.decodeWeights(bytes(files[stem + ".bin"]).buffer, manifest[0].weights));
  };
  load(faceapi.nets.tinyFaceDetector, "tiny_face_detector_model");
  load(faceapi.nets.faceLandmark68Net, "face_landmark_68_model");
  const detectorOptions = new faceapi.TinyFaceDetectorOptions({ inputSize: options.inputSize, scoreThreshold: options.score });
  const results = [];
  for (const png of images) {
    const bitmap = await createImageBitmap(new Blob([bytes(png)], { type: "image/png" }));
    const canvas = document.createElement("canvas");
    canvas.width = bitmap.width; canvas.height = bitmap.height;
    canvas.getContext("2d").drawImage(bitmap, 0, 0);
    const found = await faceapi.detectSingleFace(canvas, detectorOptions).withFaceLandmarks();
    results.push(found ? found.landmarks.positions.map((p) => [p.x, p.y]) : null);
  }
  return { backend: faceapi.tf.getBackend(), results };
})().then(done, (error) => done({ error: String(error && error.stack || error) }));
"""


def _png_b64(image: np.ndarray) -> str:
    from PIL import Image

    array = np.asarray(image)
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
        raise InputError(f"face-api takes (H, W, 3) uint8 RGB images, not {array.dtype} {array.shape}")
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def faceapi_landmarks(driver: Any, images: Sequence[np.ndarray], weights_root: str | os.PathLike,
                      config: FaceApiConfig = FaceApiConfig()) -> list[np.ndarray | None]:
    """face-api's 68 landmarks, (68, 2) pixels (x, y), of the best face in each RGB image; ``None``
    where it finds no face.

    ``driver``: a selenium WebDriver (headless Chromium); ``weights_root``: where
    ``arc2avatar weights download --webcam`` stored face-api's files (``MissingWeightsError``
    naming the file and how to get it otherwise). One page load for the batch.
    """
    folder = webcam_assets(weights_root)
    files = {asset.name: base64.b64encode((folder / asset.name).read_bytes()).decode("ascii")
             for asset in WEBCAM_ASSETS if asset.name not in ("face-api.js", "LICENSE")}
    face_api_js = (folder / "face-api.js").read_text(encoding="utf-8")
    pngs = [_png_b64(image) for image in images]
    driver.set_script_timeout(config.script_timeout_s)
    driver.get("about:blank")
    answer = driver.execute_async_script(_PAGE_JS, face_api_js, files, pngs,
                                         {"inputSize": config.detector_input_px, "score": config.detector_score})
    if not isinstance(answer, dict) or "error" in answer:
        raise RuntimeError(f"face-api failed in the browser: {json.dumps(answer)[:500]}")
    return [None if points is None else np.asarray(points, dtype=np.float64) for points in answer["results"]]


__all__ = ["FaceApiConfig", "faceapi_landmarks"]
