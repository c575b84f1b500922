"""Head templates: the HeadModel interface, FLAME, the built-in head, upsampling, Laplacian."""

from arc2avatar.head.builtin import BUILTIN_NAME, BuiltinHeadConfig, builtin_head
from arc2avatar.head.flame import FlameConfig, convert_flame_to_npz, load_flame
from arc2avatar.head.laplacian import UniformLaplacian, laplacian_loss, uniform_laplacian
from arc2avatar.head.model import HeadModel
from arc2avatar.head.upsample import UpsampleConfig, UpsampledHead, upsample_head

__all__ = [
    "BUILTIN_NAME",
    "BuiltinHeadConfig",
    "FlameConfig",
    "HeadModel",
    "UniformLaplacian",
    "UpsampleConfig",
    "UpsampledHead",
    "builtin_head",
    "convert_flame_to_npz",
    "laplacian_loss",
    "load_flame",
    "uniform_laplacian",
    "upsample_head",
]
