"""Step 1 of composition: how a captured graph maps onto codes and integer producers.

Which values travel as codes (and in which codebook), which ops produce integers (weighted
layers, average-pool sums, residual sums), which activation each producer is fused with, and
which producer's integers are the network output (paper notes section 5; ``docs/formulas.md``).
The plan depends on the graph and the configuration only, so a loaded file's plan is the one
its composition used (``rapidnn.composer.filecheck``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rapidnn.composer.capture import ACTIVATIONS, CapturedGraph
from rapidnn.composer.config import ComposeConfig, ResolvedLayerOptions

PRODUCERS = ("linear", "conv2d", "avgpool2d", "add")


@dataclass
class Plan:
    """How the captured graph maps onto codes and integer producers."""

    codebook_of: dict[str, str] = field(default_factory=dict)  # code tensor -> codebook key
    fused: dict[str, tuple[str, str]] = field(default_factory=dict)  # producer -> (node, op)
    encoded: set[str] = field(default_factory=set)  # producers followed by an encoder
    final: str | None = None  # producer whose integers are the network output
    options: dict[str, ResolvedLayerOptions] = field(default_factory=dict)  # per codebook key

    @property
    def keys(self) -> list[str]:
        return list(dict.fromkeys(self.codebook_of.values()))


def make_plan(graph: CapturedGraph, config: ComposeConfig) -> Plan:
    plan = Plan()
    for node in graph:
        if node.op == "input":
            plan.codebook_of[node.name] = node.name
        elif node.op in PRODUCERS:
            users = graph.users(node.name)
            inner = [u for u in users if u.op != "output"]
            if len(users) == 1 and users[0].op in ACTIVATIONS:
                plan.fused[node.name] = (users[0].name, users[0].op)
                plan.codebook_of[users[0].name] = users[0].name
                plan.encoded.add(node.name)
            elif inner:
                plan.codebook_of[node.name] = node.name
                plan.encoded.add(node.name)
            if len(inner) < len(users):
                plan.final = node.name
        elif node.op in ACTIVATIONS:
            if node.name not in plan.codebook_of:
                plan.codebook_of[node.name] = node.name
        elif node.op in ("maxpool2d", "reshape"):
            plan.codebook_of[node.name] = plan.codebook_of[node.inputs[0]]
    default = config.for_layer("", "")
    for node in graph.weighted():
        key = plan.codebook_of[node.inputs[0]]
        plan.options.setdefault(key, config.for_layer(node.name, node.op))
    for key in plan.keys:
        plan.options.setdefault(key, default)
    return plan
