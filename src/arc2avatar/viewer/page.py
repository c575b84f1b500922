"""``viewer.html``: one self-contained page that draws a ``ViewerScene`` with WebGL2.

The page is the template ``viewer.html.in`` with ``viewer.js`` (our renderer) inlined and the
scene embedded as one ``<script type="application/json">`` element, so it opens from disk with
no network and no server (``fetch`` of ``file://`` is blocked in browsers; nothing is fetched).

The JSON payload (format ``arc2avatar-viewer``, version 1) holds the settings (camera, slider
range and names, rasterisation rules, background, texture width, sort bins, page facts) and
``blob``: base64 of the gzip of one binary buffer in which every array starts at a multiple of 4
bytes. ``arrays`` lists, in order, each array's ``name``, ``dtype``, ``shape`` and byte
``offset``:

==========  =======  ===============  ==========================================
``means``   float32  (N, 3)           centres, world frame, face splats first
``scales``  float16  (N, 3)           standard deviations, world units
``quats``   float16  (N, 4)           unit quaternions (w, x, y, z)
``rgba``    uint8    (N, 4)           RGB clamped to [0, 1] and opacity, ×255 rounded
``deltas``  float16  (K, N_face, 3)   displacement per expression at weight 1 (K > 0)
``rotvecs`` float16  (K, N_face, 3)   rotation vector per expression at weight 1 (optional)
==========  =======  ===============  ==========================================

Sizes (measured, ``ViewerConfig()``, built-in template at the paper's levels, 29 K face splats,
10 expressions): 42 K splats make a 2.7–3.3 MB page (2.1 MB with ``bake_rotations=False``), 100 K
splats 5.0 MB; headless Chromium on a 2-core CPU (SwiftShader) shows 100 K in ~5 s. float32 means keep
positions exact to ~1e-7 of the head; float16 keeps scales, rotations and displacements to
~5e-4 relative; gzip mostly shrinks the expression data (each blendshape moves only part of the
face, the rest is zeros).

Written by hand, and why: a WebGL2 splat renderer is ~400 lines of our own JavaScript with no
dependency, so there is no npm build step and nothing to vendor; it follows the rules of our
renderers (``arc2avatar.splats.render``: gsplat's EWA projection with its Jacobian clamp, +eps2d
px², α = min(0.999, o·exp(−½ dᵀΣ⁻¹d)), α < 1/255 skipped, the opacity-aware 3σ extent) so a
frame matches ``Avatar.render`` from the same camera (tested in headless Chromium).
"""

from __future__ import annotations

import base64
import gzip
import html
import inspect
import json
import os
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from arc2avatar._io import atomic_write_text
from arc2avatar.errors import InputError
from arc2avatar.avatar.layout import VIEWER_NAME  # the page's name in an avatar folder
from arc2avatar.viewer.scene import ViewerConfig, ViewerScene
from arc2avatar.splats.render import RasterRules, rasterize

PAGE_FORMAT = "arc2avatar-viewer"
PAGE_FORMAT_VERSION = 1
DATA_ELEMENT_ID = "arc2avatar-data"
TEMPLATE_FILE = "viewer.html.in"
SCRIPT_FILE = "viewer.js"
_ALIGN_BYTES = 4  # every array starts at a multiple of this (a Float32Array view needs 4)
_FLOAT16_MAX = float(np.finfo(np.float16).max)


def raster_rules() -> dict[str, float]:
    """The rasterisation constants the page uses: those of ``arc2avatar.splats.render``."""
    rules = RasterRules()
    return {
        "eps2d": float(inspect.signature(rasterize).parameters["eps2d"].default),
        "alpha_min": rules.alpha_threshold,
        "alpha_max": rules.max_alpha,
        "extent_max": rules.max_extent_sigma,
        "fov_clamp_margin": rules.fov_clamp_margin,
    }


def _scene_arrays(scene: ViewerScene) -> list[tuple[str, np.ndarray]]:
    """The arrays of the blob, in order, in their page dtypes."""
    rgba = np.concatenate([np.clip(scene.colors, 0.0, 1.0), np.clip(scene.opacities, 0.0, 1.0)[:, None]], axis=1)
    arrays = [
        ("means", scene.means.astype(np.float32)),
        ("scales", np.clip(scene.scales, 0.0, _FLOAT16_MAX).astype(np.float16)),
        ("quats", scene.quats.astype(np.float16)),
        ("rgba", np.round(rgba * 255.0).astype(np.uint8)),
    ]
    if scene.expression_names:
        arrays.append(("deltas", scene.deltas.astype(np.float16)))
        if scene.rotvecs is not None:
            arrays.append(("rotvecs", scene.rotvecs.astype(np.float16)))
    return arrays


