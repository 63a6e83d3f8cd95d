"""Demo: the whole pipeline on real reviews, composed from the stages' public functions. May import every stage; nothing
imports it but cli/.
"""

from __future__ import annotations

from imdb_deploy.lazy import lazy_names

_PUBLIC = {
    "run_demo": ".run",
    "DemoConfig": ".config",
}
__all__ = list(_PUBLIC)
__getattr__, __dir__ = lazy_names(__name__, _PUBLIC)
