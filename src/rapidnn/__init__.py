"""rapidnn: RAPIDNN (Imani et al., arXiv 1806.05794) — deep-network inference inside memory."""

__version__ = "0.1.0"
