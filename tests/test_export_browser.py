"""Claims about exports in third-party JavaScript (issue 18): Spark (``@sparkjsdev/spark`` on three.js,
installed from npm into tests/.npm-cache at test time, served from localhost: nothing is fetched at
view time) loads our ``.ply``, ``.spz``, ``.ksplat`` and ``.sog`` in headless Chromium and draws what our
renderer draws, from the front and the side, at ≥ 40 dB PSNR. Spark reads no ``.glb``; the Khronos
glTF validator (npm ``gltf-validator``, run with Node.js) finds nothing wrong in ours beyond not
knowing the extension, and pygltflib reads it in test_export.py. One page serves every format: Spark loads once, each file
replaces the previous one."""

from __future__ import annotations

import base64
import functools
import http.server
import io
import json
import shutil
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from headless_chromium import headless_chromium

from arc2avatar.avatar.export import export_avatar
from arc2avatar.avatar.formats.data import Y_UP_MATRIX
from arc2avatar.cameras.model import orbit_cameras
from arc2avatar.avatar.template import TemplateConfig
from arc2avatar.avatar.model import Avatar
from arc2avatar.avatar.template import build_head
from arc2avatar.pipeline.meanface import initial_splats

NPM_CACHE = Path(__file__).parent / ".npm-cache"  # ignored by git; reused between runs
NPM_PACKAGES = ("@sparkjsdev/spark@2.2.0", "three@0.180.0", "gltf-validator@2.0.0-dev.3.10")
SPARK_MODULE = NPM_CACHE / "node_modules/@sparkjsdev/spark/dist/spark.module.js"
VALIDATOR = NPM_CACHE / "node_modules/gltf-validator"
SIZE = 192  # canvas pixels (SwiftShader on a busy 2-core CPU)
RADIUS, FOVY = 4.5, 0.5  # the camera: on our evaluation orbit, head filling most of the view
VIEWS = {"front": 0.0, "side": 90.0}  # azimuths (degrees): +y (the face), +x
# Measured: 47.0 / 48.5 dB (ply, front / side), 46.7 / 47.7 (spz), 47.7 / 48.7 (ksplat), 46.9 / 47.1 (sog);
# a file drawn in the wrong frame (z-up data under a y-up camera) scores 15.8 / 13.6 dB.
SAME_IMAGE_PSNR = 40.0
WAIT_S = 90.0
# Frames per capture: 5 are too few for Spark to settle after a camera move (11.7–24.6 dB measured), 12 suffice.
MIN_FRAMES, MAX_FRAMES = 12, 60
# Spark's settings for the rules our renderer follows (arc2avatar.splats._torch_raster): 0.3 px² added
# to every 2D covariance without opacity compensation, splats cut at α < 1/255 and at 3.33 σ.
SPARK_OPTIONS = {"preBlurAmount": 0.3, "blurAmount": 0.0, "minAlpha": 1.0 / 255.0, "maxStdDev": 3.33,
                 "sortRadial": False}

