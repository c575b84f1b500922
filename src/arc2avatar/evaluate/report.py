"""The evaluation report: ``report.json`` (every number), PNG plots, ``summary.md``.

Plots (matplotlib, object API on the Agg canvas, no global pyplot state), one panel per
recogniser, each titled with the recogniser and its metric:
* ``identity_per_view.png`` — score to the reference photos against azimuth, one curve per
  ring (mean over references, band = min…max), the "same person" threshold dashed, detection
  failures marked ✕ on the axis (the per-view curve of paper Fig. 5);
* ``identity_distribution.png`` — violins + boxes of the scores over all views and per ring
  (the distributions of paper Fig. 5);
* ``expression_consistency.png`` — violins + boxes of expressive-vs-neutral scores per
  expression (paper Fig. 7);
* ``views.png`` — the renders the numbers were measured on.

The report folder is written whole or not at all: everything goes into a temporary folder
beside it, which then replaces it. An existing folder is replaced only if it holds an earlier
report (or nothing).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from arc2avatar._io import default_mode
from arc2avatar.errors import InputError, MissingDependencyError
from arc2avatar.evaluate.similarity import detection_summary, view_entry

REPORT_JSON = "report.json"
SUMMARY_MD = "summary.md"
PER_VIEW_PNG = "identity_per_view.png"
DISTRIBUTION_PNG = "identity_distribution.png"
EXPRESSION_PNG = "expression_consistency.png"
VIEWS_PNG = "views.png"
PLOT_DPI = 110
PANEL_SIZE_IN = (5.2, 3.8)
THUMBNAIL_PX = 128
RING_STYLES = ("o-", "s--", "^-.", "d:")
FAILURE_MARK_OFFSET = 0.05  # detection-failure marks sit this fraction of the score range below the lowest score


def _figure(panels: int, rows: int = 1) -> Any:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:
        raise MissingDependencyError('plots need matplotlib: pip install "arc2avatar[eval]"') from error
    width, height = PANEL_SIZE_IN
    figure = Figure(figsize=(width * panels, height * rows), dpi=PLOT_DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _metric_label(recognizer: dict[str, Any]) -> str:
    if recognizer["metric"] == "cosine":
        return "cosine similarity (higher = closer)"
    return "Euclidean distance (lower = closer)"


def _title(recognizer: dict[str, Any]) -> str:
    return f"{recognizer['name']}\nsame person: {recognizer['same_person_rule']}"


def plot_per_view(identity: Sequence[dict[str, Any]], path: Path) -> Path:
    """Score to the references against azimuth, per ring and recogniser."""
    figure = _figure(len(identity))
    axes = figure.subplots(1, len(identity), squeeze=False)[0]
    for ax, section in zip(axes, identity):
        recognizer = section["recognizer"]
        rings = sorted({v["polar_deg"] for v in section["views"]}, reverse=True)
        finite = [s for v in section["views"] for s in v["scores"] if s is not None] + [recognizer["threshold"]]
        low = min(finite) - FAILURE_MARK_OFFSET * (max(finite) - min(finite) or 1.0)  # below every score
        for style, polar in zip(RING_STYLES * 4, rings):
            entries = [v for v in section["views"] if v["polar_deg"] == polar]
            azimuth = np.array([v["azimuth_deg"] for v in entries])
            mean = np.array([np.nan if v["mean_score"] is None else v["mean_score"] for v in entries])
            lo = np.array([min((s for s in v["scores"] if s is not None), default=np.nan) for v in entries])
            hi = np.array([max((s for s in v["scores"] if s is not None), default=np.nan) for v in entries])
            line, = ax.plot(azimuth, mean, style, label=f"θ = {polar:g}°")
            ax.fill_between(azimuth, lo, hi, color=line.get_color(), alpha=0.15, linewidth=0)
            failed = azimuth[np.isnan(mean)]
            if failed.size:
                ax.plot(failed, np.full(failed.shape, low), "x", color=line.get_color(), markersize=8,
                        label=f"no face found (θ = {polar:g}°)")
        ax.axhline(recognizer["threshold"], color="grey", linestyle=":", label="same-person threshold")
        ax.set_xlabel("azimuth (degrees, 0 = frontal)")
        ax.set_ylabel(_metric_label(recognizer))
        ax.set_title(_title(recognizer), fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    figure.savefig(path)
    return path


def _violins(ax: Any, groups: Sequence[Sequence[float]], labels: Sequence[str]) -> None:
    data = [np.asarray([v for v in g if v is not None and math.isfinite(v)], dtype=float) for g in groups]
    positions = np.arange(1, len(data) + 1)
    shown = [(p, d) for p, d in zip(positions, data) if d.size >= 2]
    if shown:
        ax.violinplot([d for _, d in shown], positions=[p for p, _ in shown], showextrema=False)
    boxed = [(p, d) for p, d in zip(positions, data) if d.size >= 1]
    if boxed:
        ax.boxplot([d for _, d in boxed], positions=[p for p, _ in boxed], widths=0.15)
    ax.set_xticks(positions, [f"{label}\n(n = {d.size})" for label, d in zip(labels, data)], fontsize=8)


def plot_distribution(identity: Sequence[dict[str, Any]], path: Path) -> Path:
    """Violin + box plots of the scores over all views and per ring, per recogniser."""
    figure = _figure(len(identity))
    axes = figure.subplots(1, len(identity), squeeze=False)[0]
    for ax, section in zip(axes, identity):
        recognizer = section["recognizer"]
        rings = sorted({v["polar_deg"] for v in section["views"]}, reverse=True)
        groups = [[s for v in section["views"] for s in v["scores"]]]
        groups += [[s for v in section["views"] if v["polar_deg"] == polar for s in v["scores"]] for polar in rings]
        _violins(ax, groups, ["all views"] + [f"θ = {polar:g}°" for polar in rings])
        ax.axhline(recognizer["threshold"], color="grey", linestyle=":")
        ax.set_ylabel(_metric_label(recognizer))
        ax.set_title(_title(recognizer) + f" · detection failures {section['detection_failures']}/{section['num_views']}",
                     fontsize=9)
        ax.grid(alpha=0.3, axis="y")
    figure.savefig(path)
    return path


def plot_expressions(expressions: dict[str, Any], path: Path) -> Path:
    """Violin + box plots of expressive-vs-neutral scores per expression, per recogniser."""
    sections = expressions["by_recognizer"]
    figure = _figure(len(sections))
    axes = figure.subplots(1, len(sections), squeeze=False)[0]
    for ax, section in zip(axes, sections):
        recognizer = section["recognizer"]
        labels = list(section["expressions"])
        _violins(ax, [section["expressions"][k]["to_neutral_per_view"] for k in labels], labels)
        ax.axhline(recognizer["threshold"], color="grey", linestyle=":")
        ax.set_ylabel(_metric_label(recognizer).replace(" (", " to neutral ("), fontsize=8)
        ax.set_title(_title(recognizer) + f"\nviews at θ = {expressions['polar_deg']:g}°", fontsize=9)
        ax.grid(alpha=0.3, axis="y")
    figure.savefig(path)
    return path


def plot_views(renders: np.ndarray, grid: Sequence[tuple[float, float]], identity: Sequence[dict[str, Any]],
               path: Path) -> Path:
    """The renders as a sheet (rows = rings), each titled with its azimuth and the first
    recogniser's mean score (✕ = no face found)."""
    from PIL import Image

    rings = sorted({polar for _, polar in grid}, reverse=True)
    columns = max(sum(1 for _, p in grid if p == polar) for polar in rings)
    figure = _figure(1)
    figure.set_size_inches(1.3 * columns, 1.5 * len(rings))
    axes = figure.subplots(len(rings), columns, squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    first = identity[0] if identity else None
    counters = {polar: 0 for polar in rings}
    for index, (azimuth, polar) in enumerate(grid):
        row = rings.index(polar)
        ax = axes[row, counters[polar]]
        counters[polar] += 1
        thumb = Image.fromarray(renders[index]).resize((THUMBNAIL_PX, THUMBNAIL_PX), Image.Resampling.LANCZOS)
        ax.imshow(np.asarray(thumb))
        label = f"{azimuth:g}°, θ {polar:g}°"
        if first is not None:
            score = first["views"][index]["mean_score"]
            label += "\n✕" if score is None else f"\n{score:.2f}"
        ax.set_title(label, fontsize=6)
    if first is not None:
        figure.suptitle(f"renders; scores: {first['recognizer']['name']} ({first['recognizer']['metric']})", fontsize=8)
    figure.savefig(path)
    return path


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def summary_markdown(report: dict[str, Any], figures: dict[str, str]) -> str:
    """A short human summary of ``report`` with links to the figures."""
    views = report["views"]
    lines = [
        f"# arc2avatar evaluation — {report['avatar']}",
        "",
        f"References: {', '.join(Path(p).name for p in report['references'])}. Views: azimuth "
        f"{views['azimuths_deg'][0]:g}…{views['azimuths_deg'][-1]:g}° at θ "
        f"{', '.join(f'{p:g}°' for p in views['polar_deg'])}; {views['size']}² renders on a white background.",
        "",
        "## Identity similarity to the reference photos",
        "",
        "| recogniser | same person | frontal | −30° | +30° | mean over views | median | faces found | "
        "match rate (views with a face) | match rate (all views) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for section in report["identity"]:
        rec = section["recognizer"]
        cells = []
        for azimuth in (0.0, -30.0, 30.0):
            entry = view_entry(section, azimuth, 90.0)
            if entry is None:
                cells.append("—")
            elif not entry["detected"]:
                cells.append("no face")
            else:
                cells.append(f"{entry['mean_score']:.3f} {'✓' if entry['same_person'] else '✗'}")
        dist = section["distribution"]
        name = rec["name"] + (" *(guidance network)*" if rec["guidance_network"] else "")
        lines.append(f"| {name} | {rec['same_person_rule']} | {' | '.join(cells)} | {_fmt(dist['mean'])} | "
                     f"{_fmt(dist['median'])} | {detection_summary(section)} | "
                     f"{_fmt(section['match_rate'], 2)} | {_fmt(section['match_rate_counting_failures'], 2)} |")
    lines += ["", "✓ / ✗: judged the same person as every reference photo / not. Views without a face are left "
              "out of the distributions and of the first match rate; the second counts them as mismatches.", ""]
    for key in ("per_view", "distribution", "views"):
        if key in figures:
            lines.append(f"![{key}]({figures[key]})")
    lines += ["", "## FID / KID (renders vs reference photos)", ""]
    fid = report["fid"]
    if "skipped" in fid:
        lines.append(f"Skipped: {fid['skipped']}")
    else:
        lines.append(f"FID {_fmt(fid['fid'], 2)}, KID {_fmt(fid['kid_mean'], 4)} ± {_fmt(fid['kid_std'], 4)} "
                     f"({fid['num_renders']} renders, {fid['num_references']} references). {fid['note']}.")
    lines += ["", "## Expression consistency (expressive vs neutral render, same view)", ""]
    expressions = report["expressions"]
    if "skipped" in expressions and isinstance(expressions["skipped"], str):
        lines.append(f"Skipped: {expressions['skipped']}")
    else:
        lines += ["| recogniser | expression | to neutral (mean) | to references (mean) | same as neutral | failures |",
                  "|---|---|---|---|---|---|"]
        for section in expressions["by_recognizer"]:
            for label, value in section["expressions"].items():
                lines.append(f"| {section['recognizer']['name']} | {label} | {_fmt(value['to_neutral']['mean'])} | "
                             f"{_fmt(value['to_references']['mean'])} | {_fmt(value['same_as_neutral_rate'], 2)} | "
                             f"{value['failures']}/{len(value['to_neutral_per_view'])} |")
        if "expressions" in figures:
            lines += ["", f"![expressions]({figures['expressions']})"]
    return "\n".join(lines) + "\n"


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


def write_report_files(folder: Path, report: dict[str, Any], renders: np.ndarray,
                       grid: Sequence[tuple[float, float]]) -> dict[str, Path]:
    """Write every report file into ``folder`` (an empty folder); returns name → path."""
    files: dict[str, Path] = {}
    figures: dict[str, str] = {}
    if report["identity"]:
        files["per_view"] = plot_per_view(report["identity"], folder / PER_VIEW_PNG)
        files["distribution"] = plot_distribution(report["identity"], folder / DISTRIBUTION_PNG)
    files["views"] = plot_views(renders, grid, report["identity"], folder / VIEWS_PNG)
    expressions = report["expressions"]
    if expressions.get("by_recognizer") and any(s["expressions"] for s in expressions["by_recognizer"]):
        files["expressions"] = plot_expressions(expressions, folder / EXPRESSION_PNG)
    figures = {key: path.name for key, path in files.items()}
    report = {**report, "figures": figures}
    (folder / REPORT_JSON).write_text(json.dumps(report, indent=2, default=_json_default, allow_nan=False) + "\n",
                                      encoding="utf-8")
    files["json"] = folder / REPORT_JSON
    (folder / SUMMARY_MD).write_text(summary_markdown(report, figures), encoding="utf-8")
    files["summary"] = folder / SUMMARY_MD
    return files


def check_report_dir(report_dir: Path) -> None:
    """``InputError`` unless ``report_dir`` is absent, empty, or holds an earlier report."""
    if not report_dir.exists():
        return
    if not report_dir.is_dir():
        raise InputError(f"report path {report_dir} exists and is not a folder")
    if any(report_dir.iterdir()) and not (report_dir / REPORT_JSON).is_file():
        raise InputError(f"report folder {report_dir} holds other files (no {REPORT_JSON}); choose another --report folder")


def write_atomically(report_dir: Path, writer: Callable[[Path], dict[str, Path]]) -> dict[str, Path]:
    """Run ``writer`` on a temporary folder beside ``report_dir``, then move it into place
    (replacing an earlier report). Returns the final paths."""
    report_dir = Path(report_dir)
    check_report_dir(report_dir)
    report_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{report_dir.name}.", suffix=".tmp", dir=report_dir.parent))
    try:
        os.chmod(staging, default_mode(directory=True))  # mkdtemp's 0700 → what mkdir gives (issue 18)
        written = writer(staging)
        if report_dir.exists():
            old = staging.with_suffix(".old")
            os.replace(report_dir, old)
            os.replace(staging, report_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, report_dir)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return {name: report_dir / path.relative_to(staging) for name, path in written.items()}


__all__ = [
    "DISTRIBUTION_PNG", "EXPRESSION_PNG", "PER_VIEW_PNG", "REPORT_JSON", "SUMMARY_MD", "VIEWS_PNG",
    "check_report_dir", "plot_distribution", "plot_expressions", "plot_per_view", "plot_views",
    "summary_markdown", "write_atomically", "write_report_files",
]
