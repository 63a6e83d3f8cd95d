"""Bench: every runtime side by side on the same reviews (rows, timing, report and chart, the frontier of several
models). May import the leaves, rows/, runtimes/, training/ and export/.
"""

from __future__ import annotations

from imdb_deploy.lazy import lazy_names

_PUBLIC = {
    "run_bench": ".run",
    "BenchConfig": ".config",
}
__all__ = list(_PUBLIC)
__getattr__, __dir__ = lazy_names(__name__, _PUBLIC)
