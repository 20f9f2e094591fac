"""The ``rapidnn`` command line: the typer ``app`` (:mod:`rapidnn.cli.app`) with the model
commands (:mod:`rapidnn.cli.model`) and the experiment commands (:mod:`rapidnn.cli.experiments`)."""

from rapidnn.cli import experiments, model
from rapidnn.cli.app import app

experiments.register(app)

__all__ = ["app", "model"]
