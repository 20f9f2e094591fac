"""rapidnn: RAPIDNN (Imani et al., arXiv 1806.05794) — deep-network inference inside memory.

The public API: :func:`compose` a trained network, :func:`retrain` it, :func:`load` a saved
one, :func:`simulate` it on RNA blocks, :func:`estimate` / :func:`compare` / :func:`audit` its
hardware cost against ISAAC, PipeLayer and a GPU, and cluster values with :func:`kmeans1d`.
"""

__version__ = "0.1.0"

from rapidnn.accel.config import SimConfig
from rapidnn.accel.simulator import SimResult, simulate
from rapidnn.accel.trace import Trace
from rapidnn.capture import CaptureError, UnsupportedOperationError, capture
from rapidnn.compose import ComposeError, compose
from rapidnn.composed import ComposedModel, IntegerResult
from rapidnn.config import ComposeConfig, LayerOptions
from rapidnn.costs import Comparison, audit, compare, estimate
from rapidnn.io import ModelFileError, load
from rapidnn.kmeans import kmeans1d, tree_kmeans1d
from rapidnn.retrain import RetrainResult, retrain

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
