"""imdb-deploy: DistilBERT sentiment on IMDb, from fine-tuning to fast ONNX inference."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["Predictor", "__version__"]


def __getattr__(name: str):
    # Lazy, so `import imdb_deploy` (and the CLI's --help) stays fast and does not import onnxruntime.
    if name == "Predictor":
        from imdb_deploy.predict import Predictor

        return Predictor
    raise AttributeError(f"module 'imdb_deploy' has no attribute {name!r}")
