"""What an avatar folder holds: the file names, one place for each.

Layout of an output folder (every file written atomically):
  avatar.ply        standard 3DGS PLY for splat viewers (compact: SH degree 0, 14 floats;
                    outputs.ply_layout=unity: 62 floats, SH-3 padded; docs/exports.md)
  avatar/           the bundle: splats.safetensors + avatar.json (face binding, template info)
  views.png         the 16 test views (θ 90° and 60°, 8 azimuths each)
  turntable.mp4     a turntable at θ 90°
  viewer.html       a self-contained WebGL2 page: orbit, zoom, expression sliders (arc2avatar.viewer)
  config.yaml       the resolved configuration
  log.jsonl         the optimisation log
  metrics.json      oracle runs: held-out-view PSNR / SSIM (and timings)
  checkpoint.pt     the last checkpoint (for --resume; removed when the run completes)
  progress.png      the eye-level test views during a run, every ``test_every`` iterations
  prepare.json      the preparation's step and progress before the first iteration (removed when
                    the optimisation starts; ``pipeline.preparing``)
"""

PLY_NAME = "avatar.ply"
BUNDLE_NAME = "avatar"
SHEET_NAME = "views.png"
VIDEO_NAME = "turntable.mp4"
CONFIG_NAME = "config.yaml"
METRICS_NAME = "metrics.json"
VIEWER_NAME = "viewer.html"
LOG_NAME = "log.jsonl"
PROGRESS_NAME = "progress.png"
