"""Step 1 of composition: how a captured graph maps onto codes and integer producers.

Which values travel as codes (and in which codebook), which ops produce integers (weighted
layers, average-pool sums, residual sums, element-wise products), which activation each
producer is fused with, which element-wise functions are folded into one code-to-code table,
and which producer's integers are the network output (paper notes section 5;
``docs/formulas.md``, ``docs/operators.md``). The plan depends on the graph and the
configuration only, so a loaded file's plan is the one its composition used
(``rapidnn.composer.filecheck``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rapidnn.composer.capture import ELEMENTWISE, CapturedGraph, CapturedNode
from rapidnn.composer.config import ComposeConfig, ResolvedLayerOptions
from rapidnn.composer.encoding import monotonic

PRODUCERS = ("linear", "conv2d", "conv1d", "avgpool2d", "adaptive_avgpool2d", "add", "mul")
#: ops whose output codes are codes of their (first) input's codebook
CODE_PASSING = ("maxpool2d", "adaptive_maxpool2d", "reshape", "permute", "slice", "pad")


@dataclass
class Plan:
    """How the captured graph maps onto codes and integer producers.

    ``origins``: the tensors whose float values define a codebook (each encoded into it, or,
    for padding, holding its constant): calibration samples them and retraining snaps them.
    ``chain``: per code-to-code table, the element-wise nodes before it folded into it (they
    have no codes of their own).
    """

    codebook_of: dict[str, str] = field(default_factory=dict)  # code tensor -> codebook key
    fused: dict[str, tuple[str, str]] = field(default_factory=dict)  # producer -> (node, op)
    encoded: set[str] = field(default_factory=set)  # producers followed by an encoder
    final: str | None = None  # producer whose integers are the network output
    options: dict[str, ResolvedLayerOptions] = field(default_factory=dict)  # per codebook key
    origins: dict[str, str] = field(default_factory=dict)  # tensor -> codebook key
    chain: dict[str, list[str]] = field(default_factory=dict)  # table node -> folded nodes

    @property
    def keys(self) -> list[str]:
        return list(dict.fromkeys(self.codebook_of.values()))

    @property
    def folded(self) -> set[str]:
        return {n for names in self.chain.values() for n in names}


def fusable(node: CapturedNode) -> bool:
    """An element-wise function the encoder AM can apply by thresholds (non-decreasing, one
    function for every channel)."""
    return node.op in ELEMENTWISE and node.op != "affine" and monotonic(node.op, node.params)


def make_plan(graph: CapturedGraph, config: ComposeConfig) -> Plan:
    plan = Plan()
    parent: dict[str, str] = {}  # codebook key -> the key it was merged into (concat)

    def find(key: str) -> str:
        while parent.get(key, key) != key:
            key = parent[key]
        return key

    def own(name: str) -> None:
        plan.codebook_of[name] = name
        plan.origins[name] = name

    for node in graph:
        n, op = node.name, node.op
        if op == "input":
            own(n)
        elif op in PRODUCERS:
            users = graph.users(n)
            inner = [u for u in users if u.op != "output"]
            if len(users) == 1 and fusable(users[0]):
                plan.fused[n] = (users[0].name, users[0].op)
                own(users[0].name)
                plan.encoded.add(n)
            elif inner:
                own(n)
                plan.encoded.add(n)
            if len(inner) < len(users):
                plan.final = n
        elif op in ELEMENTWISE:
            if n in plan.codebook_of:
                continue  # fused into its producer's encoder
            users = graph.users(n)
            if len(users) == 1 and users[0].op in ELEMENTWISE:
                plan.chain[users[0].name] = [*plan.chain.pop(n, []), n]
            else:
                own(n)
        elif op in CODE_PASSING:
            plan.codebook_of[n] = plan.codebook_of[node.inputs[0]]
            if op == "pad":
                plan.origins[n] = plan.codebook_of[n]
        elif op == "concat":
            keys = [find(plan.codebook_of[i]) for i in node.inputs]
            for k in keys[1:]:
                if k != keys[0]:
                    parent[k] = keys[0]
            plan.codebook_of[n] = keys[0]
    if parent:  # one codebook for every tensor a concatenation joins
        plan.codebook_of = {t: find(k) for t, k in plan.codebook_of.items()}
        plan.origins = {t: find(k) for t, k in plan.origins.items()}
    default = config.for_layer("", "")
    for node in graph.weighted():
        key = plan.codebook_of[node.inputs[0]]
        plan.options.setdefault(key, config.for_layer(node.name, node.op))
    for key in plan.keys:
        plan.options.setdefault(key, default)
    return plan
