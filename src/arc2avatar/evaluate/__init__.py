"""Evaluation of avatars (paper §4; spec §9): identity similarity per view and as distributions,
detection-failure rates, FID/KID, expression consistency, and a report with plots.

A side package: it uses ``identity``, ``cameras`` and ``pipeline`` (the ``Avatar``, expressions),
and only ``cli`` imports it. Heavy optional dependencies (dlib, torchmetrics, matplotlib: the
``eval`` extra) are imported where used.

>>> from arc2avatar.evaluate import evaluate
>>> result = evaluate("out/", ["me.jpg"], "out/evaluation")
"""

from arc2avatar.evaluate.recognizers import (
    AlignedFace,
    ArcFaceRecognizer,
    DlibRecognizer,
    FaceRecognizer,
    compare,
    load_recognizers,
    same_person,
)
from arc2avatar.evaluate.run import EvaluateConfig, EvaluationResult, evaluate
from arc2avatar.evaluate.views import EvalViews

__all__ = [
    "AlignedFace", "ArcFaceRecognizer", "DlibRecognizer", "EvalViews", "EvaluateConfig", "EvaluationResult",
    "FaceRecognizer", "compare", "evaluate", "load_recognizers", "same_person",
]
