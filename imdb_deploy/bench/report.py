"""bench's figures for people: the fastest row and its share of the CPU's peak, the default variant beside each
runtime's own best row, the table printed on stderr and the chart (bench.png). Reads bench.json's content only."""

from __future__ import annotations

import math
import os
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from imdb_deploy.fileio import atomic_file


def fastest_row(rows: dict, work_by_runtime: dict, int8_peak: float | None, reviews: int, baseline: dict | None):
    """The fastest row, its share of the INT8 peak, and the ceiling: its graph with every multiply-add at
    that peak and nothing else costing time. None when no row ran."""
    ran = {name: row for name, row in rows.items() if row["status"] == "ok"}
    if not ran:
        return None
    fastest = max(ran, key=lambda name: ran[name]["reviews_per_s"])
    row = ran[fastest]
    least_work = work_by_runtime[row["runtime"]]
    return {
        "row": fastest,
        "reviews_per_s": row["reviews_per_s"],
        "speedup": row.get("speedup"),
        "useful_macs_per_s": row["useful_macs_per_s"],
        "executed_macs_per_s": row["executed_macs_per_s"],
        "int8_peak_macs_per_s": int8_peak,
        "share_of_int8_peak": row["executed_macs_per_s"] / int8_peak if int8_peak else None,
        "reviews_per_s_at_int8_peak": int8_peak * reviews / least_work if int8_peak else None,
        "speedup_at_int8_peak": (
            int8_peak * reviews / least_work / baseline["reviews_per_s"] if int8_peak and baseline else None
        ),
        "explanation": (
            "multiply-adds per second the fastest row's graph really does (onnx_macs.total, or useful_macs.total "
            "for PyTorch, x reviews/s / reviews) over the INT8 peak of these cores (peak.formula with peak.int8)"
        ),
    }


def default_and_best(rows: dict) -> dict | None:
    """The `predict` row (the folder's default variant, as predict runs it) beside each runtime's own fastest
    row, each with its share of the CPU's peak at its precision. None when the predict row did not run.

    Runtimes are engines: pytorch, onnxruntime, openvino (the openvino-* Predictor rows and the batched
    OpenVINO rows both count as openvino).
    """
    ran = {name: row for name, row in rows.items() if row["status"] == "ok"}
    default = ran.get("predict")
    if default is None:
        return None

    def entry(name: str) -> dict:
        row = ran[name]
        return {
            "row": name,
            "variant": row.get("variant"),
            "engine": row.get("engine", row["runtime"]),
            "precision": row.get("precision"),
            "reviews_per_s": row["reviews_per_s"],
            "share_of_peak": row.get("share_of_peak"),
            "vs_default": row["reviews_per_s"] / default["reviews_per_s"],
        }

    best: dict[str, str] = {}
    for name, row in ran.items():
        engine = row.get("engine", row["runtime"])
        if engine not in best or row["reviews_per_s"] > ran[best[engine]]["reviews_per_s"]:
            best[engine] = name
    return {"default": entry("predict"), "best_by_runtime": {engine: entry(name) for engine, name in best.items()}}


def _share(value) -> str:
    return f"{100 * value:.0f}% of peak" if value is not None else "peak n/a"


