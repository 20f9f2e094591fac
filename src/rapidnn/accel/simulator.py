"""The RNA accelerator simulator: run a ComposedModel on modelled RNA blocks, record a Trace.

``simulate(composed, inputs, config)`` executes every composed operation through the block
models (``crossbar.py`` lookups, ``adder.py`` MAGIC-NOR addition, ``assoc_memory.py`` searches,
wired per layer in ``rna.py``) and counts what every block does. In exact mode the integer
accumulators and codes equal ``ComposedModel.integer_forward`` bit for bit and ``outputs``
equals ``composed(inputs)``; ``approx_bits`` turns on the approximate (truncated) AM search
(decision H5). Everything here is our reconstruction of the paper's hardware (paper notes 6.3,
``docs/simulator.md``).
"""

from __future__ import annotations

import copy
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from rapidnn.accel.config import SimConfig
from rapidnn.accel.events import Events, merge_traces
from rapidnn.accel.mapping import LayerMap
from rapidnn.accel.rna import (
    AdaptiveAvgPoolStage,
    AdaptiveMaxPoolStage,
    AddStage,
    AvgPoolStage,
    CodeActivationStage,
    Env,
    InputStage,
    LayoutStage,
    MaxPoolStage,
    MulStage,
    OutputStage,
    ReshapeStage,
    Stage,
    WeightedStage,
)
from rapidnn.accel.trace import LayerTrace, Trace
from rapidnn.composer.composed import ComposedModel, check_input
from rapidnn.composer.ops import (
    AdaptiveAvgPoolSum,
    AdaptiveMaxPoolCodes,
    AddAligned,
    AvgPoolSum,
    CodeActivation,
    ConcatCodes,
    Encode,
    InputEncode,
    MaxPoolCodes,
    MulTable,
    Output,
    PadCodes,
    PermuteCodes,
    Reshape,
    SliceCodes,
    WeightedLayer,
)


@dataclass
class SimResult:
    """What one simulation produced.

    ``outputs``: the network output (logits), equal to ``composed(inputs)`` in exact mode;
    ``codes`` / ``accumulators``: per tensor / per integer producer, as in
    ``IntegerResult`` (``None`` unless recorded); ``trace``: per-layer, per-inference events
    (``None`` when ``record_trace`` is off); ``mapping``: how each layer sits on RNA blocks.
    """

    outputs: torch.Tensor
    codes: dict[str, torch.Tensor] | None = None
    accumulators: dict[str, torch.Tensor] | None = None
    trace: Trace | None = None
    mapping: dict[str, LayerMap] = field(default_factory=dict)

    @property
    def predictions(self) -> torch.Tensor:
        return self.outputs.argmax(1)