PAGE = """<!doctype html><html><head><meta charset="utf-8"><style>body{margin:0;background:#fff}</style>
<script type="importmap">{"imports": {"three": "/node_modules/three/build/three.module.js",
 "three/addons/": "/node_modules/three/examples/jsm/",
 "@sparkjsdev/spark": "/node_modules/@sparkjsdev/spark/dist/spark.module.js"}}</script></head><body>
<script type="module">
import * as THREE from "three";
import { SparkRenderer, SplatMesh } from "@sparkjsdev/spark";
const config = JSON.parse(decodeURIComponent(location.hash.slice(1)));
try {
  const renderer = new THREE.WebGLRenderer({ antialias: false, preserveDrawingBuffer: true, alpha: false });
  renderer.setPixelRatio(1);
  renderer.setSize(config.size, config.size);
  renderer.setClearColor(0xffffff, 1);
  document.body.appendChild(renderer.domElement);
  const scene = new THREE.Scene();
  scene.add(new SparkRenderer({ renderer, ...config.spark }));
  const camera = new THREE.PerspectiveCamera(config.fovyDeg, 1, 0.05, 100);
  camera.matrixAutoUpdate = false;
  let mesh = null;
  window.show = async (url) => {  // replace the splats on screen by the file at url
    if (mesh) { scene.remove(mesh); mesh.dispose(); }
    mesh = new SplatMesh({ url });
    scene.add(mesh);
    await mesh.initialized;
  };
  window.capture = async (c2w) => {  // column-major 4x4 camera-to-world (three.js camera axes)
    camera.matrix.fromArray(c2w);
    camera.matrixWorld.copy(camera.matrix);
    camera.matrixWorldInverse.copy(camera.matrix).invert();
    // Spark sorts and builds its splat textures in a worker over several frames: draw at least
    // minFrames, then until two frames in a row are the same image (at most maxFrames).
    let previous = null;
    for (let i = 0; i < config.maxFrames; i++) {
      renderer.render(scene, camera);
      await new Promise((r) => requestAnimationFrame(r));
      if (i + 1 < config.minFrames) continue;
      const image = renderer.domElement.toDataURL("image/png");
      if (image === previous) return image;
      previous = image;
    }
    return previous;
  };
  window.ready = true;
} catch (error) { window.failure = String(error && error.stack || error); }
</script></body></html>
"""


@pytest.fixture(scope="module")
def spark() -> Path:
    """The npm cache folder holding Spark, three.js and the Khronos glTF validator (installed once)."""
    if SPARK_MODULE.is_file() and VALIDATOR.is_dir():
        return NPM_CACHE
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("the Spark browser test needs npm (Node.js) to install @sparkjsdev/spark and three")
    NPM_CACHE.mkdir(exist_ok=True)
    result = subprocess.run([npm, "install", "--prefix", str(NPM_CACHE), "--no-save", "--no-audit", "--no-fund",
                             *NPM_PACKAGES], check=False, capture_output=True, text=True, timeout=600)
    if result.returncode != 0 or not SPARK_MODULE.is_file() or not VALIDATOR.is_dir():
        pytest.skip(f"npm could not install {' '.join(NPM_PACKAGES)}: {result.stderr.strip()[-300:]}")
    return NPM_CACHE


@pytest.fixture(scope="module")
def browser():
    with headless_chromium("the Spark export test", console=True, script_timeout_s=WAIT_S) as driver:
        yield driver


