"""The composer: a trained PyTorch network -> codebooks, product tables and encoding thresholds.

Stage by stage (``docs/architecture.md``):

* :mod:`~rapidnn.composer.capture`: torch.fx graph capture into a small op vocabulary;
* :mod:`~rapidnn.composer.kmeans` and :mod:`~rapidnn.composer.codebook`: 1-D (tree) k-means
  codebooks and their fixed-point form;
* :mod:`~rapidnn.composer.config`: what the user chooses (w, u, bits, per-layer options);
* :mod:`~rapidnn.composer.ops` and :mod:`~rapidnn.composer.encoding`: the composed ops
  (product-table layers, encoders, pooling, residual adds) and the encoding thresholds;
* :mod:`~rapidnn.composer.compose`: ``compose(model, data) -> ComposedModel``;
* :mod:`~rapidnn.composer.composed`: the composed model; :mod:`~rapidnn.composer.modelfile` its
  ``.rapidnn`` file (safetensors + JSON manifest);
* :mod:`~rapidnn.composer.retrain` and :mod:`~rapidnn.composer.quality`: retraining and the
  paired quality loss.
"""
