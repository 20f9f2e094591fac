"""rapidnn: RAPIDNN (Imani et al., arXiv 1806.05794) — deep-network inference inside memory.

The public API: :func:`compose` a trained network, :func:`retrain` it, :func:`load` a saved
one, :func:`simulate` it on RNA blocks, :func:`estimate` / :func:`compare` / :func:`audit` its
hardware cost against ISAAC, PipeLayer and a GPU, and cluster values with :func:`kmeans1d`.
"""

from rapidnn._version import __version__
from rapidnn.accel.config import SimConfig
from rapidnn.accel.simulator import SimResult, simulate
from rapidnn.accel.trace import Trace
from rapidnn.composer.capture import CaptureError, UnsupportedOperationError, capture
from rapidnn.composer.compose import ComposeError, compose
from rapidnn.composer.composed import ComposedModel, IntegerResult, load
from rapidnn.composer.config import ComposeConfig, LayerOptions
from rapidnn.composer.kmeans import kmeans1d, tree_kmeans1d
from rapidnn.composer.modelfile import ModelFileError
from rapidnn.composer.retrain import RetrainResult, retrain
from rapidnn.hardware.costs import Comparison, audit, compare, estimate

__all__ = [
    "CaptureError",
    "Comparison",
    "ComposeConfig",
    "ComposeError",
    "ComposedModel",
    "IntegerResult",
    "LayerOptions",
    "ModelFileError",
    "RetrainResult",
    "SimConfig",
    "SimResult",
    "Trace",
    "UnsupportedOperationError",
    "__version__",
    "audit",
    "capture",
    "compare",
    "compose",
    "estimate",
    "kmeans1d",
    "load",
    "retrain",
    "simulate",
    "tree_kmeans1d",
]
