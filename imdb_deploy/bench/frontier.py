"""The speed/accuracy frontier: several models benched in one run on the same reviews (e.g. a teacher and its
distilled student), every row of every model as one point of accuracy against reviews/s, with the classical
baseline beside them; one table and one chart (bench.png). Reads the per-model reports only.
"""

from __future__ import annotations

import os
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from imdb_deploy.bench.classical import ROW as CLASSICAL
from imdb_deploy.bench.config import BASELINE
from imdb_deploy.bench.report import fmt
from imdb_deploy.fileio import atomic_file

DEFAULT_ROW = "predict"  # the folder's default variant, as predict runs it


def frontier_report(reports: dict[str, dict], classical: dict | None) -> dict:
    """bench.json of a run over several models: each model's own report, the classical row, and the points.

    Each point: model, row, variant, engine, precision, reviews/s, accuracy, whether it is the model's default,
    its speed-up over the first model's PyTorch baseline and over the first model's default, and whether no other
    point is both faster and more accurate (`pareto`).
    """
    first = next(iter(reports.values()))
    base = (first["rows"].get(BASELINE) or {}).get("reviews_per_s")
    first_default = (first["rows"].get(DEFAULT_ROW) or {}).get("reviews_per_s")
    points = []
    for label, report in reports.items():
        for name, row in report["rows"].items():
            if row["status"] == "ok":
                points.append(_point(label, name, row, base, first_default))
    if classical and classical.get("status") == "ok":
        points.append(_point(CLASSICAL, CLASSICAL, {**classical, "precision": "fp64"}, base, first_default))
    for point in points:
        point["pareto"] = point["accuracy"] is not None and not any(
            other is not point
            and other["accuracy"] is not None
            and other["reviews_per_s"] >= point["reviews_per_s"]
            and other["accuracy"] >= point["accuracy"]
            and (other["reviews_per_s"], other["accuracy"]) != (point["reviews_per_s"], point["accuracy"])
            for other in points
        )
    defaults = {p["model"]: p for p in points if p["default"]}
    return {
        "schema": 2,
        "kind": "frontier",
        "data": first["data"],
        "machine": first["machine"],
        "models": reports,
        "classical": classical,
        "frontier": points,
        "defaults": {
            label: {"reviews_per_s": p["reviews_per_s"], "accuracy": p["accuracy"], "vs_first": p["vs_first_default"]}
            for label, p in defaults.items()
        },
    }


def _point(label: str, name: str, row: dict, base: float | None, first_default: float | None) -> dict:
    speed = row["reviews_per_s"]
    return {
        "model": label,
        "row": name,
        "variant": row.get("variant"),
        "engine": row.get("engine", row.get("runtime")),
        "precision": row.get("precision"),
        "reviews_per_s": speed,
        "accuracy": row.get("accuracy"),
        "default": name == DEFAULT_ROW,
        "speedup": speed / base if base else None,
        "vs_first_default": speed / first_default if first_default else None,
    }


def format_frontier(report: dict) -> str:
    """The table printed on stderr: one line per point, fastest first, then the machine."""
    data, machine = report["data"], report["machine"]
    models = ", ".join(report["models"])
    lines = [
        f"frontier: {models} on {data['samples']} reviews of {data['source']} [{data['split']}], max length "
        f"{data['settings']['max_length']}",
        f"  {'model':<18} {'row':<22} {'reviews/s':>10} {'x base':>7} {'x 1st default':>13} {'accuracy':>8}  note",
    ]
    for point in sorted(report["frontier"], key=lambda p: -p["reviews_per_s"]):
        note = ", ".join(n for n, on in (("default", point["default"]), ("frontier", point["pareto"])) if on)
        lines.append(
            f"  {point['model']:<18} {point['row']:<22} {point['reviews_per_s']:>10.2f} "
            f"{fmt(point['speedup'], '.2f'):>7} {fmt(point['vs_first_default'], '.2f'):>13} "
            f"{fmt(point['accuracy'], '.4f'):>8}  {note}"
        )
    classical = report.get("classical") or {}
    if classical.get("status") == "skipped":
        lines.append(f"  {CLASSICAL}: skipped: {classical['reason']}")
    lines.append(
        f"  machine: {machine['cpu_model']}, {machine['physical_cores']} cores, ISA {'+'.join(machine['isa']) or '?'}"
    )
    return "\n".join(lines)


def write_frontier_chart(report: dict, path: str | os.PathLike) -> Path:
    """bench.png of a frontier run: accuracy against reviews/s (log scale), a colour per model, each model's
    default as a star, the frontier (points no other beats on both) joined by a line."""
    figure = Figure(figsize=(10, 6.5), dpi=110)
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    points = [p for p in report["frontier"] if p["accuracy"] is not None]
    colors = {}
    palette = ("#4c72b0", "#c44e52", "#55a868", "#8172b2", "#ccb974", "#64b5cd")
    for point in points:
        color = colors.setdefault(
            point["model"], "#555555" if point["model"] == CLASSICAL else palette[len(colors) % 6]
        )
        axes.scatter(
            point["reviews_per_s"],
            point["accuracy"],
            s=160 if point["default"] else 45,
            marker="*" if point["default"] else ("s" if point["model"] == CLASSICAL else "o"),
            color=color,
            edgecolors="black" if point["default"] else "none",
            zorder=3,
        )
        axes.annotate(
            point["row"],
            (point["reviews_per_s"], point["accuracy"]),
            fontsize=7,
            xytext=(4, 3),
            textcoords="offset points",
        )
    best = sorted((p for p in points if p["pareto"]), key=lambda p: p["reviews_per_s"])
    axes.plot([p["reviews_per_s"] for p in best], [p["accuracy"] for p in best], color="#999999", lw=1, zorder=1)
    for model, color in colors.items():
        axes.scatter([], [], color=color, label=model)
    axes.set_xscale("log")
    axes.margins(x=0.12)
    axes.set_xlabel("reviews / second (log scale; higher is better)")
    axes.set_ylabel(f"accuracy on the {report['data']['samples']} reviews")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(
        loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8, title="star: the default variant", title_fontsize=8
    )
    machine = report["machine"]
    axes.set_title(
        f"speed/accuracy frontier: {report['data']['samples']} reviews, max length "
        f"{report['data']['settings']['max_length']}\n{machine['cpu_model']}, {machine['physical_cores']} cores, "
        f"ISA {'+'.join(machine['isa'][:4])}",
        fontsize=9,
    )
    figure.tight_layout()
    path = Path(path)
    with atomic_file(path) as tmp:
        figure.savefig(tmp, format="png")
    return path
