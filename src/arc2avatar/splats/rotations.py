"""Quaternion helpers for splat orientations: rotation matrix → quaternion and the Hamilton product.

Quaternions are (w, x, y, z), as ``GaussianSplats.quats``. They sit here, below ``avatar``, because
the rig, the pose, the viewer scene and the file-format writers all turn splats with them.

Written by hand, and why: rotation matrix → quaternion in torch (Shepperd's method, as scipy's,
so it runs on the GPU without a round trip through the host) and the 4-line Hamilton product.
"""

from __future__ import annotations

import torch
from torch import Tensor


def matrix_to_quat(rotations_n33: Tensor) -> Tensor:
    """(N, 4) unit quaternions (w, x, y, z) of (N, 3, 3) rotation matrices, on their device.

    Shepperd's method, branch by branch as scipy's ``Rotation.from_matrix`` (the largest of the
    trace and the diagonal entries picks the stable formula; same signs as scipy's quaternions,
    which the tests check), in float64, so expressions and driving pose the splats on the GPU
    without a round trip through the host.
    """
    m = rotations_n33.double()  # (N, 3, 3)
    n = m.shape[0]
    diagonal = torch.diagonal(m, dim1=1, dim2=2)  # (N, 3)
    trace = diagonal.sum(-1)
    choice = torch.cat([diagonal, trace[:, None]], dim=1).argmax(dim=1)  # (N,) 0..2 a diagonal entry, 3 the trace
    xyzw = torch.empty((n, 4), dtype=m.dtype, device=m.device)
    on_trace = choice == 3
    xyzw[on_trace] = torch.stack([
        m[on_trace, 2, 1] - m[on_trace, 1, 2],
        m[on_trace, 0, 2] - m[on_trace, 2, 0],
        m[on_trace, 1, 0] - m[on_trace, 0, 1],
        1.0 + trace[on_trace],
    ], dim=-1)
    for i in range(3):
        rows = choice == i
        j, k = (i + 1) % 3, (i + 2) % 3
        q = torch.empty((int(rows.sum()), 4), dtype=m.dtype, device=m.device)
        q[:, i] = 1.0 - trace[rows] + 2.0 * m[rows, i, i]
        q[:, j] = m[rows, j, i] + m[rows, i, j]
        q[:, k] = m[rows, k, i] + m[rows, i, k]
        q[:, 3] = m[rows, k, j] - m[rows, j, k]
        xyzw[rows] = q
    xyzw = torch.nn.functional.normalize(xyzw, dim=-1)
    return torch.cat([xyzw[:, 3:], xyzw[:, :3]], dim=1).to(rotations_n33.dtype)


def quat_multiply(a_n4: Tensor, b_n4: Tensor) -> Tensor:
    """(N, 4) Hamilton product a ⊗ b of (w, x, y, z) quaternions (rotation b first, then a)."""
    aw, ax, ay, az = a_n4.unbind(-1)
    bw, bx, by, bz = b_n4.unbind(-1)
    return torch.stack([
        aw * bw - ax * bx - ay * by - az * bz,
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
    ], dim=-1)
