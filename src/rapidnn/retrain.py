"""Retraining: iterative reinterpretation until the composed model is within tolerance.

Each round (paper notes section 5, step 9; our reconstruction, decision F7):

1. fine-tune one epoch with a cluster-aware float model: weights are replaced by the mean of
   their cluster (shadow-weight updates through a straight-through estimator), every encoded
   tensor is snapped to its nearest input centroid (straight-through estimator);
2. re-compose from the updated shadow weights: weights are re-clustered, and input codebooks
   are re-estimated from the activations of the cluster-aware model;
3. evaluate the composed (integer) model on the validation data and stop as soon as its accuracy
   is within ``tolerance`` (absolute, 0.003 = 0.3 points) of the float model.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from torch import nn

from rapidnn.capture import CapturedGraph, float_op
from rapidnn.compose import calibration_batches, compose_graph, make_plan
from rapidnn.composed import ComposedModel
from rapidnn.ops import WeightedLayer
from rapidnn.training import fit_epoch


@dataclass
class RetrainRound:
    """One line of the retraining history (epoch 0 = before any fine-tuning)."""

    epoch: int
    train_loss: float | None
    composed_accuracy: float
    float_accuracy: float
    quality_loss: float
    seconds: float


@dataclass
class RetrainResult:
    """The best composed model found and the history that led to it."""

    composed: ComposedModel
    history: list[RetrainRound] = field(default_factory=list)
    converged: bool = False

    @property
    def float_accuracy(self) -> float:
        return self.history[0].float_accuracy

    @property
    def best(self) -> RetrainRound:
        return max(self.history, key=lambda r: r.composed_accuracy)

    def to_dict(self) -> dict[str, Any]:
        return {"converged": self.converged, "history": [asdict(r) for r in self.history]}


class ClusterAwareModel(nn.Module):
    """Float model whose weights and encoded tensors follow a ComposedModel's codebooks.

    Weights are ``centroids[g, code]`` with trainable shared centroids: the gradient of a
    centroid is the sum of its members' gradients (Deep-Compression-style weight sharing).
    Codes stay fixed within a round; re-composition re-clusters afterwards.
    """

    def __init__(self, composed: ComposedModel) -> None:
        super().__init__()
        self.graph: CapturedGraph = composed.source
        self.plan = make_plan(self.graph, composed.config)
        self.weight_centroids = nn.ParameterDict()
        self.biases = nn.ParameterDict()
        self.codes: dict[str, torch.Tensor] = {}
        for op in composed.ops:
            if isinstance(op, WeightedLayer):
                node = self.graph[op.name]
                self.weight_centroids[op.name] = nn.Parameter(
                    op.weight_centroids.detach().float().cpu().clone())
                bias = node.bias if node.bias is not None else torch.zeros(node.weight.shape[0])
                self.biases[op.name] = nn.Parameter(bias.detach().clone().float())
                codes = op.weight_codes.long().cpu()
                groups = op.weight_centroids.shape[0]
                g = (torch.arange(codes.shape[0]) % groups).reshape(
                    (-1,) + (1,) * (codes.dim() - 1))
                self.codes[op.name] = g * op.weight_centroids.shape[1] + codes  # flat index
        self.centroids = {key: cb.quantized().float().cpu()
                          for key, cb in composed.codebooks.items()}

    def clustered_weight(self, name: str) -> torch.Tensor:
        """Every weight replaced by its (trainable) cluster centroid."""
        c = self.weight_centroids[name]
        return c.reshape(-1)[self.codes[name].to(c.device)]

    def snap(self, key: str, v: torch.Tensor) -> torch.Tensor:
        """Nearest-centroid quantization with a straight-through gradient."""
        c = self.centroids[key].to(v.device)
        mids = (c[1:] + c[:-1]) / 2
        q = c[torch.bucketize(v.detach(), mids, right=False)]
        return v + (q - v).detach()

    def forward(self, x: torch.Tensor,
                record: Callable[[str, torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
        env: dict[str, torch.Tensor] = {}
        origins = {k for k in self.plan.codebook_of.values()}
        for node in self.graph:
            if node.op == "input":
                val = x
            elif node.op == "output":
                return env[node.inputs[0]]
            elif node.is_weighted:
                val = float_op(node, [env[node.inputs[0]]], self.clustered_weight(node.name),
                               self.biases[node.name])
            else:
                val = float_op(node, [env[i] for i in node.inputs])
            if record is not None:
                record(node.name, val)
            if node.name in origins:
                val = self.snap(node.name, val)
            env[node.name] = val
        raise RuntimeError("graph without output")

    def updated_graph(self) -> CapturedGraph:
        """The captured graph with the current shadow weights and biases."""
        nodes = []
        for node in self.graph:
            node = copy.copy(node)
            if node.is_weighted:
                node.weight = self.clustered_weight(node.name).detach().cpu().clone()
                node.bias = self.biases[node.name].detach().cpu().clone()
            nodes.append(node)
        return CapturedGraph(nodes)


@torch.no_grad()
def accuracy(model: Callable[[torch.Tensor], torch.Tensor], data: Iterable[Any],
             device: torch.device | str = "cpu") -> float:
    """Top-1 accuracy of ``model`` over ``(input, label)`` batches."""
    correct = total = 0
    for x, y in data:
        pred = model(x.to(device)).argmax(1).cpu()
        correct += int((pred == y).sum())
        total += int(y.numel())
    if total == 0:
        raise ValueError("accuracy needs at least one labelled example")
    return correct / total


def retrain(composed: ComposedModel, train_data: Iterable[Any], val_data: Iterable[Any],
            tolerance: float = 0.003, max_epochs: int = 10, lr: float = 1e-4, seed: int = 0,
            calibration: int = 20, progress: bool = True,
            console: Console | None = None) -> RetrainResult:
    """Fine-tune and re-compose until validation accuracy is within ``tolerance`` of float.

    ``train_data``/``val_data`` are re-iterable sequences of ``(input, label)`` batches (a
    DataLoader with a seeded generator keeps shuffling deterministic); ``calibration`` is the
    number of training batches used to re-estimate input codebooks each round; the progress
    bar goes to ``console`` (default: stderr).
    """
    if tolerance < 0:
        raise ValueError("tolerance must be non-negative")
    if max_epochs < 0:
        raise ValueError("max_epochs must be non-negative")
    torch.manual_seed(seed)
    start = time.perf_counter()
    float_acc = accuracy(composed.float_forward, val_data)
    comp_acc = accuracy(composed, val_data)
    history = [RetrainRound(0, None, comp_acc, float_acc, float_acc - comp_acc,
                            time.perf_counter() - start)]
    best = composed
    batches = calibration_batches(train_data, calibration)
    current = composed
    with _progress(progress, console) as bar:
        for epoch in range(1, max_epochs + 1):
            if float_acc - history[-1].composed_accuracy <= tolerance:
                break
            t0 = time.perf_counter()
            qat = ClusterAwareModel(current)
            loss = _train_epoch(qat, train_data, lr, bar, epoch, max_epochs)
            current = compose_graph(qat.updated_graph(), batches, current.config,
                                    forward=qat.forward)
            current.metadata = dict(composed.metadata)
            comp_acc = accuracy(current, val_data)
            history.append(RetrainRound(epoch, loss, comp_acc, float_acc, float_acc - comp_acc,
                                        time.perf_counter() - t0))
            if comp_acc > max(r.composed_accuracy for r in history[:-1]):
                best = current
    converged = min(r.quality_loss for r in history) <= tolerance
    return RetrainResult(best, history, converged)


def _train_epoch(model: ClusterAwareModel, data: Iterable[Any], lr: float, bar: Progress | None,
                 epoch: int, max_epochs: int) -> float:
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    total = getattr(data, "__len__", None)
    task = None
    if bar is not None:
        task = bar.add_task(f"retrain epoch {epoch}/{max_epochs}",
                            total=total() if total else None)
    loss = fit_epoch(model, data, opt,
                     on_batch=None if bar is None else lambda i: bar.advance(task))
    if bar is not None:
        bar.remove_task(task)
    return loss


class _NoProgress:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def _progress(enabled: bool, console: Console | None = None):
    """The retraining progress bar, on stderr: stdout stays clean for results and --json."""
    if not enabled:
        return _NoProgress()
    return Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}"),
                    TimeElapsedColumn(), transient=True,
                    console=console if console is not None else Console(stderr=True))
