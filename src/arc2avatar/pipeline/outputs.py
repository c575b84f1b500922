"""Old home of the avatar folder and ``Avatar`` (now ``arc2avatar.avatar``); re-exports for existing imports."""

from __future__ import annotations

from arc2avatar.avatar.layout import (  # noqa: F401
    PLY_NAME, BUNDLE_NAME, SHEET_NAME, VIDEO_NAME, CONFIG_NAME, METRICS_NAME, VIEWER_NAME, LOG_NAME,
)
from arc2avatar.avatar.model import (  # noqa: F401
    Avatar,
)
from arc2avatar.avatar.outputs import (  # noqa: F401
    write_avatar_outputs,
)