class Simulator:
    """A ComposedModel programmed onto RNA blocks (build once, run many batches)."""

    def __init__(self, composed: ComposedModel, config: SimConfig | None = None) -> None:
        self.composed = composed
        self.config = config or SimConfig()
        self.device = _device_of(composed)
        self.decode: dict[str, torch.Tensor] = {}
        self.stages, self.output = self._build()
        if self.config.faults is not None and self.config.faults.active:
            from rapidnn.accel.faults import inject  # faulty blocks (docs/faults.md)

            self.stages = inject(self.stages, self.config)
            self._plan_forms(self.stages, self.output)
        self._check_layer_names()
        self._mapping = self.mapping()
        self._trace_cfg = self.trace_config()
        self._static_trace: tuple[tuple, list] | None = None

    # building -------------------------------------------------------------------------------
    def _build(self) -> tuple[list[Stage], OutputStage]:
        cm, cfg = self.composed, self.config
        src = cm.source
        ops = list(cm.ops)
        encoder_of: dict[str, Encode] = {}
        for op in ops:
            if isinstance(op, Encode):
                encoder_of[op.inputs[0]] = op
        clusters: dict[str, int] = {}  # code tensor -> codebook size
        decode = self.decode  # code tensor -> codebook values (float32, exact)

        def shape(name: str) -> tuple[int, ...]:
            return tuple(src[name].shape)

        def book(name: str, key: str) -> int:
            cb = cm.codebooks[key]
            clusters[name] = int(cb.size)
            decode[name] = cb.values.to(torch.float32).contiguous()
            return clusters[name]

        def inherit(name: str, parent: str) -> None:
            clusters[name] = clusters[parent]
            decode[name] = decode[parent]

        def encoder(producer: str) -> tuple[Encode | None, int, torch.Tensor | None]:
            enc = encoder_of.get(producer)
            if enc is None:
                return None, 0, None
            return enc, book(enc.name, enc.spec["codebook"]), decode[enc.name]

        stages: list[Stage] = []
        output: OutputStage | None = None
        for op in ops:
            if isinstance(op, InputEncode):
                u = book(op.name, op.spec["codebook"])
                stages.append(InputStage(op, u, shape(op.name), cfg, decode[op.name]))
            elif isinstance(op, Reshape):
                inherit(op.name, op.inputs[0])
                stages.append(ReshapeStage(op))
            elif isinstance(op, WeightedLayer):
                enc, nxt, dec = encoder(op.name)
                st = WeightedStage(op, enc, shape(op.inputs[0]), nxt, cfg, dec)
                if not torch.equal(decode[op.inputs[0]].to(st.xbar.input_values.dtype),
                                   st.xbar.input_values.to(decode[op.inputs[0]].device)):
                    st.use_values = False  # its decode table differs from the codebook's
                stages.append(st)
            elif isinstance(op, MaxPoolCodes):
                inherit(op.name, op.inputs[0])
                stages.append(MaxPoolStage(op, shape(op.inputs[0]), clusters[op.name], cfg))
            elif isinstance(op, AvgPoolSum):
                enc, nxt, dec = encoder(op.name)
                st = AvgPoolStage(op, enc, shape(op.inputs[0]), clusters[op.inputs[0]], nxt,
                                  cfg, dec)
                if not torch.equal(decode[op.inputs[0]].to(torch.int64), st.decode):
                    st.sum_dtype = None
                stages.append(st)
            elif isinstance(op, AddAligned):
                enc, nxt, dec = encoder(op.name)
                stages.append(AddStage(op, enc, shape(op.name), nxt, cfg, dec))
            elif isinstance(op, ConcatCodes | SliceCodes | PermuteCodes | PadCodes):
                inherit(op.name, op.inputs[0])
                stages.append(LayoutStage(op, decode[op.name]))
            elif isinstance(op, MulTable):
                enc, nxt, dec = encoder(op.name)
                stages.append(MulStage(op, enc, shape(op.name), (clusters[op.inputs[0]],
                                                                 clusters[op.inputs[1]]),
                                       nxt, cfg, dec))
            elif isinstance(op, AdaptiveAvgPoolSum):
                enc, nxt, dec = encoder(op.name)
                stages.append(AdaptiveAvgPoolStage(op, enc, shape(op.inputs[0]),
                                                   clusters[op.inputs[0]], nxt, cfg, dec))
            elif isinstance(op, AdaptiveMaxPoolCodes):
                inherit(op.name, op.inputs[0])
                stages.append(AdaptiveMaxPoolStage(op, shape(op.inputs[0]), clusters[op.name],
                                                   cfg))
            elif isinstance(op, CodeActivation):
                book(op.name, op.spec["codebook"])
                stages.append(CodeActivationStage(op, shape(op.name), clusters[op.inputs[0]],
                                                  clusters[op.name]))
            elif isinstance(op, Output):
                output = OutputStage(op, shape(op.inputs[0]), clusters.get(op.inputs[0], 0))
            elif isinstance(op, Encode):
                if op.inputs[0] not in {s.name for s in stages}:
                    raise ValueError(f"encoder {op.name!r} has no simulated producer")
            else:
                raise ValueError(f"the simulator does not model op {type(op).__name__}")
        if output is None:
            raise ValueError("composed model has no Output op")
        for st in stages:  # the output reads these integers: keep them exact and stored
            if isinstance(st, WeightedStage) and st.name == output.src and \
                    not output.from_codes:
                st.fold_offset = False
        self._plan_forms(stages, output)
        return stages, output

    def _plan_forms(self, stages: list[Stage], output: OutputStage) -> None:
        """Decide per code tensor whether codes and/or decoded values must be produced."""
        need: dict[str, set[str]] = {}
        produced = [s.produced() for s in stages]
        if self.config.record_codes:
            for t in produced:
                if t is not None:
                    need.setdefault(t, set()).add("codes")
        for stage in [*stages, output][::-1]:
            out = stage.produced()
            for src, form in stage.needs().items():
                forms = need.setdefault(src, set())
                if form == "pass":
                    forms |= need.get(out, set()) or {"codes"} if out is not None else set()
                else:
                    forms.add(form)
        for stage, t in zip(stages, produced, strict=True):
            if t is not None:
                forms = need.get(t) or {"codes"}
                stage.set_wants("codes" in forms, "vals" in forms)

    def _check_layer_names(self) -> None:
        """Per-layer options name layers of this model: a misspelt or outdated name (the
        torch.fx ``_1`` of the layer now named ``1``) would otherwise apply nothing."""
        encoded, every = set(), set()
        for s in self.stages:
            every.add(s.name)
            enc = getattr(s, "encoder", None)
            if enc is not None:
                encoded.update({s.name, enc.name})
                every.add(enc.name)
        bits = self.config.approx_bits
        unknown = sorted(set(bits) - encoded) if isinstance(bits, dict) else []
        if unknown:
            raise ValueError(f"approx_bits names {unknown} are not encoded layers; "
                             f"known: {sorted(encoded)}")
        faults = self.config.faults
        unknown = sorted(set(faults.layers) - every) if faults is not None else []
        if unknown:
            raise ValueError(f"faults.layers names {unknown} are not layers of the model; "
                             f"known: {sorted(every)}")

    # inspection -----------------------------------------------------------------------------
    def encoders(self) -> dict[str, dict[str, int]]:
        """Per encoded layer: AM rows, word width W, searched bits k."""
        out = {}
        for s in self.stages:
            enc = getattr(s, "encoder", None)
            if enc is not None:
                out[s.name] = {"rows": enc.am.rows, "word_bits": enc.am.word_bits,
                               "searched_bits": enc.am.searched_bits}
        return out

    def mapping(self) -> dict[str, LayerMap]:
        m = {s.info.name: s.mapping for s in self.stages if s.info is not None and s.mapping}
        if self.output.info is not None and self.output.mapping is not None:
            m[self.output.info.name] = self.output.mapping
        return m

    # running --------------------------------------------------------------------------------
    @torch.no_grad()
    def run(self, x: torch.Tensor) -> SimResult:
        """Simulate one batch (checked like ``ComposedModel.forward``'s input; a bool input is
        read as the integers 0 and 1, in 8-bit words, as ``forward`` reads it)."""
        cm, cfg = self.composed, self.config
        check_input(x, cm.source.input.shape)
        if x.dtype == torch.bool:  # the input AM models integer or float words, not bits
            x = x.to(torch.uint8)
        if x.device != self.device:
            x = x.to(self.device)
        env = Env(self.decode)
        dynamic: dict[int, Events] = {}
        for i, stage in enumerate(self.stages):
            ev = stage.run(env, x)
            if ev is not None:
                dynamic[i] = ev
        outputs = self.output.value(env)
        trace = self._trace(int(x.shape[0]), dynamic) if cfg.record_trace else None
        ints = None
        if cfg.record_accumulators:
            ints = {k: v.to(torch.int64) for k, v in env.ints.items()}
        return SimResult(outputs, dict(env.codes) if cfg.record_codes else None, ints, trace,
                         dict(self._mapping))

    def _trace(self, n: int, dynamic: dict[int, Events]) -> Trace:
        """Per-inference Trace: static events of one image plus the batch's dynamic ones."""
        traced = [s for s in [*self.stages, self.output] if s.info is not None]
        key = tuple(s.info.am_bits for s in traced)
        if not dynamic and self._static_trace is not None and self._static_trace[0] == key:
            return Trace(batch=n, layers=[_copy_layer(lt) for lt in self._static_trace[1]],
                         config=dict(self._trace_cfg))
        layers = []
        for i, s in enumerate([*self.stages, self.output]):
            if s.info is None:
                continue
            ev = Events()
            if s.static is not None:
                ev.add(s.static, n)
            if i in dynamic:
                ev.add(dynamic[i])
            layers.append(s.info.trace(ev, n))
        if not dynamic:
            self._static_trace = (key, [_copy_layer(lt) for lt in layers])
        return Trace(batch=n, layers=layers, config=dict(self._trace_cfg))

    def trace_config(self) -> dict[str, Any]:
        cfg = self.config.model_dump(mode="json")
        cfg.pop("record_codes")
        cfg.pop("record_accumulators")
        cfg.pop("record_trace")
        cfg["simulated"] = True
        cfg["encoders"] = self.encoders()
        return cfg


