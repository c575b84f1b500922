"""Test machinery of the live page (docs/live.md): a known performance as a fake camera.

Chromium plays a Y4M file as its camera (``--use-fake-device-for-media-stream
--use-file-for-fake-video-capture=FILE``), looping, at the file's frame rate. Each frame carries
its index as a bar code in a strip below the face (``tag_frames``), which a hook in the page
(``TAG_READER_JS``, installed by the test as ``arc2avatarLive.frameHook``) reads back from the very
frame the tracker sees: the page's output is matched to the known sequence frame by frame, however
many frames the browser drops. ``write_y4m`` writes 4:2:0 with the header ``C420`` Chromium reads
(ffmpeg writes ``C420mpeg2``, which Chromium's reader rejects).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class TagStrip:
    """The bar code strip: ``bits`` cells across the frame's width, ``height`` pixels tall; a frame
    tagged ``index`` shows ``index + 1`` in binary (most significant cell left; 0 = untagged)."""

    bits: int = 8
    height: int = 32


def tag_frames(frames: np.ndarray, strip: TagStrip = TagStrip()) -> np.ndarray:
    """(T, H + strip.height, W, 3) uint8: ``frames`` with the index strip below each."""
    count, height, width = frames.shape[:3]
    if count + 1 >= 1 << strip.bits:
        raise ValueError(f"{count} frames do not fit {strip.bits} bits")
    out = np.zeros((count, height + strip.height, width, 3), dtype=np.uint8)
    out[:, :height] = frames
    cell = width // strip.bits
    for index in range(count):
        value = index + 1
        for bit in range(strip.bits):
            if value >> (strip.bits - 1 - bit) & 1:
                out[index, height + 4:height + strip.height - 4, bit * cell + 4:(bit + 1) * cell - 4] = 255
    return out


def tag_reader_js(strip: TagStrip = TagStrip()) -> str:
    """A JavaScript function expression ``(canvas) => index or -1`` reading ``tag_frames``' strip."""
    return f"""(canvas) => {{
  const bits = {strip.bits}, stripHeight = {strip.height};
  const ctx = canvas.getContext("2d", {{ willReadFrequently: true }});
  const cell = Math.floor(canvas.width / bits), y = canvas.height - Math.floor(stripHeight / 2);
  const row = ctx.getImageData(0, y, canvas.width, 1).data;
  let value = 0;
  for (let b = 0; b < bits; b++) {{
    const x = Math.floor((b + 0.5) * cell);
    value = value * 2 + (row[4 * x] + row[4 * x + 1] + row[4 * x + 2] > 3 * 128 ? 1 : 0);
  }}
  return value - 1;
}}"""


def capture_hook_js(strip: TagStrip = TagStrip()) -> str:
    """A JavaScript function expression ``(canvas) => index or -1`` for ``arc2avatarLive.frameHook``:
    reads the frame's tag and keeps the first camera frame of each tag (its pixels as the page
    received them) in ``window.cameraFrames[tag]``, for ``paced_pass_js``."""
    return f"""(() => {{
  const read = {tag_reader_js(strip)};
  window.cameraFrames = window.cameraFrames || {{}};
  return (canvas) => {{
    const tag = read(canvas);
    if (tag >= 0 && !(tag in window.cameraFrames)) {{
      window.cameraFrames[tag] = canvas.getContext("2d", {{ willReadFrequently: true }}).getImageData(0, 0, canvas.width, canvas.height);
    }}
    return tag;
  }};
}})()"""


PACED_PASS_JS = """
const [count, fps, rest, done] = [arguments[0], arguments[1], arguments[2], arguments[arguments.length - 1]];
(async () => {
  const live = window.arc2avatarLive, frames = window.cameraFrames || {};
  await live.settled();  // the live pass's last frame (the camera was stopped)
  for (let tag = 0; tag < count; tag++) if (!frames[tag]) return done({ error: `camera frame ${tag} was never captured` });
  const canvas = document.createElement("canvas");
  canvas.width = frames[0].width; canvas.height = frames[0].height;
  const context = canvas.getContext("2d", { willReadFrequently: true });
  const landmarks = [];
  for (let tag = 0; tag < count; tag++) {  // every frame, in order, at the clip's own times
    context.putImageData(frames[tag], 0, 0);
    const lm = await live.trackCanvas(canvas, tag / fps, tag === 0);
    if (!lm) return done({ error: `no face found in camera frame ${tag}` });
    landmarks.push(lm);
  }
  const neutral = landmarks[0].map((_, i) => [0, 1].map((c) => landmarks.slice(0, rest).reduce((s, lm) => s + lm[i][c], 0) / rest));
  done({ fits: live.fitFrames(neutral, landmarks.slice(rest), canvas.width, canvas.height), landmarks });
})().catch((error) => done({ error: String(error && error.stack || error) }));
"""
"""``execute_async_script(PACED_PASS_JS, count, fps, rest)``: the page's tracker and fit on the
camera frames ``capture_hook_js`` kept (tags ``0 … count − 1``), every one in order, at ``tag /
fps`` seconds, the first ``rest`` frames' mean landmarks as the neutral (as the page's first
second): ``{fits: fitFrames' results for tags rest …, landmarks}`` or ``{error}``. What the page
makes of the clip when it sees every frame, however loaded the machine (the live path drops the
frames it has no time for)."""


def write_y4m(frames: np.ndarray, path: str | os.PathLike, fps: int) -> Path:
    """Write (T, H, W, 3) uint8 RGB frames (H, W even) as a 4:2:0 Y4M file (BT.601, limited range)."""
    count, height, width = frames.shape[:3]
    if height % 2 or width % 2:
        raise ValueError("Y4M 4:2:0 needs an even width and height")
    rgb = frames.astype(np.float32)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    y = 16 + 0.257 * r + 0.504 * g + 0.098 * b
    u = 128 - 0.148 * r - 0.291 * g + 0.439 * b
    v = 128 + 0.439 * r - 0.368 * g - 0.071 * b

    def half(plane: np.ndarray) -> np.ndarray:
        return plane.reshape(count, height // 2, 2, width // 2, 2).mean(axis=(2, 4))

    planes = [np.clip(np.round(p), 0, 255).astype(np.uint8) for p in (y, half(u), half(v))]
    out = Path(path)
    with out.open("wb") as handle:
        handle.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420\n".encode("ascii"))
        for index in range(count):
            handle.write(b"FRAME\n")
            for plane in planes:
                handle.write(plane[index].tobytes())
    return out


__all__ = ["PACED_PASS_JS", "TagStrip", "capture_hook_js", "tag_frames", "tag_reader_js", "write_y4m"]
