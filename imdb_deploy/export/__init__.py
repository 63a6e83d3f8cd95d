"""Export: a trained folder into a self-describing ONNX folder (exporters, the export stage, the parity gate).
May import the leaves, rows/ and runtimes/; never training/, engines/, serve/, bench/.
"""

from __future__ import annotations

from imdb_deploy.lazy import lazy_names

_PUBLIC = {
    "export": ".stage",
    "ExportConfig": ".config",
    "ExportReport": ".stage",
    "check_parity": ".gate",
    "VerifyConfig": ".config",
    "ParityReport": ".parity",
    "record_parity": ".gate",
}
__all__ = list(_PUBLIC)
__getattr__, __dir__ = lazy_names(__name__, _PUBLIC)
