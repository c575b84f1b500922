"""Identity similarity of renders to reference photos, per view and as distributions (paper §4,
Fig. 5; docs/method.md §9; docs/method.md §9).

Every render and every reference photo goes through the same recogniser path (detect the
largest face, align, embed). A render in which no face is found is a **detection failure**: it
is left out of the score distributions (its scores are NaN) and counted in the failure rate,
and it counts as "not the same person" in ``match_rate_counting_failures``.

Written by hand: the bookkeeping; the statistics are numpy's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from arc2avatar.errors import InputError
from arc2avatar.evaluate.recognizers import AlignedFace, FaceRecognizer, compare, describe, same_person

View = tuple[float, float]  # (azimuth_deg, polar_deg)


@dataclass(frozen=True)
class Observations:
    """What a recogniser saw in a list of images.

    Attributes:
        faces: per image, the aligned largest face or ``None`` (no face found).
        embeddings: (N, D) float32, NaN rows where no face was found.
    """

    faces: list[AlignedFace | None]
    embeddings: np.ndarray

    @property
    def detected(self) -> np.ndarray:
        """(N,) bool: a face was found."""
        return np.array([f is not None for f in self.faces], dtype=bool)


def observe(recognizer: FaceRecognizer, images: Sequence[np.ndarray]) -> Observations:
    """Detect, align and embed the largest face of every (H, W, 3) uint8 image."""
    faces = [recognizer.align(np.ascontiguousarray(image)) for image in images]
    found = [f for f in faces if f is not None]
    vectors = recognizer.embed(found)
    dim = vectors.shape[1] if len(found) else recognizer.embed([]).shape[1]
    embeddings = np.full((len(faces), dim), np.nan, dtype=np.float32)
    rows = [i for i, f in enumerate(faces) if f is not None]
    if rows:
        embeddings[rows] = vectors
    return Observations(faces, embeddings)


def observe_references(recognizer: FaceRecognizer, paths: Sequence[Path], images: Sequence[np.ndarray]) -> Observations:
    """``observe`` for the reference photos: every one must show a face (``InputError`` naming
    those that do not, and the recogniser that looked)."""
    seen = observe(recognizer, images)
    missing = [str(p) for p, ok in zip(paths, seen.detected) if not ok]
    if missing:
        raise InputError(f"no face found by {recognizer.name} in reference photo(s): {', '.join(missing)}. "
                         "Use photos where the face is clearly visible and at least ~80 pixels wide.")
    return seen


def score_matrix(recognizer: FaceRecognizer, views: Observations, references: Observations) -> np.ndarray:
    """(N_views, N_refs) scores in the recogniser's metric; NaN rows for detection failures."""
    scores = np.full((len(views.faces), len(references.faces)), np.nan, dtype=np.float64)
    rows = np.flatnonzero(views.detected)
    if rows.size:
        scores[rows] = compare(recognizer.metric, views.embeddings[rows], references.embeddings)
    return scores


def distribution(values: Sequence[float] | np.ndarray) -> dict[str, Any]:
    """Count, mean, std (population), min, quartiles, max of the finite values (``None``s when
    there are none)."""
    data = np.asarray(values, dtype=np.float64).ravel()
    data = data[np.isfinite(data)]
    if data.size == 0:
        return {"count": 0, "mean": None, "std": None, "min": None, "q25": None, "median": None, "q75": None, "max": None}
    q25, median, q75 = np.percentile(data, [25, 50, 75])
    return {
        "count": int(data.size), "mean": float(data.mean()), "std": float(data.std()), "min": float(data.min()),
        "q25": float(q25), "median": float(median), "q75": float(q75), "max": float(data.max()),
    }


def _mean_or_none(values: np.ndarray) -> float | None:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else None


def summarise_views(recognizer: FaceRecognizer, grid: Sequence[View], views: Observations,
                    scores: np.ndarray) -> dict[str, Any]:
    """The identity section of the report for one recogniser.

    Args:
        grid: (azimuth, polar) of each view, in the order of ``views``.
        views: what the recogniser saw in the renders.
        scores: (N_views, N_refs) from ``score_matrix``.
    """
    detected = views.detected
    verdicts = np.where(np.isfinite(scores), same_person(recognizer.metric, recognizer.threshold, np.nan_to_num(scores)), False)
    per_view = []
    for (azimuth, polar), face, row, judged in zip(grid, views.faces, scores, verdicts):
        per_view.append({
            "azimuth_deg": azimuth,
            "polar_deg": polar,
            "detected": face is not None,
            "detection_score": None if face is None else float(face.score),
            "faces_found": 0 if face is None else face.faces_found,
            "box": None if face is None else [round(float(v), 1) for v in face.box],
            "scores": [None if not np.isfinite(v) else float(v) for v in row],
            "mean_score": _mean_or_none(row),
            "same_person": None if face is None else bool(judged.all()),
        })
    pairs = int(scores.size)
    matched = int(verdicts.sum())
    detected_pairs = int(np.isfinite(scores).sum())
    rings = sorted({polar for _, polar in grid}, reverse=True)
    return {
        "recognizer": describe(recognizer),
        "views": per_view,
        "distribution": distribution(scores),
        "per_ring": {f"{polar:g}": distribution(scores[[p == polar for _, p in grid]]) for polar in rings},
        "per_reference": [distribution(scores[:, j]) for j in range(scores.shape[1])],
        "num_views": len(grid),
        "detection_failures": int((~detected).sum()),
        "detection_failure_rate": float((~detected).mean()) if len(grid) else None,
        # Shown next to match_rate everywhere (issue 20): a match rate of 1.00 over the few views
        # with a face says little when most views have none.
        "detection_rate": float(detected.mean()) if len(grid) else None,
        "match_rate": matched / detected_pairs if detected_pairs else None,
        "match_rate_counting_failures": matched / pairs if pairs else None,
        "failures_policy": "renders without a detected face are excluded from the distributions and counted "
                           "in detection_failure_rate; match_rate_counting_failures counts them as mismatches",
    }


def detection_summary(section: dict[str, Any]) -> str:
    """``"11/26 (42%)"``: the views of a ``summarise_views`` section where a face was found."""
    total = section["num_views"]
    found = total - section["detection_failures"]
    return f"{found}/{total} ({found / total:.0%})" if total else "0/0"


def match_summary(section: dict[str, Any]) -> str:
    """Detection and match rate side by side, e.g. ``"faces found in 11/26 (42%) views; match
    rate 1.00 of those, 0.42 of all views"`` (a match rate alone hides undetected views)."""
    def number(value: float | None) -> str:
        return "—" if value is None else f"{value:.2f}"

    return (f"faces found in {detection_summary(section)} views; match rate {number(section['match_rate'])} "
            f"of those, {number(section['match_rate_counting_failures'])} of all views")


def view_entry(summary: dict[str, Any], azimuth: float, polar: float) -> dict[str, Any] | None:
    """The per-view entry of ``summarise_views`` at (azimuth, polar), or ``None``."""
    for entry in summary["views"]:
        if np.isclose(entry["azimuth_deg"], azimuth) and np.isclose(entry["polar_deg"], polar):
            return entry
    return None


__all__ = [
    "Observations", "View", "detection_summary", "distribution", "match_summary", "observe", "observe_references",
    "score_matrix", "summarise_views", "view_entry",
]