@pytest.fixture(scope="module")
def site(spark, tmp_path_factory):
    """A localhost server over a folder with the page, the exports and the npm packages."""
    root = tmp_path_factory.mktemp("spark-site")
    (root / "node_modules").symlink_to(spark / "node_modules", target_is_directory=True)
    (root / "index.html").write_text(PAGE)
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def page(browser, site):
    """One Spark page for every format (Spark and three.js load once)."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    root, url = site
    config = {"size": SIZE, "minFrames": MIN_FRAMES, "maxFrames": MAX_FRAMES, "fovyDeg": float(np.degrees(FOVY)),
              "spark": SPARK_OPTIONS}
    browser.get(f"{url}/index.html#{json.dumps(config)}")
    try:
        WebDriverWait(browser, WAIT_S).until(lambda d: d.execute_script("return window.ready || !!window.failure"))
    except TimeoutException:
        pytest.fail(f"the Spark page did not load in {WAIT_S:.0f} s; console: {browser.get_log('browser')}")
    assert browser.execute_script("return window.failure || null") is None
    return browser, root


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep pytest's output clean
        pass


@pytest.fixture(scope="module")
def avatar() -> Avatar:
    """Template splats, flattened and turned (as a fitted avatar's are), varied colour and opacity."""
    setup = build_head(TemplateConfig(face_levels=0, rest_levels=0))
    splats = initial_splats(setup)
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        splats.params["quats"].copy_(torch.randn(splats.num_splats, 4, generator=generator))
        splats.params["log_scales"].add_(torch.log(torch.tensor([1.8, 1.2, 0.25])))
        splats.params["f_dc"].add_(torch.randn(splats.num_splats, 3, generator=generator) * 0.3)
    return Avatar(splats, template=dict(setup.info))


def _camera(azimuth_deg: float, up: str) -> tuple[list[float], np.ndarray]:
    """(three.js camera-to-world, column-major, in the file's frame; our (H, W, 3) uint8 reference)."""
    cameras = orbit_cameras(RADIUS, 90.0, azimuth_deg, FOVY, SIZE, SIZE)
    w2c = cameras.viewmats[0].double().numpy()  # OpenCV axes: x right, y down, z forward
    c2w = np.linalg.inv(w2c)
    c2w[:3, :3] = c2w[:3, :3] @ np.diag([1.0, -1.0, -1.0])  # three.js axes: y up, looking down −z
    if up == "y":
        c2w[:3, :] = Y_UP_MATRIX @ c2w[:3, :]
    return [float(v) for v in c2w.T.reshape(-1)], cameras


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float(10.0 * np.log10(255.0**2 / max(mse, 1e-12)))


# .splat is left out to keep the suite short (its record layout is checked in test_export.py; Spark
# drew it at 47.7 / 48.5 dB when measured); .ksplat has no other third-party reader here.
@pytest.mark.parametrize("name, up", [("avatar.ply", "z"), ("avatar.spz", "y"), ("avatar.ksplat", "y"),
                                      ("avatar.sog", "y")])
def test_spark_draws_our_export_as_our_renderer_does_from_the_front_and_the_side(page, avatar, name, up):
    from PIL import Image

    browser, root = page
    export_avatar(avatar, root / name, up=up)
    error = browser.execute_async_script(
        "window.show(arguments[0]).then(() => arguments[1](null), (e) => arguments[1](String(e)))", f"/{name}")
    assert error is None, f"Spark could not load {name}: {error}; console: {browser.get_log('browser')}"
    scores = {}
    for view, azimuth in VIEWS.items():
        c2w, cameras = _camera(azimuth, up)
        data = browser.execute_async_script("window.capture(arguments[0]).then(arguments[1])", c2w)
        shot = np.asarray(Image.open(io.BytesIO(base64.b64decode(data.split(",", 1)[1]))).convert("RGB"))
        reference = (avatar.render_cameras(cameras)[0].numpy() * 255.0 + 0.5).astype(np.uint8)
        assert (reference < 250).any(axis=-1).mean() > 0.1  # the head fills a good part of the view
        scores[view] = _psnr(shot, reference)
    print(f"{name}: PSNR against our renderer {scores}")  # shown with pytest -s
    assert min(scores.values()) >= SAME_IMAGE_PSNR, f"{name}: PSNR against our renderer {scores}"


VALIDATE_JS = """
const fs = require("fs");
const validator = require(process.argv[2]);
validator.validateBytes(new Uint8Array(fs.readFileSync(process.argv[3])), { maxIssues: 100 })
  .then((report) => console.log(JSON.stringify(report.issues)));
"""


def test_the_khronos_validator_finds_our_glb_valid_but_for_the_extension_it_does_not_know(spark, avatar, tmp_path):
    node = shutil.which("node")
    if node is None:
        pytest.skip("the glTF validator test needs Node.js")
    (tmp_path / "validate.js").write_text(VALIDATE_JS)
    path = export_avatar(avatar, tmp_path / "avatar.glb")  # with the template's 10 expression morph targets
    result = subprocess.run([node, str(tmp_path / "validate.js"), str(VALIDATOR), str(path)], check=True,
                            capture_output=True, text=True, timeout=120)
    issues = json.loads(result.stdout)
    # The validator predates KHR_gaussian_splatting: it names the extension unsupported (info) and calls the
    # extension's "KHR_gaussian_splatting:" attribute names invalid; nothing else may be reported.
    unexplained = [m for m in issues["messages"] if m["severity"] <= 1 and not (
        m["code"] == "MESH_PRIMITIVE_INVALID_ATTRIBUTE" and "/attributes/KHR_gaussian_splatting:" in m["pointer"])]
    assert unexplained == [], unexplained
    assert issues["numErrors"] == 4  # ROTATION, SCALE, OPACITY, SH_DEGREE_0_COEF_0
