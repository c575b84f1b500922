"""ArcFace recogniser (``arcface.onnx`` from FoivosPar/Arc2Face) through onnxruntime (docs/method.md §1).

Input: aligned RGB 112×112 crops, ``(x − 127.5) / 127.5``, NCHW float32; output: the raw
(unnormalised) 512-d embedding. Written by hand only the blob building (insightface's
``ArcFaceONNX.get_feat`` does it through OpenCV).

Choice about the "mxnet preamble": insightface inspects the first 8 graph nodes and, if it
finds Sub and Mul nodes (old mxnet exports that normalise inside the graph), feeds raw pixels
(mean 0, std 1) instead. Arc2Face's ``arcface.onnx`` is an IResNet-100 exported from PyTorch
and is fed ``(x − 127.5) / 127.5`` (docs/method.md §1). We do NOT inspect the graph (that would need the
``onnx`` package and a full parse of a 261 MB file): the normalisation is fixed by
``ArcFaceConfig`` and docs/method.md §1; to use an old mxnet export, set ``input_mean=0, input_std=1``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from arc2avatar.errors import InputError
from arc2avatar.identity.align import ARCFACE_CROP_SIZE
from arc2avatar.identity.detect import open_onnx_session


@dataclass(frozen=True)
class ArcFaceConfig:
    """ArcFace input normalisation (docs/method.md §1; insightface ``ArcFaceONNX`` for PyTorch exports).

    Attributes:
        input_mean, input_std: blob = (x − mean) / std on 0..255 RGB.
        crop_size: aligned crop side in pixels (112).
        embedding_dim: output length (512).
    """

    input_mean: float = 127.5
    input_std: float = 127.5
    crop_size: int = ARCFACE_CROP_SIZE
    embedding_dim: int = 512


class ArcFaceEmbedder:
    """Raw 512-d ArcFace embeddings of aligned crops.

    >>> embedder = ArcFaceEmbedder(weights.arcface_onnx)
    >>> vectors = embedder.embed(crops_nhwc)   # (N, 112, 112, 3) uint8 -> (N, 512) float32
    """

    def __init__(self, onnx_path: str | Path, config: ArcFaceConfig | None = None,
                 providers: list[str] | None = None):
        self.config = config or ArcFaceConfig()
        self.onnx_path = Path(onnx_path)
        self.session = open_onnx_session(onnx_path, providers)
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or len(outputs) != 1:
            raise InputError(f"{self.onnx_path} has {len(inputs)} inputs and {len(outputs)} "
                             "outputs, expected 1 and 1: is this arcface.onnx?")
        self.input_name, self.output_name = inputs[0].name, outputs[0].name
        # A fixed batch dimension (some exports) means one crop per call.
        self.fixed_batch = inputs[0].shape[0] if isinstance(inputs[0].shape[0], int) else None

    def blob(self, crops_nhwc: np.ndarray) -> np.ndarray:
        """(N, S, S, 3) uint8 RGB -> (N, 3, S, S) float32 ``(x − mean) / std``."""
        cfg = self.config
        nchw = crops_nhwc.astype(np.float32).transpose(0, 3, 1, 2)
        return (nchw - np.float32(cfg.input_mean)) / np.float32(cfg.input_std)

    def embed(self, crops_nhwc: np.ndarray) -> np.ndarray:
        """Raw embeddings of (N, 112, 112, 3) uint8 RGB aligned crops -> (N, 512) float32."""
        crops_nhwc = np.asarray(crops_nhwc)
        size = self.config.crop_size
        if crops_nhwc.ndim != 4 or crops_nhwc.shape[1:] != (size, size, 3):
            raise ValueError(f"expected (N, {size}, {size}, 3) crops, got {crops_nhwc.shape}")
        blob = self.blob(crops_nhwc)
        if self.fixed_batch == 1:
            out = np.concatenate([self.session.run([self.output_name],
                                                   {self.input_name: blob[i:i + 1]})[0]
                                  for i in range(len(blob))])
        else:
            out = self.session.run([self.output_name], {self.input_name: blob})[0]
        out = np.asarray(out, dtype=np.float32).reshape(len(blob), -1)
        if out.shape[1] != self.config.embedding_dim:
            raise InputError(f"{self.onnx_path} returns {out.shape[1]}-d vectors, expected "
                             f"{self.config.embedding_dim}: is this arcface.onnx?")
        return out