def _copy_layer(lt: LayerTrace) -> LayerTrace:
    out = copy.copy(lt)
    out.additions = dict(lt.additions)
    return out


def _device_of(composed: ComposedModel) -> torch.device:
    for b in composed.buffers():
        return b.device
    return torch.device("cpu")


# the simulate() cache ---------------------------------------------------------------------------
SIMULATORS_PER_MODEL = 4  # configurations kept per composed model (least recently used dropped)


@dataclass
class _CachedSimulator:
    sim: Simulator
    lock: threading.Lock = field(default_factory=threading.Lock)  # held while it runs


@dataclass
class _ModelEntry:
    state: tuple[Any, ...]  # _model_state() when the simulators were built
    pins: list[Any]  # the objects whose id() is in ``state``: alive, so no id is reused
    sims: OrderedDict[str, _CachedSimulator] = field(default_factory=OrderedDict)


_cache: weakref.WeakKeyDictionary[ComposedModel, _ModelEntry] = weakref.WeakKeyDictionary()
_cache_lock = threading.Lock()


def _model_state(composed: ComposedModel) -> tuple[tuple[Any, ...], list[Any]] | None:
    """What a Simulator is built from, cheaply: ``(fingerprint, objects to keep alive)``.

    The identity of ``composed.source`` (which gives the shapes); per module (ops, codebooks
    and their containers, in order, with their names): identity and ``repr(spec)``; per
    tensor (buffers and parameters): identity, ``_version`` (bumped by every in-place
    operation: ``copy_``, ``t[i] = v``, ``load_state_dict``, optimizer steps) and
    ``data_ptr``. Everything whose ``id`` is used is returned to be kept alive, so no id is
    reused while the fingerprint exists. None when a tensor has no version counter (created
    under ``torch.inference_mode``): such a model is not cached. Tens of microseconds for the
    MNIST MLP (14 modules, 27 tensors): about 35 us, 100-150 us right after a batch (cold CPU
    caches), against a ~8 ms build and a ~3.5 ms run at batch 256.
    """
    pins: list[Any] = [composed.source]
    parts: list[Any] = [id(composed.source)]

    def visit(m: torch.nn.Module) -> None:
        parts.append(id(m))
        parts.append(repr(m.__dict__.get("spec")))
        for t in (*m._buffers.values(), *m._parameters.values()):
            if t is None:
                parts.append(None)
            else:
                pins.append(t)
                parts.extend((id(t), t._version, t.data_ptr()))
        for name, child in m._modules.items():
            parts.append(name)
            if child is not None:
                pins.append(child)
                visit(child)

    try:
        visit(composed)  # the model itself is not pinned: that would keep it alive
    except RuntimeError:  # "Inference tensors do not track version counter"
        return None
    return tuple(parts), pins


