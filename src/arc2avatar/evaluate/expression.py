"""Expression consistency: does the avatar keep its identity when its face moves? (paper §4.3,
Fig. 7; docs/method.md §9).

Each expression deforms the neutral avatar's face splats with the template's blendshapes
(``arc2avatar.avatar.rig.apply_expression``, docs/method.md §7). The expressive avatar is
rendered at the evaluation views of one ring (eye level by default) and every recogniser scores
each expressive render against the neutral render of the same view (the consistency) and
against the reference photos (identity under expression). Views where either render has no
detected face are left out and counted as failures.

Written by hand: the bookkeeping; deformation and rendering are the pipeline's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from arc2avatar.errors import InputError
from arc2avatar.evaluate.recognizers import FaceRecognizer, compare, describe, same_person
from arc2avatar.evaluate.similarity import Observations, View, distribution, observe
from arc2avatar.evaluate.views import EvalViews, render_views
from arc2avatar.avatar.model import Avatar
from arc2avatar.avatar.template import HeadSetup
from arc2avatar.avatar.rig import apply_expression

# Expressions of the built-in template evaluated by default (name → blendshape weights).
DEFAULT_EXPRESSIONS: tuple[tuple[str, Mapping[str, float]], ...] = (
    ("smile", {"smile": 0.8}),
    ("jaw_open", {"jaw_open": 0.6}),
    ("brow_raise", {"brow_raise": 0.8}),
    ("blink", {"blink_left": 1.0, "blink_right": 1.0}),
)


@dataclass(frozen=True)
class ExpressionEvalConfig:
    """Which expressions are evaluated, and where.

    Attributes:
        expressions: (label, {blendshape name: weight}) pairs; defaults that name blendshapes
            the avatar's template lacks are skipped (FLAME has ``exp_0``…), explicit ones are
            an error.
        polar_deg: the ring of evaluation views used (90 = eye level).
        explicit: ``expressions`` were given by the user (unknown names are then an error).
    """

    expressions: tuple[tuple[str, Mapping[str, float]], ...] = field(default=DEFAULT_EXPRESSIONS)
    polar_deg: float = 90.0
    explicit: bool = False


def expression_grid(views: EvalViews, config: ExpressionEvalConfig) -> list[View]:
    """The (azimuth, polar) views of the expression renders."""
    return [(azimuth, config.polar_deg) for azimuth in views.azimuths()]


def expression_consistency(
    avatar: Avatar,
    setup: HeadSetup,
    recognizers: Sequence[FaceRecognizer],
    views: EvalViews,
    neutral: Sequence[Observations],
    references: Sequence[Observations],
    config: ExpressionEvalConfig = ExpressionEvalConfig(),
) -> dict[str, Any]:
    """The report's ``expressions`` section.

    Args:
        avatar: the neutral avatar (with its face binding); ``setup`` its template
            (``avatar.rig.setup_for_avatar``).
        recognizers: the recognisers, with ``neutral[i]`` / ``references[i]`` what recogniser
            i saw in the neutral renders of ``expression_grid`` and in the reference photos.
    """
    names = set(setup.upsampled.head.expression_names)
    grid = expression_grid(views, config)
    chosen, skipped = [], []
    for label, weights in config.expressions:
        unknown = sorted(set(weights) - names)
        if unknown and config.explicit:
            raise InputError(f"expression {label!r}: the avatar's template has no blendshape {', '.join(unknown)}")
        (skipped if unknown else chosen).append((label, weights))
    results: dict[str, Any] = {
        "polar_deg": config.polar_deg,
        "azimuths_deg": [a for a, _ in grid],
        "skipped": [label for label, _ in skipped],
        "by_recognizer": [{"recognizer": describe(r), "expressions": {}} for r in recognizers],
    }
    for label, weights in chosen:
        expressive = apply_expression(avatar, setup, dict(weights))
        renders = render_views(expressive, views, grid)
        for index, recognizer in enumerate(recognizers):
            seen = observe(recognizer, renders)
            results["by_recognizer"][index]["expressions"][label] = _scores(
                recognizer, seen, neutral[index], references[index], weights)
    return results


def _scores(recognizer: FaceRecognizer, seen: Observations, neutral: Observations, references: Observations,
            weights: Mapping[str, float]) -> dict[str, Any]:
    both = seen.detected & neutral.detected
    to_neutral = np.full(len(seen.faces), np.nan)
    to_refs = np.full(len(seen.faces), np.nan)
    rows = np.flatnonzero(both)
    if rows.size:
        pairwise = compare(recognizer.metric, seen.embeddings[rows], neutral.embeddings[rows])
        to_neutral[rows] = np.diag(pairwise)
    found = np.flatnonzero(seen.detected)
    if found.size:
        to_refs[found] = compare(recognizer.metric, seen.embeddings[found], references.embeddings).mean(axis=1)
    matched = same_person(recognizer.metric, recognizer.threshold, np.nan_to_num(to_neutral)) & both
    return {
        "weights": {k: float(v) for k, v in weights.items()},
        "to_neutral_per_view": [None if not np.isfinite(v) else float(v) for v in to_neutral],
        "to_neutral": distribution(to_neutral),
        "to_references": distribution(to_refs),
        "failures": int((~both).sum()),
        "failure_rate": float((~both).mean()) if both.size else None,
        "same_as_neutral_rate": float(matched.sum() / both.sum()) if both.any() else None,
    }


__all__ = ["DEFAULT_EXPRESSIONS", "ExpressionEvalConfig", "expression_consistency", "expression_grid"]
