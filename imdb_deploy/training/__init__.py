"""Training: labelled reviews into a fine-tuned classifier (train, its accelerate loop and step), evaluate, distill,
random-weight architectures, convert-bert. May import the leaves, rows/ and runtimes/; never export/, engines/,
serve/, bench/.
"""

from __future__ import annotations

from imdb_deploy.lazy import lazy_names

_PUBLIC = {
    "train": ".train",
    "TrainConfig": ".config",
    "evaluate": ".evaluate",
    "EvaluateConfig": ".config",
    "distill": ".distill",
    "DistillConfig": ".config",
}
__all__ = list(_PUBLIC)
__getattr__, __dir__ = lazy_names(__name__, _PUBLIC)
