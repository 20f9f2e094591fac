"""ComposedModel: a trained network reinterpreted for the RAPIDNN accelerator.

Its integer semantics *are* the accelerator's semantics: ``integer_forward`` returns every
integer accumulator and every code, and ``forward`` is exactly its dequantized output. The
per-layer views expose codebooks, product tables, encoding thresholds and memory footprint.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, KeysView
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from rapidnn.composer.capture import CapturedGraph
from rapidnn.composer.config import ComposeConfig
from rapidnn.composer.filecheck import check_parts
from rapidnn.composer.modelfile import (
    ModelFileError,
    ModelParts,
    read_model_file,
    write_model_file,
)
from rapidnn.composer.ops import Codebook, Encode, Output, WeightedLayer


@dataclass
class IntegerResult:
    """Everything ``integer_forward`` computed: integers per producer, codes per tensor."""

    accumulators: dict[str, torch.Tensor]
    codes: dict[str, torch.Tensor]
    output: torch.Tensor  # real-valued network output (float32)


@dataclass
class LayerView:
    """Read-only view of one weighted layer for inspection and reports."""

    name: str
    op: str
    layer: WeightedLayer
    input_codebook: Codebook
    encoder: Encode | None

    @property
    def weight_centroids(self) -> torch.Tensor:
        return self.layer.weight_centroids

    @property
    def weight_codes(self) -> torch.Tensor:
        return self.layer.weight_codes

    @property
    def table(self) -> torch.Tensor:
        return self.layer.table

    @property
    def thresholds(self) -> torch.Tensor | None:
        return None if self.encoder is None else self.encoder.thresholds

    def memory(self) -> dict[str, float]:
        """Memory footprint in bits: table, weight codes, thresholds, bias; and per neuron.

        ``bits_per_neuron`` divides the layer total by its output neurons (output channels for
        a convolution, whose table serves every position); ``own_table_bits_per_neuron`` is the
        table size if each neuron held a private copy (paper notes 4: ~5 KB per neuron).
        """
        s = self.layer.spec
        groups, w, u = self.layer.table.shape
        neurons = int(self.layer.weight_codes.shape[0])
        table = groups * w * u * int(s["entry_bits"])
        codes = int(self.layer.weight_codes.numel()) * max(1, math.ceil(math.log2(w)))
        thresholds = 0
        if self.encoder is not None:
            th = self.encoder.thresholds
            thresholds = int(th.numel()) * int(s["acc_bits"])
        bias = neurons * int(s["acc_bits"]) if s["bias_in_accumulator"] else 0
        total = table + codes + thresholds + bias
        return {
            "table_bits": table,
            "weight_code_bits": codes,
            "threshold_bits": thresholds,
            "bias_bits": bias,
            "total_bits": total,
            "neurons": neurons,
            "bits_per_neuron": total / neurons,
            "own_table_bits_per_neuron": w * u * int(s["entry_bits"]),
        }


class Codebooks(nn.Module):
    """The input codebooks by tensor name: a read-only mapping that registers them as
    submodules (``nn.ModuleDict`` refuses the dots of module-path names)."""

    def __init__(self, codebooks: dict[str, Codebook]) -> None:
        super().__init__()
        self.books = nn.ModuleList(codebooks.values())
        self.index = {key: i for i, key in enumerate(codebooks)}

    def __getitem__(self, key: str) -> Codebook:
        return self.books[self.index[key]]

    def __contains__(self, key: object) -> bool:
        return key in self.index

    def __iter__(self) -> Iterator[str]:
        return iter(self.index)

    def __len__(self) -> int:
        return len(self.index)

    def keys(self) -> KeysView[str]:
        return self.index.keys()

    def values(self) -> list[Codebook]:
        return list(self.books)

    def items(self) -> list[tuple[str, Codebook]]:
        return [(key, self.books[i]) for key, i in self.index.items()]


class ComposedModel(nn.Module):
    """A network reinterpreted as codebooks, product tables and encoding thresholds.

    Build one with :func:`rapidnn.compose`; load one with :func:`rapidnn.load`.
    """

    def __init__(self, ops: list[nn.Module], codebooks: dict[str, Codebook],
                 source: CapturedGraph, config: ComposeConfig,
                 metadata: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.ops = nn.ModuleList(ops)
        self.codebooks = Codebooks(codebooks)
        self.source = source
        self.config = config
        # free-form JSON facts saved with the model, e.g. {"dataset": "mnist"} for the CLI
        self.metadata: dict[str, Any] = dict(metadata or {})

    # execution -------------------------------------------------------------------------
    def integer_forward(self, x: torch.Tensor) -> IntegerResult:
        """Run the integer semantics; return every accumulator, every code and the output."""
        check_input(x, self.source.input.shape)
        codes: dict[str, torch.Tensor] = {}
        ints: dict[str, torch.Tensor] = {}
        out = None
        for op in self.ops:
            if isinstance(op, Output):
                out = op.value(codes, ints)
            else:
                op.run(codes, ints, x)
        assert out is not None
        return IntegerResult(ints, codes, out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The dequantized network output of :meth:`integer_forward` (logits)."""
        return self.integer_forward(x).output

    @torch.no_grad()
    def float_forward(self, x: torch.Tensor) -> torch.Tensor:
        """The original float network (BatchNorm folded), for reference."""
        return self.source.forward(x)

    # inspection ------------------------------------------------------------------------
    def layer_names(self) -> list[str]:
        return [op.name for op in self.ops if isinstance(op, WeightedLayer)]

    def layer(self, name: str) -> LayerView:
        """Codebooks, table, thresholds and memory of weighted layer ``name``."""
        for i, op in enumerate(self.ops):
            if isinstance(op, WeightedLayer) and op.name == name:
                enc = next((o for o in self.ops[i + 1:] if isinstance(o, Encode)
                            and o.inputs == [name]), None)
                return LayerView(name, op.spec["op"], op, self.codebooks[op.spec["codebook"]],
                                 enc)
        raise KeyError(f"no weighted layer named {name!r}; layers: {self.layer_names()}")

    def layers(self) -> list[LayerView]:
        return [self.layer(n) for n in self.layer_names()]

    def memory(self) -> dict[str, Any]:
        """Per-layer memory footprint and the network totals (bits)."""
        per = {v.name: v.memory() for v in self.layers()}
        total = sum(m["total_bits"] for m in per.values())
        neurons = sum(m["neurons"] for m in per.values())
        return {"layers": per, "total_bits": total, "neurons": neurons,
                "bits_per_neuron": total / max(1, neurons)}

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write a ``.rapidnn`` file atomically (safetensors + JSON manifest;
        :mod:`rapidnn.composer.modelfile`)."""
        write_model_file(path, ModelParts(list(self.ops), dict(self.codebooks), self.source,
                                          self.config, self.metadata))

    def extra_repr(self) -> str:
        c = self.config
        return (f"w={c.weight_clusters}, u={c.input_clusters}, layers={self.layer_names()}, "
                f"acc_bits={c.acc_bits}")


def check_input(x: torch.Tensor, shape: tuple[int, ...]) -> None:
    """A batch of the model's input shape with real (float, integer or bool) finite values on a
    device with data (one clear error otherwise)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"expected a tensor input, got {type(x).__name__}")
    if x.is_complex() or x.is_quantized:
        raise TypeError(f"input of dtype {x.dtype} is not real-valued: give a float, integer "
                        f"or bool tensor")
    if x.is_meta:
        raise ValueError("input is on the meta device: it holds no values")
    if tuple(x.shape[1:]) != tuple(shape):
        raise ValueError(f"input shape {tuple(x.shape)} does not match the composed model's "
                         f"input (batch, {', '.join(map(str, shape))})")
    # a finite sum proves every value finite (cheap); otherwise check element by element
    if x.is_floating_point() and not math.isfinite(float(x.sum())) and \
            not bool(torch.isfinite(x).all()):
        raise ValueError("input contains NaN or infinite values")


def load(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> ComposedModel:
    """Read a ``.rapidnn`` file written by :meth:`ComposedModel.save`. Never unpickles; the file
    is validated completely (checksums, schema, and every op rebuilt from the stored centroids:
    :mod:`~rapidnn.composer.filecheck`), and a bad file raises
    :class:`~rapidnn.composer.modelfile.ModelFileError` naming it and the field."""
    if not isinstance(path, str | os.PathLike):
        raise TypeError(f"load: path must be a str or os.PathLike, not {type(path).__name__}")
    p = read_model_file(path)
    try:
        check_parts(p)
    except ValueError as exc:
        raise ModelFileError(f"{path}: {exc}") from exc
    return ComposedModel(p.ops, p.codebooks, p.source, p.config, p.metadata).to(map_location)