def _cached_simulator(composed: ComposedModel, config: SimConfig) -> _CachedSimulator | None:
    """The cached simulator of ``(composed, config)``, built now if missing or stale."""
    found = _model_state(composed)
    if found is None:
        return None
    state, pins = found
    key = config.model_dump_json()
    with _cache_lock:
        entry = _cache.get(composed)
        if entry is not None and entry.state == state:
            hit = entry.sims.get(key)
            if hit is not None:
                entry.sims.move_to_end(key)
                return hit
    sim = Simulator(composed, config)  # outside the lock: building takes milliseconds
    # the cache must not keep the model alive: it is the weak key, and simulate() holds it
    # during every run of this simulator
    sim.composed = weakref.proxy(composed)  # type: ignore[assignment]
    with _cache_lock:
        entry = _cache.get(composed)
        if entry is None or entry.state != state:  # new model, or changed: drop stale ones
            entry = _ModelEntry(state, pins)
            _cache[composed] = entry
        hit = entry.sims.setdefault(key, _CachedSimulator(sim))  # a racing thread's may win
        entry.sims.move_to_end(key)
        while len(entry.sims) > SIMULATORS_PER_MODEL:
            entry.sims.popitem(last=False)
        return hit


def clear_simulate_cache(composed: ComposedModel | None = None) -> None:
    """Forget the simulators :func:`simulate` cached for ``composed`` (None: for every model).

    Needed only after changes the cache cannot see (see :func:`simulate`).
    """
    with _cache_lock:
        if composed is None:
            _cache.clear()
        else:
            _cache.pop(composed, None)


