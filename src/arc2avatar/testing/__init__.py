"""Test and benchmark material made here, never downloaded: tiny or full-size random weights in the
real file layouts (``prior_weights``, ``identity_weights``), a synthetic FLAME model (``flame``),
photos from scikit-image and avatars built on them (``photos``), synthetic fine-tuning data
(``finetune_data``); and two independent face trackers that judge renders, face-api in headless
Chromium (``faceapi``) and MediaPipe Face Mesh in a subprocess from a folder of its own
(``mediapipe_mesh``, .deps/mediapipe).

It needs the ``test`` extra (``pip install -e ".[test]"``): scikit-image for ``photos``' sample
photo, onnx for ``identity_weights``, matplotlib (its sample portrait) and dlib for ``drive``; each
names what is missing when it is not installed.

No library module imports this package (an import-linter contract keeps it so); the tests, the
benchmark harness (``arc2avatar.bench``) and ``benchmarks/`` do.
"""