def encode_scene(scene: ViewerScene, config: ViewerConfig = ViewerConfig()) -> dict[str, Any]:
    """The page's JSON payload (layout in the module docstring)."""
    if config.texture_width < 1 or not 2 <= config.sort_bins <= 1 << 24:
        raise ValueError(f"texture_width must be ≥ 1 and sort_bins in [2, 2^24]; got {config.texture_width}, {config.sort_bins}")
    chunks: list[bytes] = []
    entries: list[dict[str, Any]] = []
    offset = 0
    for name, array in _scene_arrays(scene):
        data = np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
        entries.append({"name": name, "dtype": array.dtype.name, "shape": list(array.shape), "offset": offset})
        pad = -len(data) % _ALIGN_BYTES
        chunks.append(data + b"\0" * pad)
        offset += len(data) + pad
    blob = gzip.compress(b"".join(chunks), compresslevel=config.gzip_level, mtime=0)
    camera = config.camera
    return {
        "format": PAGE_FORMAT,
        "format_version": PAGE_FORMAT_VERSION,
        "count": scene.num_splats,
        "face_count": scene.num_face,
        "expressions": list(scene.expression_names),
        "slider": {"min": scene.slider_range[0], "max": scene.slider_range[1], "step": config.slider_step},
        "camera": {
            "radius": camera.radius, "polar_deg": camera.polar_deg, "azimuth_deg": camera.azimuth_deg,
            "fovy": camera.fovy, "min_radius": camera.min_radius, "max_radius": camera.max_radius,
            "min_polar_deg": camera.min_polar_deg, "max_polar_deg": camera.max_polar_deg,
            "orbit_deg_per_px": camera.orbit_deg_per_px, "zoom_per_wheel_px": camera.zoom_per_wheel_px,
            "near": camera.near, "far": camera.far,
        },
        "render": raster_rules(),
        "background": [float(c) for c in config.background],
        "texture_width": config.texture_width,
        "sort_bins": config.sort_bins,
        "info": scene.info,
        "arrays": entries,
        "blob": base64.b64encode(blob).decode("ascii"),
    }


def decode_payload(payload: dict[str, Any]) -> dict[str, np.ndarray]:
    """The arrays of a payload by name (what the page's script reads), for tests and tools."""
    if payload.get("format") != PAGE_FORMAT:
        raise InputError(f"not an arc2avatar viewer payload (format {payload.get('format')!r})")
    raw = gzip.decompress(base64.b64decode(payload["blob"]))
    out: dict[str, np.ndarray] = {}
    for entry in payload["arrays"]:
        dtype = np.dtype(entry["dtype"]).newbyteorder("<")
        count = int(np.prod(entry["shape"], dtype=np.int64))
        out[entry["name"]] = np.frombuffer(raw, dtype=dtype, count=count, offset=entry["offset"]).reshape(entry["shape"])
    return out


def _package_text(name: str) -> str:
    return resources.files("arc2avatar.viewer").joinpath(name).read_text(encoding="utf-8")


def render_page(scene: ViewerScene, config: ViewerConfig = ViewerConfig(), extra_body: str = "",
                extra_head: str = "") -> str:
    """The whole ``viewer.html`` as text; ``extra_head`` (HTML) goes at the end of the head,
    ``extra_body`` after the viewer's script at the end of the body (the live page's panel and
    script, ``arc2avatar.drive.live``; both empty: the page is exactly the plain viewer)."""
    title = config.title or f"arc2avatar — {scene.info.get('template', 'avatar')}"
    script = inline_script(_package_text(SCRIPT_FILE), SCRIPT_FILE)
    # "<" escaped as \u003c: the JSON stays valid and can never close its <script> element.
    data = json.dumps(encode_scene(scene, config), ensure_ascii=True, allow_nan=False).replace("<", "\\u003c")
    return fill_placeholders(_package_text(TEMPLATE_FILE), TEMPLATE_FILE, {
        "{{TITLE}}": html.escape(title), "{{SCRIPT}}": script, "{{DATA}}": data, "{{HEAD}}": extra_head,
        "{{EXTRA}}": extra_body})


def inline_script(script: str, name: str) -> str:
    """``script`` (the text of the package file ``name``), checked to be safe inside a ``<script>`` element."""
    if "</script" in script.lower():
        raise RuntimeError(f"{name} must not contain '</script' (it is inlined into the page)")
    return script


def fill_placeholders(template: str, name: str, values: dict[str, str]) -> str:
    """``template`` (the package file ``name``) with each placeholder of ``values`` replaced; every one must be there."""
    for token, value in values.items():
        if token not in template:
            raise RuntimeError(f"{name} lacks the placeholder {token}")
        template = template.replace(token, value)
    return template


def write_viewer(path: str | os.PathLike, scene: ViewerScene, config: ViewerConfig = ViewerConfig()) -> Path:
    """Write the page for ``scene`` to ``path`` atomically; returns the path."""
    final = Path(path)
    atomic_write_text(final, render_page(scene, config))
    return final


def read_embedded_json(path: str | os.PathLike, element_id: str, missing: str) -> Any:
    """The JSON in a written page's ``<script type="application/json" id=element_id>``
    (``InputError``: "``path`` ``missing``" if there is none)."""
    text = Path(path).read_text(encoding="utf-8")
    start_tag = f'<script type="application/json" id="{element_id}">'
    start = text.find(start_tag)
    end = text.find("</script>", start)
    if start < 0 or end < 0:
        raise InputError(f"{path} {missing}")
    return json.loads(text[start + len(start_tag):end])


def read_payload(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON payload embedded in a written page (``InputError`` if there is none)."""
    return read_embedded_json(path, DATA_ELEMENT_ID, "holds no arc2avatar viewer data")


__all__ = ["DATA_ELEMENT_ID", "PAGE_FORMAT", "VIEWER_NAME", "decode_payload", "encode_scene", "fill_placeholders",
           "inline_script", "raster_rules", "read_embedded_json", "read_payload", "render_page", "write_viewer"]