def _arguments(composed: Any, config: Any) -> SimConfig:
    """The simulator's configuration; a wrong argument is a TypeError naming it."""
    if not isinstance(composed, ComposedModel):
        raise TypeError(f"simulate: composed must be a ComposedModel (from rapidnn.compose or "
                        f"rapidnn.load), not {type(composed).__name__}")
    if config is None:
        return SimConfig()
    if isinstance(config, Mapping):
        return SimConfig.model_validate(dict(config))
    if not isinstance(config, SimConfig):
        raise TypeError(f"simulate: config must be a SimConfig or a dict of its fields, not "
                        f"{type(config).__name__}")
    return config


def simulate(composed: ComposedModel, inputs: torch.Tensor,
             config: SimConfig | Mapping[str, Any] | None = None) -> SimResult:
    """Simulate ``composed`` on the batch ``inputs`` (see :class:`SimConfig`).

    The same as ``Simulator(composed, config).run(inputs)``, but the :class:`Simulator` is
    cached: building one (programming every table, AM and mapping) costs more than running a
    batch, so consecutive calls on the same model and configuration reuse it. The cache holds
    up to ``SIMULATORS_PER_MODEL`` configurations per model (keyed by the config's JSON dump),
    refers to the model weakly (deleting the model frees its simulators) and is rebuilt
    whenever the model changed since: a module or tensor added, removed or replaced (e.g.
    ``.to(device)``, ``op.table = t``), a spec edited, or a tensor modified in place (each
    tensor's ``_version`` counter: ``copy_``, indexed assignment, ``load_state_dict``, any
    in-place op). Not seen: writes that bypass the version counter (through ``t.data`` or a
    NumPy view of a tensor) and changes inside ``composed.source``; call
    :func:`clear_simulate_cache` after those. A model whose tensors were created under
    ``torch.inference_mode`` has no version counters and is not cached. Thread-safe: the
    cache is locked, and a call that finds its simulator running in another thread builds a
    private one.
    """
    cfg = _arguments(composed, config)
    # transient faults advance a generator per batch: a fresh simulator per call repeats them
    transient = cfg.faults is not None and (cfg.faults.read_flips > 0 or
                                            cfg.faults.search_flips > 0 or any(
        r.get("read_flips", 0) > 0 or r.get("search_flips", 0) > 0
        for r in cfg.faults.layers.values()))
    cached = None if transient else _cached_simulator(composed, cfg)
    if cached is None:
        return Simulator(composed, cfg).run(inputs)
    if not cached.lock.acquire(blocking=False):  # running in another thread (it has state)
        return Simulator(composed, cfg).run(inputs)
    try:
        return cached.sim.run(inputs)
    finally:
        cached.lock.release()


def _batches(loader: Iterable[Any]):
    for item in loader:
        if isinstance(item, tuple | list):
            yield item[0], (item[1] if len(item) > 1 else None)
        else:
            yield item, None


