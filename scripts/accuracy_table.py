"""The seed's results table from the parity gate: accuracy, F1, precision and recall of each exported model, for
its PyTorch original and its default variant, on the reviews the gate scored (all 25,000 test reviews in
scripts/full_imdb.sh).

    python scripts/accuracy_table.py [NAME=]ONNX_DIR ... [--bench BENCH_JSON] --output accuracy.json

Nothing is re-run: every figure is read from the folder's export_report.json (the gate's `pytorch_metrics` and
its variants' `metrics`), which the export wrote when it checked the folder. A folder exported with --no-verify,
or whose gate skipped the default variant, is refused with the fix. A student's row also names its teacher (its
train_config.json's `teacher`). With --bench (the bench.json of one `imdb-deploy bench` run over the same
folders, e.g. scripts/full_imdb.sh's frontier), each model's PyTorch and default rows carry their reviews/s from that
run, so the speeds beside the metrics come from one run on one machine. Record it with
scripts/record_result.py --kind accuracy.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from imdb_deploy.errors import ImdbDeployError  # noqa: E402
from imdb_deploy.fileio import write_json_atomic  # noqa: E402
from imdb_deploy.folders import EXPORT_REPORT, load_export_report, read_json  # noqa: E402

METRICS = ("accuracy", "f1", "precision", "recall")
BENCH_ROWS = {"pytorch": "pytorch-fp32", "default": "predict"}  # our key -> bench's row


def model_entry(folder: Path) -> dict:
    """One exported model's rows: PyTorch and the default variant, with the gate's data and sample count.

    Raises:
        ImdbDeployError: no export report, no gate on it, or no metrics for the default variant.
    """
    report = load_export_report(folder)
    parity = report.get("parity") or {}
    fix = f"export it again with the parity gate (imdb-deploy export ... --output {folder})"
    if not parity or not report.get("verified"):
        raise ImdbDeployError(f"{folder / EXPORT_REPORT}: the folder was not verified by the parity gate; {fix}")
    default = report.get("default_variant")
    variant = (parity.get("variants") or {}).get(default) or {}
    if not parity.get("pytorch_metrics") or not variant.get("metrics"):
        raise ImdbDeployError(f"{folder / EXPORT_REPORT}: the gate has no metrics for PyTorch or `{default}`; {fix}")
    train_config = read_json(folder / "train_config.json") if (folder / "train_config.json").is_file() else {}
    model_config = read_json(folder / "config.json") if (folder / "config.json").is_file() else {}
    return {
        "folder": str(folder),
        "source_model": report.get("source_model"),
        "data": parity.get("data"),
        "split": parity.get("split"),
        "samples": parity.get("samples"),
        "max_length": (report.get("settings") or {}).get("max_length") or train_config.get("max_length"),
        "layers": model_config.get("n_layers"),
        "teacher": (train_config.get("teacher") or {}).get("name"),
        "default_variant": default,
        "pytorch": {name: parity["pytorch_metrics"][name] for name in METRICS},
        "default": {name: variant["metrics"][name] for name in METRICS},
        "default_agreement": variant.get("agreement"),
    }


def add_speed(models: dict, bench: dict, where: str) -> None:
    """Each model's reviews/s in one bench run (its `pytorch-fp32` and `predict` rows), in place.

    Raises:
        ImdbDeployError: a model the bench run did not time.
    """
    reports = bench.get("models") or {Path(str((bench.get("model") or {}).get("spec", ""))).name: bench}
    base = None
    for name, model in models.items():
        report = reports.get(name) or reports.get(Path(model["folder"]).name)
        if report is None:
            raise ImdbDeployError(
                f"{where}: no bench rows for {name!r} (it timed {', '.join(reports)}); name each folder as the bench "
                "labels it (NAME=DIR) or bench every folder in one run"
            )
        speed = {key: (report["rows"].get(row) or {}).get("reviews_per_s") for key, row in BENCH_ROWS.items()}
        base = base or speed["pytorch"]
        model["reviews_per_s"] = speed
        model["vs_first_pytorch"] = {key: value / base if value and base else None for key, value in speed.items()}
        model["bench_samples"] = (report.get("data") or {}).get("samples")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", help="exported folders; NAME=DIR names a row")
    parser.add_argument("--bench", help="bench.json of one `imdb-deploy bench` run over these folders: speeds beside")
    parser.add_argument("--output", "-o", required=True, help="the JSON to write")
    args = parser.parse_args(argv)
    models = {}
    try:
        for spec in args.folders:
            name, _, path = spec.rpartition("=") if "=" in spec else (Path(spec).name, "", spec)
            models[name] = model_entry(Path(path))
        if args.bench:
            add_speed(models, read_json(Path(args.bench)), args.bench)
    except ImdbDeployError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    write_json_atomic(args.output, {"kind": "accuracy", "metrics": list(METRICS), "models": models})
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
