"""The package version, in a module that imports nothing, so any module may read it without importing upward."""

__version__ = "0.2.0"
