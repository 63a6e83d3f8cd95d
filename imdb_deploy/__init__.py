"""imdb-deploy: DistilBERT sentiment on IMDb, from fine-tuning to fast ONNX inference.

The package's folders are its stages (README, "Layout"): training/, export/, runtimes/, engines/, rows/, serve/,
bench/ and demo/, with the leaves (errors, fileio, outputs, machine, folders, tokenization, metrics) below them and
cli/ on top. Public names load on first use, so `import imdb_deploy` imports no stage.
"""

from __future__ import annotations

from imdb_deploy.lazy import lazy_names
from imdb_deploy.version import __version__

_PUBLIC = {
    "Predictor": ".runtimes.predictor",
    "Prediction": ".runtimes.predictor",
    "ExportFolder": ".runtimes.folder",
    "train": ".training.train",
    "TrainConfig": ".training.config",
    "evaluate": ".training.evaluate",
    "EvaluateConfig": ".training.config",
    "distill": ".training.distill",
    "DistillConfig": ".training.config",
    "ExportConfig": ".export.config",
    "check_parity": ".export.gate",
    "VerifyConfig": ".export.config",
    "predict_file": ".engines.local",
    "PredictFileConfig": ".engines.config",
    "predict_ray": ".engines.ray",
    "RayPredictConfig": ".engines.config",
    "create_app": ".serve.app",
    "ServeConfig": ".serve.config",
    "run_bench": ".bench.run",
    "BenchConfig": ".bench.config",
    "run_demo": ".demo.run",
    "DemoConfig": ".demo.config",
}
__all__ = ["__version__", *_PUBLIC]
__getattr__, __dir__ = lazy_names(__name__, _PUBLIC)
