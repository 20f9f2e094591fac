"""A seeded fuzzer of ``.rapidnn`` files (used by test_modelfile_fuzz.py and
benchmarks/fuzz_modelfile.py).

Two kinds of mutation of a valid file:

* **bytes**: bit flips, overwritten ranges, truncation, insertion and deletion anywhere in the
  file (mostly in the header, where a flip changes structure rather than one tensor value).
  The checksums make every change detectable, so the only acceptable outcomes are a
  ``ModelFileError`` or a model identical to the original.
* **signed**: a structural change to the manifest (a value replaced by an awkward one, a key
  removed or added, a list reordered) or to a tensor (an element, the dtype, the shape, removed,
  renamed, added), written back as a well-formed file *with correct checksums*, as a buggy or
  malicious writer would. Acceptable: a ``ModelFileError``, or a model that is consistent:
  ``forward`` and ``simulate`` run and agree bit for bit (a changed ``metadata`` or source weight
  is a legitimate other model).

Anything else (another exception, simulate != forward) is a failure of the loader.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import random
import struct
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as load_bytes
from safetensors.torch import save as save_bytes

import rapidnn
from rapidnn.composer.modelfile import CHECKSUM_KEY, MANIFEST_KEY, ModelFileError, tensors_sha256

AWKWARD: list[Any] = [0, -1, 1, 2, 3, 7, 255, 256, 2**31, 2**63, -(2**63), 10**30, 0.5, 1.5,
                      -0.0, math.nan, math.inf, -math.inf, True, False, None, "", "x",
                      "a" * 5000, "../../etc/passwd", "fc1", [], [1], [0, 0], [1, 2, 3],
                      {}, {"a": 1}, "linear", "conv2d", "weighted", "integers"]
DEEP = "<5000 nested lists>"  # replaced in the JSON text (json itself cannot nest so deep)
DTYPES = [torch.float32, torch.float64, torch.float16, torch.int64, torch.int32, torch.uint8,
          torch.int16, torch.bool]


@dataclass
class Sample:
    """One valid model file and what it must do when loaded."""

    name: str
    data: bytes
    model: rapidnn.ComposedModel
    x: torch.Tensor  # a small input batch


def make_samples(tmp: Path) -> list[Sample]:
    """Small composed models covering every op kind, saved and read back as bytes."""
    from operator_models import make as make_zoo  # tests/composer (beside this file)
    from sim_models import CodesOut, Residual  # tests/accel (on sys.path)

    from rapidnn.workloads.models import LeNet5, mlp

    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(3)
    cases: list[tuple[str, torch.nn.Module, tuple[int, ...], dict[str, Any]]] = [
        ("mlp", mlp((16, 8, 6, 3)).eval(), (16,), {"weight_clusters": 4, "input_clusters": 4}),
        ("mlp-tree-threshold", mlp((12, 8, 3)).eval(), (12,),
         {"weight_clusters": 4, "input_clusters": 8, "tree": True, "bias_mode": "threshold"}),
        ("lenet-per-channel", LeNet5().eval(), (1, 28, 28),
         {"weight_clusters": 4, "input_clusters": 4, "per_channel": True, "table_bits": 10}),
        ("residual-avgpool", Residual().eval(), (1, 6, 6),
         {"weight_clusters": 4, "input_clusters": 4, "acc_bits": 12}),
        ("codes-out-maxpool", CodesOut().eval(), (1, 5, 5),
         {"weight_clusters": 4, "input_clusters": 4, "raw_input": "uniform"}),
    ]
    for zoo in ("mobile", "dense", "shuffle", "shortcut", "signal"):  # the CNN zoo operators
        net, shape = make_zoo(zoo)
        cases.append((f"zoo-{zoo}", net, shape, {"weight_clusters": 4, "input_clusters": 4}))
    samples = []
    for name, net, shape, opts in cases:
        cal = [torch.randn(8, *shape, generator=gen) for _ in range(2)]
        model = rapidnn.compose(net, cal, calibration_values=2000, **opts)
        model.metadata["dataset"] = "none"
        path = tmp / f"{name}.rapidnn"
        model.save(path)
        samples.append(Sample(name, path.read_bytes(), rapidnn.load(path),
                              torch.randn(3, *shape, generator=gen)))
    return samples


# byte mutations ----------------------------------------------------------------------------
def mutate_bytes(data: bytes, rng: random.Random) -> bytes:
    b = bytearray(data)
    header_end = 8 + struct.unpack("<Q", data[:8])[0]
    def pos() -> int:
        return rng.randrange(header_end) if rng.random() < 0.7 else rng.randrange(len(b))
    kind = rng.randrange(5)
    if kind == 0:
        for _ in range(rng.randint(1, 8)):
            b[pos()] ^= 1 << rng.randrange(8)
    elif kind == 1:
        i = pos()
        b[i:i + rng.randint(1, 16)] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
    elif kind == 2:
        del b[rng.randrange(len(b)):]
    elif kind == 3:
        i = pos()
        b[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
    else:
        i = pos()
        del b[i:i + rng.randint(1, 8)]
    return bytes(b)


# signed (structural) mutations -------------------------------------------------------------
def split_file(data: bytes) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The manifest and the tensors of a file's bytes."""
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    return json.loads(header["__metadata__"][MANIFEST_KEY]), dict(load_bytes(data))