def fmt(value, spec: str, blank: str = "-") -> str:
    return blank if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def format_table(report: dict) -> str:
    """The table printed on stderr: one line per row, then the machine and the share of the INT8 peak."""
    data = report["data"]
    lines = [
        f"bench: {report['model']['spec']} ({report['model']['weights']} weights), {data['samples']} reviews of "
        f"{data['source']} [{data['split']}], max length {data['settings']['max_length']}, "
        f"{data['mean_tokens']:.0f} tokens on average",
        f"  {'row':<22} {'reviews/s':>9} {'x base':>7} {'accuracy':>8} {'agree':>6} {'short p50/p95 ms':>17} "
        f"{'long p50/p95 ms':>17} {'MB file':>8} {'MB peak':>8} {'thr':>3}",
    ]
    for name, row in report["rows"].items():
        if row["status"] != "ok":
            lines.append(f"  {name:<22} skipped: {row['reason']}")
            continue
        short, long = row["latency_batch1"]["short"], row["latency_batch1"]["long"]
        agree = row.get("vs_baseline", {}).get("agreement")
        lines.append(
            f"  {name:<22} {row['reviews_per_s']:>9.2f} {fmt(row.get('speedup'), '.2f'):>7} "
            f"{fmt(row['accuracy'], '.4f'):>8} {fmt(agree, '.3f'):>6} "
            f"{fmt(short['p50_ms'], '.0f'):>8}/{fmt(short['p95_ms'], '.0f'):<8} "
            f"{fmt(long['p50_ms'], '.0f'):>8}/{fmt(long['p95_ms'], '.0f'):<8} "
            f"{row['model_bytes'] / 1e6:>8.1f} {fmt(row['peak_rss_mb'], '.0f'):>8} {fmt(row['threads'], 'd'):>3}"
        )
    classical = report.get("classical") or {}
    if classical.get("status") == "ok":
        lines.append(
            f"  {'tfidf-logreg':<22} {classical['reviews_per_s']:>9.2f} {'':>7} {classical['accuracy']:>8.4f}  "
            f"(TF-IDF + logistic regression fitted on {classical['train_samples']:,} training reviews: the "
            "classical baseline)"
        )
    elif classical.get("status") == "skipped":
        lines.append(f"  {'tfidf-logreg':<22} skipped: {classical['reason']}")
    machine = report["machine"]
    lines.append(
        f"  machine: {machine['cpu_model']}, {machine['physical_cores']} cores at {fmt(machine['clock_ghz'], '.2f')} "
        f"GHz, ISA {'+'.join(machine['isa']) or '?'}; onnxruntime {machine['versions'].get('onnxruntime')}, "
        f"torch {machine['versions'].get('torch')}"
    )
    fastest = report["fastest"]
    if fastest and fastest["share_of_int8_peak"] is not None:
        lines.append(
            f"  fastest row {fastest['row']}: {fastest['executed_macs_per_s'] / 1e9:.1f} G multiply-adds/s done "
            f"({fastest['useful_macs_per_s'] / 1e9:.1f} G/s of the full model's work) = "
            f"{100 * fastest['share_of_int8_peak']:.0f}% of the INT8 peak "
            f"({fastest['int8_peak_macs_per_s'] / 1e9:.0f} G/s: {report['peak']['int8']['isa']}); at that peak: "
            f"{fastest['reviews_per_s_at_int8_peak']:.1f} reviews/s"
            + (f" = {fastest['speedup_at_int8_peak']:.1f}x the baseline" if fastest["speedup_at_int8_peak"] else "")
        )
    chosen = report.get("default")
    if chosen:
        default = chosen["default"]
        lines.append(
            f"  default variant {default['variant']} ({default['engine']}): {default['reviews_per_s']:.2f} reviews/s, "
            f"{_share(default['share_of_peak'])} ({default['precision']}); each runtime's best: "
            + "; ".join(
                f"{engine} {row['row']} {row['reviews_per_s']:.2f} "
                f"({row['vs_default']:.2f}x, {_share(row['share_of_peak'])})"
                for engine, row in chosen["best_by_runtime"].items()
            )
        )
    if report["model"]["weights"] == "random":
        lines.append("  accuracy: blank, the weights are random (an architecture spec times speed only)")
    return "\n".join(lines)


def write_chart(report: dict, path: str | os.PathLike) -> Path:
    """A PNG with two panels: throughput (with the speed-up over the baseline) and accuracy, per row."""

    ran = [(name, row) for name, row in report["rows"].items() if row["status"] == "ok"]
    names = [name for name, _ in ran][::-1]  # first row on top
    rows = [row for _, row in ran][::-1]
    figure = Figure(figsize=(11, 1.2 + 0.55 * max(1, len(ran))), dpi=110)
    FigureCanvasAgg(figure)
    speed, accuracy = figure.subplots(1, 2, sharey=True, gridspec_kw={"width_ratios": [3, 2]})
    throughput = [row["reviews_per_s"] for row in rows]
    colors = ["#c44e52" if row["precision"] == "int8" else "#4c72b0" for row in rows]
    speed.barh(names, throughput, color=colors)
    for y, row in enumerate(rows):
        label = f" {row['reviews_per_s']:.1f}" + (f"  ({row['speedup']:.1f}x)" if row.get("speedup") else "")
        speed.text(row["reviews_per_s"], y, label, va="center", fontsize=9)
    speed.set_xlim(0, max(throughput, default=1) * 1.35)
    speed.set_xlabel("reviews / second (higher is better)")
    speed.set_title("throughput (red: INT8)")
    scores = [row["accuracy"] for row in rows]
    if any(score is not None for score in scores):
        accuracy.barh(names, [score or 0 for score in scores], color=colors)
        known = [s for s in scores if s is not None]
        low = max(0.0, min(known) - 0.05)
        accuracy.set_xlim(low, min(1.0, max(known) + 0.03))
        for y, score in enumerate(scores):
            accuracy.text(score or low, y, f" {score:.4f}" if score is not None else " n/a", va="center", fontsize=9)
    else:
        accuracy.text(
            0.5, 0.5, "accuracy: n/a\n(random weights)", ha="center", va="center", transform=accuracy.transAxes
        )
    accuracy.set_xlabel(f"accuracy on the {report['data']['samples']} reviews")
    accuracy.set_title("accuracy")
    machine, data = report["machine"], report["data"]
    figure.suptitle(
        f"{report['model']['spec']} ({report['model']['weights']} weights): {data['samples']} reviews, max length "
        f"{data['settings']['max_length']}; {machine['cpu_model']}, {machine['physical_cores']} cores",
        fontsize=10,
    )
    figure.tight_layout()
    path = Path(path)
    with atomic_file(path) as tmp:
        figure.savefig(tmp, format="png")
    return path
