"""arc2avatar: one photo in, an expressive 3D Gaussian-splat head avatar out.

Implements Arc2Avatar (Gerogiannis et al., CVPR 2025). The packages, in the direction data flows:
``identity`` (photo -> ArcFace embedding), ``prior`` (Arc2Face guidance), ``head`` (templates),
``splats`` (bound Gaussians and their renderer), ``cameras`` and ``pipeline`` (the optimisation
and its outputs). Heavy pieces are imported lazily so ``import arc2avatar`` is cheap:

>>> import arc2avatar
>>> arc2avatar.create(["me.jpg"], "out/")           # real Arc2Face prior (weights needed)
>>> arc2avatar.demo("demo/")                        # offline oracle run
>>> arc2avatar.Avatar.load("out/").render([0, 90])
>>> arc2avatar.drive("out/", "face.mp4", "driven.mp4")   # driven by a face video
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "create": "arc2avatar.pipeline.api",
    "demo": "arc2avatar.pipeline.api",
    "create_batch": "arc2avatar.pipeline.batch",
    "make_template": "arc2avatar.pipeline.api",
    "render_avatar": "arc2avatar.avatar.render",
    "Avatar": "arc2avatar.avatar.model",
    "export_avatar": "arc2avatar.avatar.export",
    "drive": "arc2avatar.drive.run",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'arc2avatar' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The lazy exports too: ``dir(arc2avatar)`` shows the API before any of it is imported (and
    not this module's own typing helpers)."""
    return sorted((set(globals()) | set(_LAZY)) - {"Any", "annotations"})


__all__ = ["Avatar", "__version__", "create", "create_batch", "demo", "drive", "export_avatar", "make_template", "render_avatar"]
