"""``viewer.html``: a self-contained WebGL2 page that shows an avatar and moves its face.

No dependency and no build step: the renderer is our own small WebGL2 program
(``viewer.js``), inlined with the splat data into one HTML file (``page``). ``scene`` turns an
avatar and its template into the arrays the page draws, the expression displacements computed
by the project's own face rig. See docs/viewer.md.

>>> from arc2avatar.viewer import write_avatar_viewer
>>> write_avatar_viewer("out/viewer.html", avatar, setup)        # doctest: +SKIP
"""

from arc2avatar.viewer.folder import beside_avatar, viewer_for_folder, write_avatar_viewer
from arc2avatar.viewer.page import VIEWER_NAME, decode_payload, encode_scene, read_payload, render_page, write_viewer
from arc2avatar.viewer.scene import (
    ViewerCameraConfig,
    ViewerConfig,
    ViewerScene,
    avatar_scene,
    posed_means,
)

__all__ = [
    "VIEWER_NAME",
    "ViewerCameraConfig",
    "ViewerConfig",
    "ViewerScene",
    "beside_avatar",
    "avatar_scene",
    "decode_payload",
    "encode_scene",
    "posed_means",
    "read_payload",
    "render_page",
    "viewer_for_folder",
    "write_avatar_viewer",
    "write_viewer",
]
