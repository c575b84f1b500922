"""Old home of the media writers (now ``arc2avatar.avatar.media``); re-exports for existing imports."""

from __future__ import annotations

from arc2avatar.avatar.media import (  # noqa: F401
    SHEET_PADDING_PX, SHEET_BACKGROUND, LABEL_BOX, LABEL_TEXT, to_uint8, write_sheet, write_video, jsonable, write_json, JsonlLogger, read_jsonl,
)
