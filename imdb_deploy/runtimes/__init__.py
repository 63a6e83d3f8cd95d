"""Runtimes: what runs a model (PyTorch, onnxruntime's Predictor, OpenVINO), the exported folder they open, and the
measured choice of the default variant. May import the leaves only.
"""

from __future__ import annotations

from imdb_deploy.lazy import lazy_names

_PUBLIC = {
    "Predictor": ".predictor",
    "Prediction": ".predictor",
    "ExportFolder": ".folder",
}
__all__ = list(_PUBLIC)
__getattr__, __dir__ = lazy_names(__name__, _PUBLIC)