@torch.no_grad()
def simulate_dataset(composed: ComposedModel, loader: Iterable[Any],
                     config: SimConfig | None = None, compare: bool = True) -> dict[str, Any]:
    """Simulate every batch of ``loader`` (tensors or ``(input, label)`` pairs).

    Returns ``images``; ``accuracy`` (None without labels); ``agreement``: fraction of images
    whose simulated prediction equals the ComposedModel's (None when ``compare`` is off);
    ``composed_accuracy``; ``trace``: the merged per-inference Trace as a dict
    (``Trace.from_dict`` restores it; None when ``record_trace`` is off); ``totals``: its
    per-inference totals; ``encoders``: AM word width and searched bits per layer; ``seconds``.
    """
    sim = Simulator(composed, config)
    device = sim.device
    images = correct = agree = composed_correct = 0
    labelled = True
    traces: list[Trace] = []
    t0 = time.perf_counter()
    for x, y in _batches(loader):
        res = sim.run(x)
        pred = res.outputs.argmax(1)
        n = int(x.shape[0])
        images += n
        if y is None:
            labelled = False
        else:
            y = y.to(device)
            correct += int((pred == y).sum())
        if compare:
            ref = composed(x.to(device)).argmax(1)
            agree += int((ref == pred).sum())
            if y is not None:
                composed_correct += int((ref == y).sum())
        if res.trace is not None:
            traces.append(res.trace)
    seconds = time.perf_counter() - t0
    trace = merge_traces(traces) if traces else None
    return {
        "images": images,
        "accuracy": correct / images if labelled and images else None,
        "agreement": agree / images if compare and images else None,
        "composed_accuracy": composed_correct / images if compare and labelled and images
        else None,
        "trace": trace.to_dict() if trace is not None else None,
        "totals": trace.totals() if trace is not None else None,
        "encoders": sim.encoders(),
        "seconds": seconds,
    }


def approximation_sweep(composed: ComposedModel, loader: Iterable[Any],
                        bits: Iterable[int] | None = None,
                        config: SimConfig | None = None) -> list[dict[str, Any]]:
    """Accuracy against the searched AM bits k (decision H5), from full width down to 2.

    Each row: ``bits`` (None = exact), ``accuracy`` (None without labels), ``agreement``: the
    fraction of predictions equal to the exact ComposedModel's, ``am_row_bits``: searched
    row-bits per inference of the encoder AMs (``sum am_searches * am_rows * am_bits``), and
    ``layers``: the bits searched per layer (``k`` larger than a layer's word width W is exact
    there). The default ``bits`` run from the widest W down to 2.
    """
    base = (config or SimConfig()).model_copy(update={"record_trace": True,
                                                      "record_codes": False,
                                                      "record_accumulators": False})
    exact = Simulator(composed, base.model_copy(update={"approx_bits": None}))
    width = max((e["word_bits"] for e in exact.encoders().values()), default=2)
    batches = list(_batches(loader))
    with torch.no_grad():
        reference = [composed(x.to(exact.device)).argmax(1) for x, _ in batches]
    levels: list[int | None] = [None]
    levels += list(bits) if bits is not None else list(range(width, 1, -1))
    rows = []
    for k in levels:
        sim = exact if k is None else Simulator(composed, base.model_copy(
            update={"approx_bits": k}))
        images = correct = agree = 0
        labelled = True
        traces = []
        for (x, y), ref in zip(batches, reference, strict=True):
            res = sim.run(x)
            pred = res.outputs.argmax(1)
            images += int(x.shape[0])
            agree += int((pred == ref).sum())
            if y is None:
                labelled = False
            else:
                correct += int((pred == y.to(pred.device)).sum())
            traces.append(res.trace)
        trace = merge_traces(traces)
        row_bits = sum(lt.am_searches * lt.am_rows * lt.am_bits for lt in trace.layers
                       if lt.kind != "encode_input")
        rows.append({"bits": k, "accuracy": correct / images if labelled else None,
                     "agreement": agree / images, "am_row_bits": row_bits,
                     "layers": {n: e["searched_bits"] for n, e in sim.encoders().items()}})
    return rows


def example_inputs(composed: ComposedModel, batch: int = 16, seed: int = 0) -> torch.Tensor:
    """A seeded batch whose values are the raw-input codebook's centroids, drawn uniformly.

    Used when no inputs are given: the adder-tree Trace depends only on shapes, and the
    counting strategy's pair counts then reflect a spread of input codes.
    """
    cb = composed.codebooks[composed.source.input.name]
    gen = torch.Generator().manual_seed(seed)
    codes = torch.randint(0, cb.size, (batch, *composed.source.input.shape), generator=gen)
    return cb.quantized()[codes].float()


def model_trace(composed: ComposedModel, inputs: torch.Tensor | None = None,
                sim_config: SimConfig | None = None) -> Trace:
    """Simulate ``composed`` (on ``inputs`` or :func:`example_inputs`) and return its Trace."""
    x = example_inputs(composed) if inputs is None else inputs
    cfg = (sim_config or SimConfig()).model_copy(update={"record_trace": True})
    res = simulate(composed, x, cfg)
    assert res.trace is not None
    return res.trace
