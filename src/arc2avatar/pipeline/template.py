"""Old home of the template setup (now ``arc2avatar.avatar.template``) and the mean-face fit (now ``arc2avatar.pipeline.meanface``); re-exports for existing imports."""

from __future__ import annotations

from arc2avatar.avatar.template import (  # noqa: F401
    TemplateConfig, HeadSetup, load_base_head, build_head,
)
from arc2avatar.pipeline.meanface import (  # noqa: F401
    initial_splats, face_mesh, fit_mean_face,
)
