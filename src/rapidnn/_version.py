"""The package version (one place: the model file records which rapidnn wrote it)."""

__version__ = "0.1.0"