def sign_file(manifest: Any, tensors: dict[str, torch.Tensor]) -> bytes:
    """A well-formed file with correct checksums (version 2 manifests), as a writer would."""
    if isinstance(manifest, dict) and "tensors_sha256" in manifest:
        manifest["tensors_sha256"] = tensors_sha256(tensors)
    text = json.dumps(manifest).replace(json.dumps(DEEP), "[" * 5000 + "]" * 5000)
    meta = {MANIFEST_KEY: text, CHECKSUM_KEY: hashlib.sha256(text.encode()).hexdigest()}
    return save_bytes({k: v.contiguous() for k, v in tensors.items()}, metadata=meta)


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, (*prefix, i))
    return out


def _get(obj: Any, path: tuple[Any, ...]) -> Any:
    for p in path:
        obj = obj[p]
    return obj


def _mutate_manifest(m: dict[str, Any], rng: random.Random) -> Any:
    paths = [p for p in _paths(m) if p and p[0] != "tensors_sha256"]
    path = rng.choice(paths)
    parent, key = _get(m, path[:-1]), path[-1]
    kind = rng.randrange(7)
    if kind <= 2:  # an awkward value, or a value from elsewhere in the manifest
        parent[key] = copy.deepcopy(rng.choice(AWKWARD) if kind < 2 else
                                    _get(m, rng.choice(paths)))
    elif kind == 3:
        del parent[key]
    elif kind == 4:
        if isinstance(parent, dict):
            parent[f"extra_{rng.randrange(9)}"] = rng.choice(AWKWARD)
        else:
            parent.insert(key, copy.deepcopy(parent[key]))
    elif kind == 5:
        v = parent[key]
        if isinstance(v, list) and len(v) > 1:
            rng.shuffle(v)
        elif isinstance(v, bool):
            parent[key] = not v
        elif isinstance(v, int | float):
            step = 1 if rng.random() < 0.7 else 2 ** rng.randint(1, 40)
            parent[key] = v + rng.choice([-1, 1]) * step
        elif isinstance(v, str):
            parent[key] = v + "_"
    else:  # deep nesting
        parent[key] = DEEP if rng.random() < 0.3 else [[[[1]]]]
    return m


