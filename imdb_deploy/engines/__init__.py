"""Engines: jobs over many rows (the local streaming engine, the Ray Data job and its cluster helpers), one options type
and one summary type for both. May import the leaves, rows/ and runtimes/.
"""

from __future__ import annotations

from imdb_deploy.lazy import lazy_names

_PUBLIC = {
    "predict_file": ".local",
    "PredictFileConfig": ".config",
    "ReadOptions": ".config",
    "PredictSummary": ".config",
    "predict_ray": ".ray",
    "RayPredictConfig": ".config",
    "RayPredictSummary": ".config",
}
__all__ = list(_PUBLIC)
__getattr__, __dir__ = lazy_names(__name__, _PUBLIC)
