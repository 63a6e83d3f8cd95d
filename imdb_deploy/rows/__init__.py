"""Rows in and out: labelled datasets, input files and URLs, streaming readers, the one review check, writers, object
stores. May import the leaves only.
"""

from __future__ import annotations

from imdb_deploy.lazy import lazy_names

_PUBLIC = {
    "load_split": ".labelled",
    "stratified_sample": ".labelled",
    "ReviewSplit": ".labelled",
}
__all__ = list(_PUBLIC)
__getattr__, __dir__ = lazy_names(__name__, _PUBLIC)
