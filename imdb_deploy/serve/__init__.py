"""Serve: the HTTP service (app, dynamic batcher, TEI's wire types, access rules, metrics, HTTP glue). May import the
leaves, rows/, runtimes/ and engines/' light config.
"""

from __future__ import annotations

from imdb_deploy.lazy import lazy_names

_PUBLIC = {
    "create_app": ".app",
    "serve": ".app",
    "ServeConfig": ".config",
}
__all__ = list(_PUBLIC)
__getattr__, __dir__ = lazy_names(__name__, _PUBLIC)
