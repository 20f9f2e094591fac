"""The shape of the files the experiments read back (``results.json``, ``sweep.json``), checked
when they are read: a hand-edited or truncated file is one clear error naming the file and the
field (``workloads.0.memory.neurons: field required``), not a KeyError in the middle of a
report. Only what is read back is checked; other keys are allowed (and kept)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError


class _Shape(BaseModel):
    """Strict types (an int is no str, a bool no number), unknown keys allowed."""

    model_config = ConfigDict(strict=True, extra="ignore")


class Ratios(_Shape):
    energy_efficiency: float
    speedup: float


class Point(_Shape):
    """One (w, u) point of a sweep."""

    weight_clusters: int
    input_clusters: int
    float_accuracy: float
    composed_accuracy: float
    quality_loss: float
    bits_per_neuron: float
    bytes_per_neuron: float
    energy_j: float
    quality_loss_se: float | None = None
    accuracy_before_retraining: float | None = None
    retrained: bool = False
    retrain_rounds: int | None = None
    search: str | None = None
    seconds: float | None = None


class SweepFile(_Shape):
    """``sweep.json`` as a resumed sweep reads it."""

    format: str
    options: dict[str, Any]
    points: list[Point]


class Budget(_Shape):
    test_images: int | None
    val_images: int | None
    train_batches: int | None
    sim_images: int | None
    approx_images: int | None
    max_rounds: int
    min_rounds: int


class Machine(_Shape):
    platform: str
    cpu_count: int | None
    torch: str
    torch_threads: int


class Part(_Shape):
    source: str
    seconds: float
    machine: Machine
    workloads: list[str]
    shape_networks: list[str]
    complete: bool


class Retrain(_Shape):
    rounds: int
    chosen_round: int
    converged: bool


class Simulation(_Shape):
    images: int
    agreement: float


class ApproxRow(_Shape):
    bits: int | None
    accuracy: float
    agreement: float


class Approximation(_Shape):
    rows: list[ApproxRow]


class LayerMemory(_Shape):
    neurons: int
    bits_per_neuron: float
    table_bits: float
    total_bits: float


class Memory(_Shape):
    neurons: int
    bits_per_neuron: float
    total_bits: float
    layers: dict[str, LayerMemory]


class Smallest(_Shape):
    weight_clusters: int
    input_clusters: int
    quality_loss: float
    bytes_per_neuron: float
    retrain_rounds: int | None = None


class Occupancy(_Shape):
    blocks_used: int
    blocks_available: float
    before: float
    after: float
    throughput_before_ips: float
    throughput_after_ips: float
    throughput_at_full_occupancy_ips: float


class BlocksAgree(_Shape):
    layers: int
    equal: int


class Scenario(_Shape):
    name: str
    description: str = ""


class Change(_Shape):
    change: str
    plausible: bool
    factor: float | None = None


class ChangeSet(_Shape):
    changes: list[Change]
    ratio: float


class Needed(_Shape):
    smallest: ChangeSet | None
    plausible: bool


class PaperRatio(Needed):
    paper: float
    default: float


class Closest(_Shape):
    scenario: str
    ratio: float


class Bar(_Shape):
    parameter: str
    low: float
    high: float


class Audit(_Shape):
    network: str
    paper: dict[str, dict[str, float] | str]
    scenarios: list[Scenario]
    closest: dict[str, Closest]
    tornado: dict[str, list[Bar]]
    smallest_changes: dict[str, PaperRatio]
    smallest_rapidnn_changes: dict[str, Needed]


class FaultPoint(_Shape):
    rate: float
    accuracy: float
    std: float


class FaultCurve(_Shape):
    block: str
    points: list[FaultPoint]
    rate_for_one_point: float | None
    one_point_at_first_rate: bool


class Faults(_Shape):
    clean_accuracy: float
    curves: list[FaultCurve]


class Hottest(_Shape):
    layer: str
    writes_per_inference: float


class Levelled(_Shape):
    lifetime_inferences: float | None
    lifetime_years: float | None


class Endurance(_Shape):
    hottest: Hottest
    lifetime_inferences: float | None
    lifetime_years: float | None
    with_wear_levelling: Levelled


class Workload(_Shape):
    """One workload's row of ``results.json``."""

    name: str
    title: str
    selection: str
    test_images: int
    weight_clusters: int
    input_clusters: int
    float_accuracy: float
    composed_accuracy_before_retraining: float
    composed_accuracy: float
    quality_loss: float
    quality_loss_se: float | None = None
    seconds: float
    retrain: Retrain | None
    simulation: Simulation
    approximation: Approximation
    vs: dict[str, Ratios]
    layer_energy: dict[str, dict[str, float | None]]
    energy_breakdown: dict[str, dict[str, float]] | None = None
    memory: Memory
    smallest_within_tolerance: Smallest | None = None
    policies: dict[str, dict[str, Ratios]] | None = None
    occupancy: Occupancy | None = None
    blocks_agree: BlocksAgree | None = None
    audit: Audit | None = None
    faults: Faults | None = None
    endurance: Endurance | None = None


class ShapeNetwork(_Shape):
    name: str
    seconds: float
    vs: dict[str, Ratios]
    policies: dict[str, dict[str, Ratios]] | None = None


class Sweeps(_Shape):
    values: list[int]
    mode: str
    retrain_limit: float
    points: dict[str, list[Point]]


class ResultsFile(_Shape):
    """``results.json`` as ``rapidnn report`` reads it."""

    format: str
    quick: bool
    budget: Budget
    tolerance: float
    workloads: list[Workload]
    shape_networks: list[ShapeNetwork]
    geomean: dict[str, Ratios]
    geomean_with_shapes: dict[str, Ratios] | None
    sweeps: Sweeps
    machine: Machine | None
    seconds: float
    parts: list[Part] | None = None


def check_shape(model: type[BaseModel], doc: Any, path: Path | str) -> None:
    """Raise one :class:`ValueError` naming ``path`` and the first missing or mistyped field
    if ``doc`` (a parsed JSON document) does not have ``model``'s shape."""
    try:
        model.model_validate(doc)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        first = errors[0]
        field = ".".join(map(str, first["loc"])) or "(the document)"
        what = ("missing" if first["type"] == "missing" else
                f"{first['msg'][:1].lower()}{first['msg'][1:]} (got {first['input']!r:.60})")
        more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
        raise ValueError(f"{path}: field {field}: {what}{more}") from None
