"""Evaluation of avatars (paper §4; docs/method.md §9): identity similarity per view and as distributions,
detection-failure rates, FID/KID, expression consistency, and a report with plots.

A side package: it uses ``identity``, ``cameras`` and ``avatar`` (the ``Avatar``, the face rig),
and only ``cli`` imports it. Heavy optional dependencies (dlib, torchmetrics, matplotlib: the
``eval`` extra) are imported where used.

>>> from arc2avatar.evaluate import evaluate
>>> result = evaluate("out/", ["me.jpg"], "out/evaluation")
"""

from __future__ import annotations

from arc2avatar._lazy import lazy_dir, lazy_exports

_EXPORTS = {
    'AlignedFace': 'recognizers',
    'ArcFaceRecognizer': 'recognizers',
    'DlibRecognizer': 'recognizers',
    'FaceRecognizer': 'recognizers',
    'compare': 'recognizers',
    'load_recognizers': 'recognizers',
    'same_person': 'recognizers',
    'EvaluateConfig': 'run',
    'EvaluationResult': 'run',
    'evaluate': 'run',
    'EvalViews': 'views',
}
__getattr__ = lazy_exports(__name__, _EXPORTS)
__dir__ = lazy_dir(globals(), _EXPORTS)
__all__ = sorted(_EXPORTS)  # noqa: PLE0605 (a list)
