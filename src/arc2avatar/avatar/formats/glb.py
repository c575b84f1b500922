"""glTF 2.0 binary (``.glb``) with ``KHR_gaussian_splatting``, written by hand.

Layout: the GLB container (12-byte header ``glTF``, version 2; a JSON chunk padded with spaces;
a BIN chunk padded with zeros), one scene → one node → one mesh with one primitive of mode
``POINTS`` (0) carrying the ``KHR_gaussian_splatting`` extension object
``{"kernel": "ellipse", "colorSpace": "srgb_rec709_display", "projection": "perspective",
"sortingMethod": "cameraDistance"}`` (listed in ``extensionsUsed``, not ``extensionsRequired``,
so other readers fall back to a point cloud). Attributes, all float32, one tightly packed buffer
view each:

* ``POSITION`` VEC3 (with the min/max glTF requires);
* ``KHR_gaussian_splatting:ROTATION`` VEC4, unit quaternion in glTF's order (x, y, z, w);
* ``KHR_gaussian_splatting:SCALE`` VEC3, log standard deviations (the extension stores log space);
* ``KHR_gaussian_splatting:OPACITY`` SCALAR, sigmoid-activated opacity in [0, 1];
* ``KHR_gaussian_splatting:SH_DEGREE_0_COEF_0`` VEC3, the SH-0 colour coefficients;
* ``COLOR_0`` VEC4, clamp(SH_C0·f_dc + 0.5) and opacity: the colour a point-cloud fallback shows.

glTF's frame is +Y up with the front toward +Z, so ``.glb`` is written y-up unless asked
otherwise (docs/exports.md).

Expressions as morph targets: glTF morph targets may displace ``POSITION`` of any primitive,
points included, and the extension does not forbid them; each of the template's named
expressions becomes one target (``mesh.extras.targetNames``, all weights 0), holding the face
splats' displacement at weight 1 from the rig (``arc2avatar.avatar.rig``). Blending
them is linear in the weights and moves positions only: splat orientations do not turn, which
is exact for single expressions at weight 0 or 1 and close otherwise (the rig itself turns the
splats). A reader without morph support shows the neutral face; one without the extension shows
coloured points.

Why by hand: the container is a JSON document and one binary blob (~80 lines here); pygltflib
or trimesh would add a dependency or drop the extension's attributes.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from arc2avatar._io import atomic_write_bytes
from arc2avatar.avatar.formats.data import SplatArrays

EXTENSION = "KHR_gaussian_splatting"
EXTENSION_OBJECT = {"kernel": "ellipse", "colorSpace": "srgb_rec709_display", "projection": "perspective",
                    "sortingMethod": "cameraDistance"}
GLB_MAGIC, GLB_VERSION = 0x46546C67, 2  # "glTF"
CHUNK_JSON, CHUNK_BIN = 0x4E4F534A, 0x004E4942  # "JSON", "BIN\0"
FLOAT, ARRAY_BUFFER, POINTS = 5126, 34962, 0
TYPES = {1: "SCALAR", 3: "VEC3", 4: "VEC4"}


class _Builder:
    """Accumulates float32 accessors in one binary buffer."""

    def __init__(self) -> None:
        self.blobs: list[bytes] = []
        self.offset = 0
        self.views: list[dict[str, Any]] = []
        self.accessors: list[dict[str, Any]] = []

    def add(self, values: np.ndarray, bounds: bool = False) -> int:
        data = np.ascontiguousarray(values, dtype="<f4")
        width = 1 if data.ndim == 1 else data.shape[1]
        blob = data.tobytes()
        self.views.append({"buffer": 0, "byteOffset": self.offset, "byteLength": len(blob), "target": ARRAY_BUFFER})
        accessor: dict[str, Any] = {"bufferView": len(self.views) - 1, "componentType": FLOAT,
                                    "count": int(data.shape[0]), "type": TYPES[width]}
        if bounds and data.shape[0]:
            accessor["min"] = [float(v) for v in data.reshape(len(data), -1).min(axis=0)]
            accessor["max"] = [float(v) for v in data.reshape(len(data), -1).max(axis=0)]
        self.accessors.append(accessor)
        self.blobs.append(blob)
        self.offset += len(blob)  # float32 data keeps every view 4-byte aligned
        return len(self.accessors) - 1


def encode_glb(arrays: SplatArrays, morphs: Mapping[str, np.ndarray] | None = None) -> bytes:
    """The ``.glb`` bytes of ``arrays``; ``morphs``: name → (N, 3) position displacements (same frame)."""
    build = _Builder()
    quats_xyzw = np.concatenate([arrays.quats_n4[:, 1:], arrays.quats_n4[:, :1]], axis=-1)
    color = np.concatenate([arrays.rgb(), arrays.alpha()[:, None]], axis=-1)
    attributes = {
        "POSITION": build.add(arrays.means_n3, bounds=True),
        "COLOR_0": build.add(color),
        f"{EXTENSION}:ROTATION": build.add(quats_xyzw),
        f"{EXTENSION}:SCALE": build.add(arrays.log_scales_n3),
        f"{EXTENSION}:OPACITY": build.add(arrays.alpha()),
        f"{EXTENSION}:SH_DEGREE_0_COEF_0": build.add(arrays.f_dc_n3),
    }
    primitive: dict[str, Any] = {"attributes": attributes, "mode": POINTS, "extensions": {EXTENSION: EXTENSION_OBJECT}}
    mesh: dict[str, Any] = {"name": "avatar", "primitives": [primitive]}
    if morphs:
        primitive["targets"] = [{"POSITION": build.add(delta, bounds=True)} for delta in morphs.values()]
        mesh["weights"] = [0.0] * len(morphs)
        mesh["extras"] = {"targetNames": list(morphs)}
    binary = b"".join(build.blobs)
    document = {
        "asset": {"version": "2.0", "generator": "arc2avatar", "extras": {"frame": arrays.frame}},
        "extensionsUsed": [EXTENSION],
        "scene": 0, "scenes": [{"nodes": [0]}], "nodes": [{"mesh": 0, "name": "avatar"}], "meshes": [mesh],
        "buffers": [{"byteLength": len(binary)}], "bufferViews": build.views, "accessors": build.accessors,
    }  # fmt: skip
    text = json.dumps(document, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 4)
    binary += b"\0" * (-len(binary) % 4)
    total = 12 + 8 + len(text) + 8 + len(binary)
    return b"".join([
        struct.pack("<III", GLB_MAGIC, GLB_VERSION, total),
        struct.pack("<II", len(text), CHUNK_JSON), text,
        struct.pack("<II", len(binary), CHUNK_BIN), binary,
    ])  # fmt: skip


def write_glb(path: Path, arrays: SplatArrays, morphs: Mapping[str, np.ndarray] | None = None) -> Path:
    atomic_write_bytes(path, encode_glb(arrays, morphs))
    return path
