"""Tiny ONNX stand-ins for SCRFD and ArcFace, in the real I/O layout, for tests (CPU, < 1 s).

No machine of this project can fetch the real detector/recogniser, so the identity path is
proven on these. Written by hand with ``onnx.helper`` (the ``onnx`` package is a test extra,
imported here only).

**Tiny SCRFD** (same input and 9 outputs as ``scrfd_10g_bnkps.onnx``: input (1, 3, H, W) RGB
``(x − 127.5)/128``; per stride s ∈ {8, 16, 32}: scores (N, 1), boxes (N, 4), keypoints (N, 10),
N = (H/s)(W/s)·2, row-major over (y, x, anchor); outputs ordered scores×3, boxes×3, kps×3).
Its "face" is a saturated red square (``plant_face``): per pixel, redness r = R − (G+B)/2; for
the anchor at (x·s, y·s), inner = mean r over the 4s×4s window centred there, ring = mean r over
the surrounding 8s×8s window minus the inner one, score = sigmoid(gain·(inner − ring −
threshold)). So a red square of side 4s centred on an anchor lights that anchor (and, weaker,
its direct neighbours, which NMS removes) at stride s only. Box distances are the constant 2
(a 4s×4s box around the anchor) and keypoints the ArcFace template scaled into that box; so a
planted square of side L (in letterboxed pixels L = 32, 64 or 128) is detected as a box equal
to the square, with template keypoints.

**Tiny ArcFace**: (N, 3, 112, 112) -> conv 8×8/8 -> ReLU -> avg-pool 2 -> linear -> (N, 512),
weights from a fixed seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from arc2avatar.identity.align import ARCFACE_CROP_SIZE, ARCFACE_TEMPLATE_112

# Pixel colour of a planted synthetic face (saturated red, RGB).
FACE_RGB = (255, 0, 0)
# ONNX versions written (understood by onnxruntime >= 1.14).
OPSET = 17
IR_VERSION = 8


@dataclass(frozen=True)
class TinyScrfdConfig:
    """Tiny SCRFD construction constants.

    Attributes:
        strides: FPN strides (as the real model).
        box_half_extent: box distance in stride units (face side = 2·this·stride).
        gain, threshold: score = sigmoid(gain·(contrast − threshold)); contrast is in
            normalised redness units, 1.99 for a pure-red square on a non-red background.
        batched: outputs with a leading batch axis (1, N, k) instead of (N, k).
    """

    strides: tuple[int, ...] = (8, 16, 32)
    box_half_extent: float = 2.0
    gain: float = 10.0
    threshold: float = 1.5
    batched: bool = False


def _onnx():
    try:
        import onnx
        from onnx import helper
    except ImportError as error:  # pragma: no cover
        raise ImportError("writing tiny ONNX models needs the onnx package: "
                          "pip install onnx (it is in arc2avatar's [test] extra)") from error
    return onnx, helper


def _const(helper, name: str, array: np.ndarray):
    from onnx import numpy_helper
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(array, name))


def template_keypoint_offsets(box_half_extent: float) -> np.ndarray:
    """(10,) keypoint distances in stride units: the ArcFace template inside the 2·h box."""
    half = ARCFACE_CROP_SIZE / 2
    return ((ARCFACE_TEMPLATE_112 - half) / half * box_half_extent).astype(np.float32).ravel()


def write_tiny_scrfd(path: str | Path, config: TinyScrfdConfig | None = None) -> Path:
    """Write the tiny SCRFD (see module docstring) to ``path``; returns the path."""
    cfg = config or TinyScrfdConfig()
    onnx, helper = _onnx()
    f32 = onnx.TensorProto.FLOAT
    nodes = [
        _const(helper, "redness_w", np.array([1.0, -0.5, -0.5], np.float32).reshape(1, 3, 1, 1)),
        helper.make_node("Conv", ["input.1", "redness_w"], ["redness"]),
        _const(helper, "zero", np.zeros((), np.float32)),
        _const(helper, "four", np.array(4.0, np.float32)),
        _const(helper, "third", np.array(1.0 / 3.0, np.float32)),
        _const(helper, "gain", np.array(cfg.gain, np.float32)),
        _const(helper, "threshold", np.array(cfg.threshold, np.float32)),
        _const(helper, "flat_shape", np.array([-1, 1], np.int64)),
        _const(helper, "out_shape", np.array([1, -1, 1] if cfg.batched else [-1, 1], np.int64)),
        _const(helper, "box_row", np.full((1, 4), cfg.box_half_extent, np.float32)),
        _const(helper, "kps_row", template_keypoint_offsets(cfg.box_half_extent)[None]),
    ]
    scores, boxes, kpss, outputs = [], [], [], []
    for s in cfg.strides:
        inner_k, outer_k = int(4 * s), int(8 * s)
        nodes += [
            helper.make_node("AveragePool", ["redness"], [f"inner_{s}"],
                             kernel_shape=[inner_k] * 2, strides=[s, s],
                             pads=[2 * s, 2 * s, s, s], count_include_pad=1),
            helper.make_node("AveragePool", ["redness"], [f"outer_{s}"],
                             kernel_shape=[outer_k] * 2, strides=[s, s],
                             pads=[4 * s, 4 * s, 3 * s, 3 * s], count_include_pad=1),
            # ring mean = (64·outer − 16·inner) / 48 = (4·outer − inner) / 3
            helper.make_node("Mul", [f"outer_{s}", "four"], [f"outer4_{s}"]),
            helper.make_node("Sub", [f"outer4_{s}", f"inner_{s}"], [f"ring3_{s}"]),
            helper.make_node("Mul", [f"ring3_{s}", "third"], [f"ring_{s}"]),
            helper.make_node("Sub", [f"inner_{s}", f"ring_{s}"], [f"contrast_{s}"]),
            helper.make_node("Sub", [f"contrast_{s}", "threshold"], [f"shifted_{s}"]),
            helper.make_node("Mul", [f"shifted_{s}", "gain"], [f"logit_{s}"]),
            helper.make_node("Sigmoid", [f"logit_{s}"], [f"cell_score_{s}"]),
            # (1, 1, h, w) -> (h·w, 1) -> two anchors per cell -> (2·h·w, 1), order (y, x, a)
            helper.make_node("Reshape", [f"cell_score_{s}", "flat_shape"], [f"cells_{s}"]),
            helper.make_node("Concat", [f"cells_{s}", f"cells_{s}"], [f"anchors2_{s}"], axis=1),
            helper.make_node("Reshape", [f"anchors2_{s}", "flat_shape"], [f"anchor_score_{s}"]),
            helper.make_node("Mul", [f"anchor_score_{s}", "zero"], [f"zeros_{s}"]),
            helper.make_node("Add", [f"zeros_{s}", "box_row"], [f"box_flat_{s}"]),
            helper.make_node("Add", [f"zeros_{s}", "kps_row"], [f"kps_flat_{s}"]),
            helper.make_node("Reshape", [f"anchor_score_{s}", "out_shape"], [f"score_{s}"]),
        ]
        box_shape = np.array([1, -1, 4] if cfg.batched else [-1, 4], np.int64)
        kps_shape = np.array([1, -1, 10] if cfg.batched else [-1, 10], np.int64)
        nodes += [
            _const(helper, f"box_shape_{s}", box_shape),
            _const(helper, f"kps_shape_{s}", kps_shape),
            helper.make_node("Reshape", [f"box_flat_{s}", f"box_shape_{s}"], [f"bbox_{s}"]),
            helper.make_node("Reshape", [f"kps_flat_{s}", f"kps_shape_{s}"], [f"kps_{s}"]),
        ]
        lead = [1] if cfg.batched else []
        scores.append(helper.make_tensor_value_info(f"score_{s}", f32, lead + [None, 1]))
        boxes.append(helper.make_tensor_value_info(f"bbox_{s}", f32, lead + [None, 4]))
        kpss.append(helper.make_tensor_value_info(f"kps_{s}", f32, lead + [None, 10]))
    outputs = scores + boxes + kpss  # the real model's order: scores, boxes, keypoints
    graph = helper.make_graph(
        nodes, "tiny_scrfd",
        [helper.make_tensor_value_info("input.1", f32, [1, 3, "height", "width"])], outputs)
    return _save(onnx, helper, graph, path)


def write_tiny_arcface(path: str | Path, seed: int = 0, embedding_dim: int = 512) -> Path:
    """Write the tiny ArcFace ((N, 3, 112, 112) -> (N, 512), fixed-seed weights) to ``path``."""
    onnx, helper = _onnx()
    from onnx import numpy_helper
    rng = np.random.default_rng(seed)
    channels, patch = 8, 8
    grid = ARCFACE_CROP_SIZE // patch // 2                       # 7 after the 2×2 pool
    conv_w = rng.normal(0, 0.05, (channels, 3, patch, patch)).astype(np.float32)
    fc_w = rng.normal(0, 0.1, (channels * grid * grid, embedding_dim)).astype(np.float32)
    fc_b = rng.normal(0, 0.01, (embedding_dim,)).astype(np.float32)
    inits = [numpy_helper.from_array(a, n) for a, n in
             ((conv_w, "conv_w"), (fc_w, "fc_w"), (fc_b, "fc_b"))]
    nodes = [
        helper.make_node("Conv", ["input.1", "conv_w"], ["conv"], strides=[patch, patch]),
        helper.make_node("Relu", ["conv"], ["relu"]),
        helper.make_node("AveragePool", ["relu"], ["pool"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["pool"], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["embedding"]),
    ]
    f32 = onnx.TensorProto.FLOAT
    graph = helper.make_graph(
        nodes, "tiny_arcface",
        [helper.make_tensor_value_info("input.1", f32, ["batch", 3, ARCFACE_CROP_SIZE,
                                                        ARCFACE_CROP_SIZE])],
        [helper.make_tensor_value_info("embedding", f32, ["batch", embedding_dim])],
        initializer=inits)
    return _save(onnx, helper, graph, path)


def _save(onnx, helper, graph, path: str | Path) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="arc2avatar-tiny")
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def write_tiny_identity_weights(root: str | Path, scrfd: TinyScrfdConfig | None = None,
                                antelope_dir: str = "antelopev2") -> dict[str, Path]:
    """Lay out tiny identity weights like the real folder: ``root/arcface.onnx`` and
    ``root/<antelope_dir>/scrfd_10g_bnkps.onnx``. Returns ``{"arcface_onnx", "scrfd_onnx"}``."""
    root = Path(root)
    return {
        "arcface_onnx": write_tiny_arcface(root / "arcface.onnx"),
        "scrfd_onnx": write_tiny_scrfd(root / antelope_dir / "scrfd_10g_bnkps.onnx", scrfd),
    }


def plant_face(image_rgb: np.ndarray, centre_xy: tuple[float, float], side: float) -> np.ndarray:
    """Paint a synthetic face (red square of ``side`` px centred at ``centre_xy``) in place.

    Returns the square's (4,) float32 box x1, y1, x2, y2 in pixel-index coordinates (what the
    tiny SCRFD reports for it, given the box convention x2 = x1 + side).
    """
    cx, cy = centre_xy
    x1, y1 = int(round(cx - side / 2)), int(round(cy - side / 2))
    x2, y2 = x1 + int(round(side)), y1 + int(round(side))
    image_rgb[max(y1, 0):max(y2, 0), max(x1, 0):max(x2, 0)] = FACE_RGB
    return np.array([x1, y1, x2, y2], dtype=np.float32)


def write_random_scrfd(path: str | Path, seed: int = 0, strides: tuple[int, ...] = (8, 16, 32),
                       score_bias: float = -2.5, box_scale: float = 3.0) -> Path:
    """A SCRFD in the real I/O layout whose every output depends on the image (random weights).

    Per stride s: s×s average pooling of the normalised input, then a random 1×1 convolution to
    2·(1 + 4 + 10) channels, laid out per anchor (anchor-major channels, rows over (y, x, anchor)):
    score = sigmoid(· + ``score_bias``), box distances = ``box_scale``·softplus(·) (positive,
    different on each side), keypoint distances linear (signed). Unlike the red-square SCRFD its
    four box sides, ten keypoint coordinates and both anchors of a cell all differ, so a decoder
    that swaps sides, anchors or strides disagrees with another that does not (the parity tests).
    """
    onnx, helper = _onnx()
    from onnx import numpy_helper
    f32 = onnx.TensorProto.FLOAT
    rng = np.random.default_rng(seed)
    widths = (1, 4, 10)
    anchors = 2
    nodes, inits = [], []
    outputs: dict[int, list] = {0: [], 1: [], 2: []}
    for s in strides:
        channels = anchors * sum(widths)
        weight = rng.normal(0, 1.5, (channels, 3, 1, 1)).astype(np.float32)
        bias = rng.normal(0, 0.5, (channels,)).astype(np.float32)
        inits += [numpy_helper.from_array(weight, f"w_{s}"), numpy_helper.from_array(bias, f"b_{s}")]
        nodes += [
            helper.make_node("AveragePool", ["input.1"], [f"pool_{s}"], kernel_shape=[s, s], strides=[s, s]),
            helper.make_node("Conv", [f"pool_{s}", f"w_{s}", f"b_{s}"], [f"feat_{s}"]),
            helper.make_node("Transpose", [f"feat_{s}"], [f"nhwc_{s}"], perm=[0, 2, 3, 1]),
        ]
        start = 0
        for kind, width in enumerate(widths):
            # channels [anchor 0: score | box | kps][anchor 1: ...] -> per anchor slices
            parts = []
            for a in range(anchors):
                lo = a * sum(widths) + start
                inits += [numpy_helper.from_array(np.array([lo], np.int64), f"lo_{s}_{kind}_{a}"),
                          numpy_helper.from_array(np.array([lo + width], np.int64), f"hi_{s}_{kind}_{a}"),
                          numpy_helper.from_array(np.array([3], np.int64), f"ax_{s}_{kind}_{a}")]
                nodes.append(helper.make_node("Slice", [f"nhwc_{s}", f"lo_{s}_{kind}_{a}", f"hi_{s}_{kind}_{a}",
                                                        f"ax_{s}_{kind}_{a}"], [f"part_{s}_{kind}_{a}"]))
                parts.append(f"part_{s}_{kind}_{a}")
            nodes.append(helper.make_node("Concat", parts, [f"cat_{s}_{kind}"], axis=3))
            inits.append(numpy_helper.from_array(np.array([-1, width], np.int64), f"shape_{s}_{kind}"))
            nodes.append(helper.make_node("Reshape", [f"cat_{s}_{kind}", f"shape_{s}_{kind}"], [f"raw_{s}_{kind}"]))
            name = ("score", "bbox", "kps")[kind] + f"_{s}"
            if kind == 0:
                inits.append(numpy_helper.from_array(np.array(score_bias, np.float32), f"sbias_{s}"))
                nodes += [helper.make_node("Add", [f"raw_{s}_0", f"sbias_{s}"], [f"logit_{s}"]),
                          helper.make_node("Sigmoid", [f"logit_{s}"], [name])]
            elif kind == 1:
                inits.append(numpy_helper.from_array(np.array(box_scale, np.float32), f"bscale_{s}"))
                nodes += [helper.make_node("Softplus", [f"raw_{s}_1"], [f"soft_{s}"]),
                          helper.make_node("Mul", [f"soft_{s}", f"bscale_{s}"], [name])]
            else:
                nodes.append(helper.make_node("Identity", [f"raw_{s}_2"], [name]))
            outputs[kind].append(helper.make_tensor_value_info(name, f32, [None, width]))
            start += width
    graph = helper.make_graph(
        nodes, "random_scrfd",
        [helper.make_tensor_value_info("input.1", f32, [1, 3, "height", "width"])],
        outputs[0] + outputs[1] + outputs[2], initializer=inits)
    return _save(onnx, helper, graph, path)


def write_mirror_arcface(path: str | Path, swap_rb: bool = False, seed: int = 0,
                         embedding_dim: int = 512, chroma_gain: float = 4.0) -> Path:
    """A tiny ArcFace that behaves like a trained one in ``doctor --deep``'s three ArcFace checks.

    Features per pixel: skin chroma relu(R − B)·``chroma_gain`` (faces are red-dominant, a
    face-free grey or blue region is not) and luminance (R + G + B)/3; the feature map plus its
    horizontal mirror (so the embedding of a mirrored crop is the same); 14×14 average pooling to
    8×8 minus each map's mean (the pattern, not the overall colour); a fixed random linear map to
    ``embedding_dim``. So: photo and mirror agree exactly, a face
    and a face-free crop point in different directions, and a face in its true colours has a larger
    norm than the same face with red and blue swapped. ``swap_rb`` builds the same network reading
    its input channels in BGR order (the broken weight set: relu(B − R)).
    """
    onnx, helper = _onnx()
    from onnx import numpy_helper
    rng = np.random.default_rng(seed)
    red, blue = (2, 0) if swap_rb else (0, 2)
    feature_w = np.zeros((2, 3, 1, 1), np.float32)
    feature_w[0, red], feature_w[0, blue] = chroma_gain, -chroma_gain
    feature_w[1, :] = 1.0 / 3.0
    pool, grid = 14, ARCFACE_CROP_SIZE // 14
    fc_w = rng.normal(0, 0.1, (2 * grid * grid, embedding_dim)).astype(np.float32)
    inits = [numpy_helper.from_array(a, n) for a, n in (
        (feature_w, "feature_w"), (fc_w, "fc_w"), (np.zeros(embedding_dim, np.float32), "fc_b"),
        (np.array([-1], np.int64), "flip_start"), (np.array([-(2 ** 62)], np.int64), "flip_end"),
        (np.array([3], np.int64), "flip_axis"), (np.array([-1], np.int64), "flip_step"),
        (np.array([0], np.int64), "c0"), (np.array([1], np.int64), "c1"), (np.array([2], np.int64), "c2"),
        (np.array([1], np.int64), "axis1"))]
    nodes = [
        helper.make_node("Conv", ["input.1", "feature_w"], ["features"]),
        helper.make_node("Slice", ["features", "c0", "c1", "axis1"], ["chroma_raw"]),
        helper.make_node("Slice", ["features", "c1", "c2", "axis1"], ["luma"]),
        helper.make_node("Relu", ["chroma_raw"], ["chroma"]),
        helper.make_node("Concat", ["chroma", "luma"], ["maps"], axis=1),
        helper.make_node("Slice", ["maps", "flip_start", "flip_end", "flip_axis", "flip_step"], ["mirrored"]),
        helper.make_node("Add", ["maps", "mirrored"], ["symmetric"]),
        helper.make_node("AveragePool", ["symmetric"], ["pooled"], kernel_shape=[pool, pool], strides=[pool, pool]),
        helper.make_node("ReduceMean", ["pooled"], ["level"], axes=[2, 3], keepdims=1),
        helper.make_node("Sub", ["pooled", "level"], ["pattern"]),
        helper.make_node("Flatten", ["pattern"], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["embedding"]),
    ]
    f32 = onnx.TensorProto.FLOAT
    graph = helper.make_graph(
        nodes, "mirror_arcface",
        [helper.make_tensor_value_info("input.1", f32, ["batch", 3, ARCFACE_CROP_SIZE, ARCFACE_CROP_SIZE])],
        [helper.make_tensor_value_info("embedding", f32, ["batch", embedding_dim])], initializer=inits)
    return _save(onnx, helper, graph, path)
