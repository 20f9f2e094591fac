"""Retraining: iterative reinterpretation until the composed model is within tolerance.

Each round (paper notes section 5, step 9; our reconstruction, decision F7):

1. fine-tune a cluster-aware float model for ``round_batches`` training batches (default: one
   epoch): every weight is its cluster's trainable shared centroid, rounded to the layer's
   fixed-point format (straight-through estimator), every encoded tensor is snapped to its
   nearest input centroid (straight-through estimator). The loss is, by default, distillation
   from the float model (``T^2 KL(softmax(t/T) || softmax(s/T)) + label_weight * CE(s, y)``,
   Hinton et al. 2015, T = 2, label weight 0.5): the quality loss compares the composed model
   with the float model, so the composed model is taught to agree with it; ``loss="ce"``
   trains on the labels only. The training batches continue from round to round (a new epoch
   starts when the data is exhausted);
2. re-compose from the updated shadow weights: weights are re-clustered, and input codebooks
   are re-estimated from the activations of the cluster-aware model;
3. evaluate the composed (integer) model on the validation data and stop as soon as its
   accuracy is within ``tolerance`` (absolute, 0.003 = 0.3 points) of the float model, once at
   least ``min_rounds`` rounds were run. The result is the round most accurate on validation
   among rounds ``>= min_rounds``.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from torch import nn

from rapidnn.composer.capture import CapturedGraph, float_op
from rapidnn.composer.codebook import fixed_point_for
from rapidnn.composer.compose import calibration_batches, compose_graph
from rapidnn.composer.composed import ComposedModel
from rapidnn.composer.ops import WeightedLayer
from rapidnn.composer.plan import make_plan
from rapidnn.composer.quality import predictions

LOSSES = ("distill", "ce")
#: what this module's retraining produces; bumped when a change alters its results, so that
#: stores and sweeps do not reuse models retrained by an earlier method (2: the cluster-aware
#: model rounds its weights to fixed point)
VERSION = 2


@dataclass
class RetrainRound:
    """One line of the retraining history (round 0 = before any fine-tuning)."""

    round: int
    batches: int
    train_loss: float | None
    composed_accuracy: float
    float_accuracy: float
    quality_loss: float
    seconds: float


@dataclass
class RetrainResult:
    """The chosen composed model, the history that led to it and the retraining settings."""

    composed: ComposedModel
    history: list[RetrainRound] = field(default_factory=list)
    converged: bool = False
    chosen: int = 0
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def float_accuracy(self) -> float:
        return self.history[0].float_accuracy

    @property
    def rounds(self) -> int:
        """Fine-tuning rounds run (the history's length minus round 0)."""
        return len(self.history) - 1

    @property
    def best(self) -> RetrainRound:
        return self.history[self.chosen]

    def to_dict(self) -> dict[str, Any]:
        return {"converged": self.converged, "rounds": self.rounds, "chosen_round": self.chosen,
                "settings": self.settings, "history": [asdict(r) for r in self.history]}


class ClusterAwareModel(nn.Module):
    """Float model whose weights and encoded tensors follow a ComposedModel's codebooks.

    Weights are ``centroids[g, code]`` with trainable shared centroids: the gradient of a
    centroid is the sum of its members' gradients (Deep-Compression-style weight sharing).
    The forward pass rounds the centroids to the layer's fixed-point format as the composer
    does (decision F5; straight-through gradient), so that updates smaller than one step
    accumulate in the float centroids instead of being rounded away at re-composition.
    Codes stay fixed within a round; re-composition re-clusters afterwards.
    """

    def __init__(self, composed: ComposedModel) -> None:
        super().__init__()
        self.graph: CapturedGraph = composed.source
        self.plan = make_plan(self.graph, composed.config)
        # lists indexed by layer (nn.ParameterDict refuses the dots of module-path names)
        self.weight_centroids = nn.ParameterList()
        self.biases = nn.ParameterList()
        self.index: dict[str, int] = {}
        self.codes: dict[str, torch.Tensor] = {}
        self.weight_bits: dict[str, int] = {}
        for op in composed.ops:
            if isinstance(op, WeightedLayer):
                node = self.graph[op.name]
                self.index[op.name] = len(self.weight_centroids)
                self.weight_centroids.append(nn.Parameter(
                    op.weight_centroids.detach().float().cpu().clone()))
                bias = node.bias if node.bias is not None else torch.zeros(node.weight.shape[0])
                self.biases.append(nn.Parameter(bias.detach().clone().float()))
                codes = op.weight_codes.long().cpu()
                groups = op.weight_centroids.shape[0]
                g = (torch.arange(codes.shape[0]) % groups).reshape(
                    (-1,) + (1,) * (codes.dim() - 1))
                self.codes[op.name] = g * op.weight_centroids.shape[1] + codes  # flat index
                self.weight_bits[op.name] = int(op.spec["weight_bits"])
        self.centroids = {key: cb.quantized().float().cpu()
                          for key, cb in composed.codebooks.items()}

    def clustered_weight(self, name: str) -> torch.Tensor:
        """Every weight replaced by its (trainable) cluster centroid in fixed point."""
        c = _fixed_point(self.weight_centroids[self.index[name]], self.weight_bits[name])
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
        origins = self.plan.origins
        for node in self.graph:
            if node.op == "input":
                val = x
            elif node.op == "output":
                return env[node.inputs[0]]
            elif node.is_weighted:
                val = float_op(node, [env[node.inputs[0]]], self.clustered_weight(node.name),
                               self.biases[self.index[node.name]])
            else:
                val = float_op(node, [env[i] for i in node.inputs])
            if record is not None:
                record(node.name, val)
            if node.name in origins:
                val = self.snap(origins[node.name], val)
            env[node.name] = val
        raise RuntimeError("graph without output")

    def updated_graph(self) -> CapturedGraph:
        """The captured graph with the current shadow weights and biases."""
        nodes = []
        for node in self.graph:
            node = copy.copy(node)
            if node.is_weighted:
                node.weight = self.clustered_weight(node.name).detach().cpu().clone()
                node.bias = self.biases[self.index[node.name]].detach().cpu().clone()
            nodes.append(node)
        return CapturedGraph(nodes)


def _fixed_point(c: torch.Tensor, bits: int) -> torch.Tensor:
    """``c`` rounded to the smallest power-of-two format holding it in ``bits`` (as
    :func:`rapidnn.composer.codebook.quantize`), with a straight-through gradient."""
    fmt = fixed_point_for(c.detach().double().cpu().numpy(), bits)
    q = torch.clamp(torch.round(c.detach() / fmt.scale), fmt.qmin, fmt.qmax) * fmt.scale
    return c + (q - c.detach())


def accuracy(model: Callable[[torch.Tensor], torch.Tensor], data: Iterable[Any],
             device: torch.device | str = "cpu") -> float:
    """Top-1 accuracy of ``model`` over ``(input, label)`` batches."""
    pred, labels = predictions(model, data, device)
    return int((pred == labels).sum()) / labels.numel()


def retrain(composed: ComposedModel, train_data: Iterable[Any], val_data: Iterable[Any],
            tolerance: float = 0.003, max_rounds: int = 10, *, round_batches: int | None = None,
            min_rounds: int = 0, loss: str = "distill", temperature: float = 2.0,
            label_weight: float = 0.5, lr: float = 1e-4, seed: int = 0, calibration: int = 20,
            progress: bool = True, console: Console | None = None) -> RetrainResult:
    """Fine-tune and re-compose until validation accuracy is within ``tolerance`` of float.

    ``train_data``/``val_data`` are re-iterable sequences of ``(input, label)`` batches (a
    DataLoader with a seeded generator keeps shuffling deterministic); a round is
    ``round_batches`` training batches (None: ``len(train_data)``, one epoch); ``loss`` is
    ``"distill"`` (from ``composed.float_forward``, with ``temperature`` and ``label_weight``)
    or ``"ce"`` (module docstring); ``calibration`` is the number of training batches used to
    re-estimate input codebooks each round; the progress bar goes to ``console`` (default:
    stderr).
    """
    if tolerance < 0:
        raise ValueError("tolerance must be non-negative")
    if max_rounds < 0 or min_rounds < 0 or min_rounds > max_rounds:
        raise ValueError(f"need 0 <= min_rounds <= max_rounds, got {min_rounds}, {max_rounds}")
    if loss not in LOSSES:
        raise ValueError(f"unknown retraining loss {loss!r} ({', '.join(LOSSES)})")
    if round_batches is not None and round_batches < 1:
        raise ValueError(f"round_batches must be positive, got {round_batches}")
    if temperature <= 0 or label_weight < 0:
        raise ValueError("temperature must be positive and label_weight non-negative")
    per_round = round_batches if round_batches is not None else len(train_data)  # type: ignore[arg-type]
    settings = {"version": VERSION, "loss": loss, "lr": lr, "round_batches": per_round,
                "min_rounds": min_rounds, "max_rounds": max_rounds, "tolerance": tolerance,
                "seed": seed,
                **({"temperature": temperature, "label_weight": label_weight}
                   if loss == "distill" else {})}
    torch.manual_seed(seed)
    start = time.perf_counter()
    float_acc = accuracy(composed.float_forward, val_data)
    comp_acc = accuracy(composed, val_data)
    history = [RetrainRound(0, 0, None, comp_acc, float_acc, float_acc - comp_acc,
                            time.perf_counter() - start)]
    models = {0: composed}
    batches = calibration_batches(train_data, calibration)
    stream = _endless(train_data)
    objective = _objective(loss, composed.float_forward, temperature, label_weight)
    current = composed
    with _progress(progress, console) as bar:
        for r in range(1, max_rounds + 1):
            if r - 1 >= min_rounds and history[-1].quality_loss <= tolerance:
                break
            t0 = time.perf_counter()
            qat = ClusterAwareModel(current)
            train_loss = _train_round(qat, stream, per_round, objective, lr, bar, r, max_rounds)
            current = compose_graph(qat.updated_graph(), batches, current.config,
                                    forward=qat.forward)
            current.metadata = dict(composed.metadata)
            comp_acc = accuracy(current, val_data)
            history.append(RetrainRound(r, per_round, train_loss, comp_acc, float_acc,
                                        float_acc - comp_acc, time.perf_counter() - t0))
            models[r] = current
    eligible = [h for h in history if h.round >= min_rounds]
    chosen = max(eligible, key=lambda h: (h.composed_accuracy, -h.round)).round
    converged = any(h.quality_loss <= tolerance for h in eligible)
    return RetrainResult(models[chosen], history, converged, chosen, settings)


Objective = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def _objective(loss: str, teacher: Callable[[torch.Tensor], torch.Tensor], temperature: float,
               label_weight: float) -> Objective:
    """``f(x, student_logits, labels)``: the training loss of one batch (module docstring)."""
    if loss == "ce":
        return lambda x, s, y: F.cross_entropy(s, y)

    def distill(x: torch.Tensor, s: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            t = teacher(x)
        soft = F.kl_div(F.log_softmax(s / temperature, 1), F.log_softmax(t / temperature, 1),
                        log_target=True, reduction="batchmean")
        return temperature ** 2 * soft + label_weight * F.cross_entropy(s, y)

    return distill


def _endless(data: Iterable[Any]) -> Iterator[Any]:
    """The batches of ``data``, re-iterated (a new epoch) whenever they run out."""
    while True:
        empty = True
        for item in data:
            empty = False
            yield item
        if empty:
            raise ValueError("retraining needs at least one training batch")


def _train_round(model: ClusterAwareModel, stream: Iterator[Any], batches: int,
                 objective: Objective, lr: float, bar: Progress | None, r: int,
                 max_rounds: int) -> float:
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    task = None
    if bar is not None:
        task = bar.add_task(f"retrain round {r}/{max_rounds}", total=batches)
    losses = []
    for _ in range(batches):
        x, y = next(stream)
        opt.zero_grad(set_to_none=True)
        loss = objective(x, model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if bar is not None:
            bar.advance(task)
    if bar is not None:
        bar.remove_task(task)
    return sum(losses) / len(losses)


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
