"""The registry of architectures: a description's ``model`` → what evaluates it.

An :class:`Architecture` gives the typed view its formulas read (a ``views.Hardware`` subclass,
which also declares what a description must give), its estimate function and its chip figures.
The architectures' modules do not import this one; the loader (checking a description against
its architecture) and the package's ``estimate_network`` and ``chip_summary`` dispatch here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Generic, TypeVar

from rapidnn.accel.trace import Trace
from rapidnn.hardware import gpu, isaac, mapper, pipelayer, rapidnn
from rapidnn.hardware.estimate import ChipFigures, Estimate, EstimateOptions
from rapidnn.hardware.network import NetworkShape
from rapidnn.hardware.spec import HardwareConfigError, HardwareSpec
from rapidnn.hardware.views import Hardware

H = TypeVar("H", bound=Hardware)
Workload = NetworkShape | Trace


@dataclass(frozen=True)
class Architecture(Generic[H]):
    """One architecture: its view type, ``estimate(network or trace, view, options)`` and
    ``chip_figures(view)``."""

    hardware: type[H]
    estimate: Callable[[Workload, H, EstimateOptions], Estimate]
    chip_figures: Callable[[H], ChipFigures]

    @property
    def name(self) -> str:
        return self.hardware.MODEL

    def view(self, spec: HardwareSpec) -> H:
        """The typed view of ``spec`` (HardwareConfigError when a number it needs is missing)."""
        return self.hardware.from_spec(spec)


def _on_trace(x: Workload, hw: rapidnn.RapidnnHardware, options: EstimateOptions) -> Estimate:
    """RAPIDNN reads a Trace; a NetworkShape first becomes a synthetic trace (noted)."""
    if isinstance(x, NetworkShape):
        return mapper.estimate(rapidnn.synthetic_trace(x, hw), hw, options, network=x.name)
    return mapper.estimate(x, hw, options)


def _on_shapes(estimate: Callable[[NetworkShape, H, EstimateOptions], Estimate]
               ) -> Callable[[Workload, H, EstimateOptions], Estimate]:
    """A baseline reads a NetworkShape; a Trace first becomes its shapes
    (``NetworkShape.from_trace``)."""
    def run(x: Workload, hw: H, options: EstimateOptions) -> Estimate:
        return estimate(x if isinstance(x, NetworkShape) else NetworkShape.from_trace(x), hw,
                        options)
    return run


ARCHITECTURES: Mapping[str, Architecture[Any]] = MappingProxyType({a.name: a for a in (
    Architecture(rapidnn.RapidnnHardware, _on_trace, rapidnn.chip_figures),
    Architecture(isaac.IsaacHardware, _on_shapes(isaac.estimate), isaac.chip_figures),
    Architecture(pipelayer.PipeLayerHardware, _on_shapes(pipelayer.estimate),
                 pipelayer.chip_figures),
    Architecture(gpu.GpuHardware, _on_shapes(gpu.estimate), gpu.chip_figures),
)})


def architecture_of(spec: HardwareSpec) -> Architecture[Any]:
    """The architecture a description names (HardwareConfigError for an unknown model)."""
    try:
        return ARCHITECTURES[spec.model]
    except KeyError:
        raise HardwareConfigError(f"unknown model {spec.model!r}; known models: "
                                  f"{', '.join(ARCHITECTURES)}", file=spec.source_file,
                                  key="model") from None
