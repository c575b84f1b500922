"""Limits on Gradio's upload route, and the removal of refused uploads (issue 26 item 2).

Gradio stores every upload (``POST /gradio_api/upload``) in its upload folder before any handler
sees it, and one request cannot say which field it is for. ``UploadGuard`` (an ASGI middleware)
answers such a request before its body is read when its declared size is over the largest field
limit (413) or would take the upload folder past its total (507); Gradio's own ``max_file_size``
check covers a body sent without a declared size, and ``delete_cache`` expires old uploads. Each
field's own limit is checked when a job is submitted (``uploads``), and ``discard_uploads``
deletes what was refused. Written by hand: only these checks; the server is Starlette's.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterable

from arc2avatar.app.config import MEGABYTE

UPLOAD_ROUTE_SUFFIX = "/gradio_api/upload"

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def upload_folder() -> Path:
    """Gradio's upload folder (``$GRADIO_TEMP_DIR`` or the system's temporary folder's ``gradio``)."""
    from gradio.utils import get_upload_folder

    return Path(get_upload_folder()).resolve()


def folder_bytes(folder: Path) -> int:
    """Bytes of the files under ``folder`` (0 when it does not exist)."""
    total = 0
    for root, _, names in os.walk(folder):
        for name in names:
            try:
                total += os.stat(os.path.join(root, name)).st_size
            except OSError:
                continue
    return total


def discard_uploads(paths: Iterable[Any], folder: Path | None = None) -> list[Path]:
    """Delete the given uploads that lie in Gradio's upload folder (and their folder, once empty);
    any other path is left alone. Returns the deleted files."""
    folder = folder or upload_folder()
    deleted = []
    for item in paths:
        if not item:
            continue
        path = Path(str(item)).resolve()
        if folder not in path.parents or not path.is_file():
            continue
        try:
            path.unlink()
            deleted.append(path)
            if path.parent != folder and not any(path.parent.iterdir()):
                path.parent.rmdir()
        except OSError:
            continue
    return deleted


class UploadGuard:
    """ASGI middleware for Gradio's upload route (see the module docstring).

    Args:
        app: the ASGI app it wraps.
        limit_bytes: the largest upload request accepted (``UploadLimits.largest_upload``).
        folder: Gradio's upload folder; folder_bytes: the most it may hold (``UploadLimits.cache_bytes``).
    """

    def __init__(self, app: Any, limit_bytes: int, folder: Path, folder_bytes: int) -> None:
        self.app, self.limit_bytes, self.folder, self.folder_bytes = app, limit_bytes, Path(folder), folder_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") == "http" and scope.get("method") == "POST" and \
                str(scope.get("path", "")).rstrip("/").endswith(UPLOAD_ROUTE_SUFFIX):
            refusal = self.refusal(_declared_length(scope))
            if refusal is not None:
                await _respond(send, *refusal)
                return
        await self.app(scope, receive, send)

    def refusal(self, length: int | None) -> tuple[int, str] | None:
        """(HTTP status, message) for an upload of ``length`` bytes that must be refused, else None."""
        if length is not None and length > self.limit_bytes:
            return 413, (f"the upload is {length / MEGABYTE:.1f} MB; the largest this server accepts is "
                         f"{self.limit_bytes / MEGABYTE:.0f} MB")
        if folder_bytes(self.folder) + (length or 0) > self.folder_bytes:
            return 507, "the server's upload space is full; try again later"
        return None


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _respond(send: Send, status: int, message: str) -> None:
    body = message.encode("utf-8")
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


__all__ = ["UploadGuard", "discard_uploads", "folder_bytes", "upload_folder"]
