"""Public names of a package, loaded on first use: `import imdb_deploy` (and `imdb-deploy --help`) loads no stage,
and a subpackage's light `config` module can be imported without its heavy modules."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable


def lazy_names(package: str, names: dict[str, str]) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """A module `__getattr__` and `__dir__` for `package` that import `names[name]` (a module relative to the
    package) the first time `name` is read, and keep the value in the package.

    Args:
        package: the package's `__name__`.
        names: public name -> the module that defines it, e.g. {"train": ".train"}.
    """

    def __getattr__(name: str):
        if name not in names:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(names[name], package), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *names})

    return __getattr__, __dir__