def _mutate_tensor(tensors: dict[str, torch.Tensor], rng: random.Random) -> None:
    name = rng.choice(sorted(tensors))
    t = tensors[name]
    kind = rng.randrange(7)
    if kind <= 1 and t.numel():
        flat = t.reshape(-1).clone()
        i = rng.randrange(flat.numel())
        if t.is_floating_point():
            flat[i] = rng.choice([math.nan, math.inf, -math.inf, 0.0, 1e30, -1e30,
                                  float(flat[i]) + rng.choice([-1, 1]) * 1e-3,
                                  float(flat[i]) * -1])
        elif t.dtype == torch.bool:
            flat[i] = not bool(flat[i])
        else:
            info = torch.iinfo(t.dtype)
            flat[i] = rng.choice([info.min, info.max, 0, int(flat[i]) + 1, int(flat[i]) - 1])
        tensors[name] = flat.reshape(t.shape)
    elif kind == 2:
        tensors[name] = t.to(rng.choice(DTYPES))
    elif kind == 3:
        r = rng.randrange(3)
        tensors[name] = (t.reshape(-1) if r == 0 else t.unsqueeze(0) if r == 1 else
                         t.reshape(-1)[: max(0, t.numel() - 1)])
    elif kind == 4:
        del tensors[name]
    elif kind == 5:
        tensors[name.rsplit(".", 1)[0] + rng.choice([".extra", ".x.y", "s"])] = tensors.pop(name)
    else:
        tensors[f"{name}_copy" if rng.random() < 0.5 else "ops.999.table"] = t.clone()


def mutate_signed(data: bytes, rng: random.Random) -> bytes:
    manifest, tensors = split_file(data)
    if rng.random() < 0.5:
        manifest = _mutate_manifest(manifest, rng)
    else:
        _mutate_tensor(tensors, rng)
    return sign_file(manifest, tensors)


# outcomes ----------------------------------------------------------------------------------
def identical(a: rapidnn.ComposedModel, b: rapidnn.ComposedModel) -> bool:
    """Same ops (kind, spec, tensors), codebooks, graph, configuration and metadata."""
    def state(m: rapidnn.ComposedModel) -> Any:
        ops = [(type(o).kind, o.spec) for o in m.ops]
        cbs = [(k, c.spec) for k, c in m.codebooks.items()]
        graph = [(n.name, n.op, n.inputs, n.shape, n.params, n.source) for n in m.source]
        return ops, cbs, graph, m.config, m.metadata
    if state(a) != state(b):
        return False
    ta, tb = a.state_dict(), b.state_dict()
    wa = {n.name: (n.weight, n.bias) for n in a.source}
    wb = {n.name: (n.weight, n.bias) for n in b.source}
    same = ta.keys() == tb.keys() and all(
        ta[k].dtype == tb[k].dtype and torch.equal(ta[k], tb[k]) for k in ta)
    return same and all(_same_tensor(x, y) for k in wa for x, y in zip(wa[k], wb[k], strict=True))


def _same_tensor(x: torch.Tensor | None, y: torch.Tensor | None) -> bool:
    return (x is None) == (y is None) and (x is None or (x.dtype == y.dtype and torch.equal(x, y)))


def outcome(sample: Sample, data: bytes, path: Path) -> str:
    """``error`` | ``identical`` | ``consistent`` | ``raw <Exception>`` | ``inconsistent``."""
    path.write_bytes(data)
    try:
        model = rapidnn.load(path)
    except ModelFileError:
        return "error"
    except Exception as exc:  # the fuzzer classifies every failure
        return f"raw {type(exc).__name__}: {str(exc)[:100]}"
    if identical(model, sample.model):
        return "identical"
    try:
        forward = model(sample.x)
        sim = rapidnn.simulate(model, sample.x).outputs
        model.memory()
    except Exception as exc:
        return f"raw on use {type(exc).__name__}: {str(exc)[:100]}"
    return "consistent" if torch.equal(forward, sim) else "inconsistent"


def run_fuzz(samples: list[Sample], cases: int, seed: int, tmp: Path,
             progress: Callable[[int], None] | None = None) -> dict[str, Counter]:
    """``cases`` mutations (half bytes, half signed), seeded; outcome counts per kind."""
    rng = random.Random(seed)
    counts = {"bytes": Counter(), "signed": Counter()}
    path = tmp / "fuzzed.rapidnn"
    for i in range(cases):
        sample = samples[i % len(samples)]
        kind = "bytes" if i % 2 == 0 else "signed"
        mutate = mutate_bytes if kind == "bytes" else mutate_signed
        counts[kind][outcome(sample, mutate(sample.data, rng), path)] += 1
        if progress is not None:
            progress(i)
    return counts
