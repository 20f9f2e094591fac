"""An audit of the paper's headline ratios: what RAPIDNN's reconstruction gives, and what it would
take to reach 68.4x / 48.1x (ISAAC), 49.5x / 10.9x (PipeLayer) and 382.6x / 211.5x (GPU, arXiv v1).

Three parts (docs/hardware.md §10):

* **scenarios**: each comparison policy, each accounting variant and each structural choice
  alone, and the combinations that favour either side, with the ratios against every baseline;
* **sweep**: every number of the four presets scaled over 10^-3 .. 10^3 (half-decade steps;
  integers stay >= 1, mappings that become impossible are skipped) and every structural choice
  over its values, under ``as-published``; the tornado is each item's range of a ratio;
* **smallest changes**: for each paper ratio, the fewest changes (discrete choices first, then
  one number) that reach it, each judged plausible or not with the reason (:data:`PLAUSIBLE`
  ranges from the sources, otherwise a factor allowed by the number's tag).

No number is tuned here: the audit reports what each change *would need*; the presets stay put.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from rapidnn.accel.trace import Trace
from rapidnn.hardware import accounting, policies
from rapidnn.hardware.estimate import Estimate, EstimateOptions
from rapidnn.hardware.loader import load_hardware
from rapidnn.hardware.network import NetworkShape
from rapidnn.hardware.spec import PRESETS, HardwareConfigError, HardwareSpec, overrides_for

PAPER: dict[str, dict[str, float]] = {
    "isaac": {"energy_efficiency": 68.4, "speedup": 48.1},
    "pipelayer": {"energy_efficiency": 49.5, "speedup": 10.9},
    "gpu": {"energy_efficiency": 382.6, "speedup": 211.5},
}
PAPER_SOURCE = ("arXiv 1806.05794 v2-v4 and HPCA 2020 abstracts (ISAAC, PipeLayer); arXiv v1 "
                "abstract (GPU); paper-notes section 3")
METRICS = ("energy_efficiency", "speedup")
FACTORS: tuple[float, ...] = tuple(10 ** (k / 2) for k in range(-6, 7))
SKIP = ("synthetic_", "pool_window", "batch", "endurance_")

# plausible factor ranges (lo, hi) of single numbers, with the reason (sources memo)
PLAUSIBLE: dict[str, tuple[float, float, str]] = {
    "rapidnn.rna_block.energy.read_bit": (
        1.0, 43.0, "3.45 fJ excludes the sense amplifier; 10-150 fJ per bit with it (NVSim)"),
    "rapidnn.rna_block.energy.search_row_bit": (
        3 / 303.5, 1.0, "nearest-distance NVM search 3-300 fJ per row-bit (exact-match CMOS "
        "TCAMs 0.1-3 fJ/bit/search do not find the nearest value)"),
    "rapidnn.rna_block.energy.nor_cycle": (
        10 / 22.115, 200 / 22.115, "10-200 fJ per row-NOR (DUAL-derived 22 fJ to a switching "
        "MAGIC output with initialisation)"),
    "rapidnn.rna_block.energy.write_bit": (
        10 / 22.115, 200 / 22.115, "one NVM cell write, 10-200 fJ (as a NOR output)"),
    "rapidnn.rna_block.energy.transfer_bit": (
        0.5, 2.0, "two NOR cycles per bit (FloatPIM)"),
    "rapidnn.rna_block.latency.nor_cycle": (0.5, 2.0, "~1 ns VTEAM switching (FloatPIM)"),
    "rapidnn.rna_block.latency.search": (0.5, 5.0, "200 ps DUAL search; CAMs 0.2-2 ns"),
    "rapidnn.tiles_per_chip": (0.25, 4.0, "a chip between 8 and 128 FloatPIM-sized tiles"),
    "rapidnn.blocks_per_tile": (0.25, 4.0, "64-1024 blocks per tile"),
}
TAG_RANGE = {"published": (0.5, 2.0), "published-secondary": (0.5, 2.0),
             "derived": (1 / 3, 3.0), "assumed": (0.1, 10.0)}

Estimator = Callable[[NetworkShape | Trace, str, EstimateOptions], Estimate]


@dataclass(frozen=True)
class Scenario:
    """A policy with accounting variants and structural choices (``options`` / overrides)."""

    name: str
    description: str
    policy: str = "as-published"
    variants: tuple[str, ...] = ()
    options: tuple[tuple[str, Any], ...] = ()
    overrides: tuple[tuple[str, float], ...] = ()


STRUCTURE: dict[str, tuple[str, dict[str, Any], dict[str, float], str]] = {
    # name: (description, options, overrides, plausibility)
    "dense-mapping": ("every row slot filled, copies by policy only (the layout before the "
                      "mapper)", {"mapping": "dense"}, {},
                      "plausible, but worse than the mapper's choice"),
    "column-parallel": ("all values of a row add at once (rapidnn.column_parallel = 1)", {},
                        {"rapidnn.column_parallel": 1},
                        "implausible here: needs partitioned crossbars (extra transistors and "
                        "area), which FloatPIM/DUAL do not have"),
    "objective-latency": ("mapper minimises the period", {"objective": "latency"}, {},
                          "plausible"),
}


def default_scenarios() -> list[Scenario]:
    """Each policy, each variant and each structural choice alone (the combinations that favour
    either side are added by :func:`audit` from these results)."""
    out = [Scenario("default", "as-published policy, default accounting, mapper (edp)")]
    out += [Scenario(f"policy:{p}", f"{p} policy", policy=p) for p in policies.POLICIES[1:]]
    out += [Scenario(f"variant:{v.name}", v.description, variants=(v.name,))
            for v in accounting.VARIANTS.values()]
    out += [Scenario(f"structure:{k}", d, options=tuple(o.items()), overrides=tuple(ov.items()))
            for k, (d, o, ov, _) in STRUCTURE.items()]
    return out


@dataclass
class Auditor:
    """Evaluates scenarios of one network with cached estimates (one trace, one shape)."""

    trace: Trace
    shape: NetworkShape
    estimate: Estimator
    base: EstimateOptions = field(default_factory=EstimateOptions)
    baselines: tuple[str, ...] = policies.BASELINES

    def __post_init__(self) -> None:
        self.specs = {name: load_hardware(name).with_own_overrides(self.base.overrides)
                      for name in PRESETS}
        self.spec = self.specs["rapidnn"]  # variants start from the user's numbers
        self._cache: dict[Any, dict[str, dict[str, float]]] = {}
        self._estimates: dict[tuple[int, str, str], Estimate] = {}

    def _estimate(self, x: NetworkShape | Trace, hardware: str,
                  options: EstimateOptions) -> Estimate:
        """``estimate`` memoised on the options that concern ``hardware`` (a sweep of an
        ISAAC number does not estimate RAPIDNN again)."""
        own = overrides_for({hardware}, options.overrides)
        key = (id(x), hardware,
               options.model_copy(update={"overrides": own}).model_dump_json())
        if key not in self._estimates:
            self._estimates[key] = self.estimate(x, hardware, options)
        return self._estimates[key]

    def options(self, sc: Scenario) -> tuple[EstimateOptions, HardwareSpec]:
        upd, ov = accounting.combine(sc.variants, self.spec)
        ov.update(dict(sc.overrides))
        opts = self.base.model_copy(update={**upd, **dict(sc.options),
                                            "overrides": {**self.base.overrides, **ov}})
        return opts, self.spec.with_own_overrides(opts.overrides)

    def scaled(self, key: str, factor: float) -> float:
        """A number (``"<preset>.<key>"``, the user's overrides applied) scaled by ``factor``."""
        which, _, sub = key.partition(".")
        return self.specs[which].get(sub).scaled(factor).value

    def factor(self, key: str, value: float) -> float:
        """The factor a value is of the number it replaces."""
        which, _, sub = key.partition(".")
        old = self.specs[which].get(sub).value
        return value / old if old else 1.0

    def ratios(self, sc: Scenario) -> dict[str, dict[str, float]]:
        key = (sc.policy, tuple(sorted(sc.variants)), tuple(sorted(sc.options)),
               tuple(sorted(sc.overrides)))
        if key not in self._cache:
            opts, spec = self.options(sc)
            res = policies.evaluate(sc.policy, self.trace, self.shape, self._estimate,
                                    self.baselines, opts, spec)
            self._cache[key] = {b: m.ratios for b, m in res.items()}
        return self._cache[key]


def _plausible_range(key: str, tag: str) -> tuple[float, float, str]:
    if key in PLAUSIBLE:
        return PLAUSIBLE[key]
    lo, hi = TAG_RANGE.get(tag, (0.5, 2.0))
    return lo, hi, f"a {tag} number"


def _sweep_keys(specs: dict[str, HardwareSpec]) -> list[tuple[str, Any]]:
    out = []
    for name in ("rapidnn", "isaac", "pipelayer", "gpu"):
        spec = specs[name]
        for key, p in spec.all_params():
            if p.value == 0 or any(key.startswith(s) for s in SKIP) or ".area" in key \
                    or key.endswith(("cam_search_bit", "sense_amp_bit")):
                continue
            out.append((f"{name}.{key}", p))
    return out


def _swept_key(specs: dict[str, HardwareSpec], key: str, swept: set[str]) -> str:
    """``key`` (``"<design>.<key or alias>"``, as ``with_overrides`` takes it) as the sweep
    names it; a key of no design, unknown to its design, or not swept raises."""
    design, _, rest = key.partition(".")
    if design not in specs or not rest:
        raise HardwareConfigError(f"a swept key starts with one of {sorted(specs)}", key=key)
    spec = specs[design]
    name = f"{design}.{spec._resolve(key)}"
    if name in swept:
        return name
    spec.get(key)  # raises "unknown parameter key"
    raise HardwareConfigError("this number is not swept by the audit (zero, an area, or a "
                              "parameter the cost model does not use)", key=key)


def sweep(aud: Auditor, keys: Sequence[str] | None = None,
          factors: Sequence[float] = FACTORS) -> list[dict[str, Any]]:
    """Ratios under ``as-published`` with one number scaled, for every factor (module doc)."""
    params = _sweep_keys(aud.specs)
    if keys is not None:
        wanted = {_swept_key(aud.specs, k, {name for name, _ in params}) for k in keys}
        params = [(k, p) for k, p in params if k in wanted]
    rows = []
    for key, p in params:
        points: list[dict[str, Any]] = []
        for f in factors:
            scaled = aud.scaled(key, f)
            if points and scaled == points[-1]["value"]:
                continue  # an integer clamped at 1 (or rounded to the same value)
            try:
                r = aud.ratios(Scenario(f"{key}x{f:g}", "", overrides=((key, scaled),)))
            except (ValueError, ZeroDivisionError):
                continue
            points.append({"factor": f, "value": scaled, **r})
        if len(points) < 2:
            continue
        lo, hi, why = _plausible_range(key, p.tag)
        rows.append({"parameter": key, "value": p.value, "unit": p.unit, "tag": p.tag,
                     "source": p.source, "plausible_factors": [lo, hi],
                     "plausible_reason": why, "points": points})
    base = aud.ratios(Scenario("default", ""))
    for key, (desc, opts, ov, why) in STRUCTURE.items():
        alt = aud.ratios(Scenario(key, desc, options=tuple(opts.items()),
                                  overrides=tuple(ov.items())))
        rows.append({"parameter": f"structure.{key}", "tag": "structural", "source": desc,
                     "plausible_reason": why,
                     "points": [{"choice": "default", **base}, {"choice": key, **alt}]})
    for v in accounting.VARIANTS.values():
        alt = aud.ratios(Scenario(v.name, v.description, variants=(v.name,)))
        rows.append({"parameter": f"accounting.{v.name}", "tag": v.tag, "source": v.source,
                     "plausible_reason": v.plausibility,
                     "points": [{"choice": "default", **base}, {"choice": v.name, **alt}]})
    return rows


def tornado(rows: Sequence[dict[str, Any]], baseline: str = "isaac",
            metric: str = "energy_efficiency", top: int = 15) -> list[dict[str, Any]]:
    """Each sweep row's range (min, max) of one ratio, widest first."""
    out = []
    for r in rows:
        vals = [p[baseline][metric] for p in r["points"] if baseline in p]
        if not vals or min(vals) <= 0:
            continue
        out.append({"parameter": r["parameter"], "low": min(vals), "high": max(vals),
                    "swing": math.log(max(vals) / min(vals))})
    out.sort(key=lambda x: x["swing"], reverse=True)
    return out[:top]


def _crossing(points: Sequence[dict[str, Any]], baseline: str, metric: str,
              target: float) -> float | None:
    """The factor (log-interpolated) at which a swept ratio reaches ``target`` nearest 1."""
    pts = [(p["factor"], p[baseline][metric]) for p in points if "factor" in p]
    best = None
    for (f0, r0), (f1, r1) in itertools.pairwise(pts):
        if r0 <= 0 or r1 <= 0 or (r0 - target) * (r1 - target) > 0 or r0 == r1:
            continue
        t = math.log(target / r0) / math.log(r1 / r0)
        f = math.exp(math.log(f0) + t * (math.log(f1) - math.log(f0)))
        if best is None or abs(math.log(f)) < abs(math.log(best)):
            best = f
    return best


def _discrete_choices(side: str = "any") -> list[tuple[str, Scenario, str]]:
    """(name, scenario delta, plausibility) of every discrete change; ``side="rapidnn"`` keeps
    the accounting variants that change only RAPIDNN's charges and the structural choices."""
    out = [(f"accounting.{v.name}", Scenario(v.name, v.description, variants=(v.name,)),
            v.plausibility) for v in accounting.VARIANTS.values()
           if side == "any" or v.side == "rapidnn"]
    out += [(f"structure.{k}", Scenario(k, d, options=tuple(o.items()),
                                        overrides=tuple(ov.items())), why)
            for k, (d, o, ov, why) in STRUCTURE.items() if k != "dense-mapping"]
    if side == "any":
        out += [(f"policy.{p}", Scenario(p, p, policy=p), "plausible: a matched comparison")
                for p in ("filled", "iso-area")]
    return out


def _merge(parts: Iterable[Scenario], name: str) -> Scenario | None:
    policy, variants, opts, ov = "as-published", [], {}, {}
    for s in parts:
        if s.policy != "as-published":
            if policy != "as-published":
                return None
            policy = s.policy
        variants += list(s.variants)
        opts.update(dict(s.options))
        ov.update(dict(s.overrides))
    if {"leakage", "ungated"} <= set(variants):
        return None
    return Scenario(name, name, policy, tuple(variants), tuple(opts.items()), tuple(ov.items()))


def smallest_changes(aud: Auditor, rows: Sequence[dict[str, Any]], max_discrete: int = 3,
                     side: str = "any") -> dict[str, dict[str, Any]]:
    """For each paper ratio: the fewest changes that reach it (module docstring). ``side``:
    "any" (numbers of every design) or "rapidnn" (RAPIDNN's numbers and the discrete choices
    only: what the reconstruction itself would need)."""
    choices = _discrete_choices(side)
    numbers = [r for r in rows if r["points"] and "factor" in r["points"][0]
               and (side == "any" or r["parameter"].startswith("rapidnn."))]
    out: dict[str, dict[str, Any]] = {}
    for base_name in aud.baselines:
        for metric in METRICS:
            target = PAPER[base_name][metric]
            r0 = aud.ratios(Scenario("default", ""))[base_name][metric]
            helpful = [c for c in choices
                       if aud.ratios(c[1])[base_name][metric] > r0 * (1 + 1e-9)]
            found: list[dict[str, Any]] = []
            for k in range(0, max_discrete + 1):
                for combo in itertools.combinations(helpful, k):
                    sc = _merge([c[1] for c in combo], "+".join(c[0] for c in combo) or "none")
                    if sc is None:
                        continue
                    r = aud.ratios(sc)[base_name][metric]
                    changes = [{"change": c[0], "plausibility": c[2],
                                "plausible": c[2].startswith("plausible")} for c in combo]
                    if r >= target:
                        found.append({"changes": changes, "ratio": r})
                        continue
                    fix = _one_number(aud, sc, numbers, base_name, metric, target, r, r0)
                    if fix is not None:
                        found.append({"changes": [*changes, fix[0]], "ratio": fix[1]})

            if not found:
                greedy = _greedy_numbers(aud, numbers, base_name, metric, target)
                if greedy is not None:
                    found.append(greedy)

            def rank(f: dict[str, Any]) -> tuple[int, float]:
                return len(f["changes"]), sum(abs(math.log(c.get("factor", 1.0)))
                                              for c in f["changes"])

            found.sort(key=rank)
            sound = [f for f in found if all(c["plausible"] for c in f["changes"])]
            out[f"{base_name}.{metric}"] = {
                "paper": target, "default": r0,
                "smallest": found[0] if found else None,
                "smallest_plausible": sound[0] if sound else None,
                "plausible": bool(sound),
                "alternatives": found[1:4],
            }
    return out


def _one_number(aud: Auditor, sc: Scenario, numbers: Sequence[dict[str, Any]], base_name: str,
                metric: str, target: float, r_sc: float, r0: float
                ) -> tuple[dict[str, Any], float] | None:
    """The single number whose smallest plausible-looking scaling closes the gap from ``sc``
    (sweep factors at the default, then checked by evaluating ``sc`` with it)."""
    need = target / r_sc * r0  # the ratio the number must reach on its own, multiplicatively
    cands = []
    for row in numbers:
        f = _crossing(row["points"], base_name, metric, need)
        if f is not None:
            lo, hi = row["plausible_factors"]
            cands.append((not (lo <= f <= hi), abs(math.log(f)), f, row))
    for _, _, f, row in sorted(cands, key=lambda c: (c[0], c[1]))[:3]:
        key = row["parameter"]
        value = aud.scaled(key, f)
        f = aud.factor(key, value)  # the factor of the value used (integers are rounded)
        trial = Scenario(sc.name + f"+{key}", "", sc.policy, sc.variants, sc.options,
                         (*sc.overrides, (key, value)))
        try:
            r = aud.ratios(trial)[base_name][metric]
        except (ValueError, ZeroDivisionError):
            continue
        if r >= target * 0.95:
            return _number_change(row, f, value), r
    return None


def _number_change(row: dict[str, Any], factor: float, value: float) -> dict[str, Any]:
    """One scaled number of a change set, judged against its plausible factor range."""
    lo, hi = row["plausible_factors"]
    ok = lo <= factor <= hi
    return {"change": row["parameter"], "factor": factor, "value": value, "unit": row["unit"],
            "plausible": ok, "plausibility": ("plausible: " if ok else "implausible: ")
            + f"x{factor:.3g} ({row['plausible_reason']})"}


def _greedy_numbers(aud: Auditor, numbers: Sequence[dict[str, Any]], base_name: str,
                    metric: str, target: float, steps: int = 4) -> dict[str, Any] | None:
    """Several numbers at once, when no single one suffices: repeatedly apply the number whose
    best swept factor raises the ratio most, until the target is reached (or ``steps`` run)."""
    applied: list[tuple[dict[str, Any], float]] = []
    overrides: dict[str, float] = {}
    ratio = aud.ratios(Scenario("default", ""))[base_name][metric]
    for _ in range(steps):
        best: tuple[float, dict[str, Any], float, float] | None = None
        for row in numbers:
            key = row["parameter"]
            if key in overrides:
                continue
            for f in (min(FACTORS), max(FACTORS)):
                value = aud.scaled(key, f)
                trial = Scenario("greedy", "", overrides=tuple({**overrides, key: value}.items()))
                try:
                    r = aud.ratios(trial)[base_name][metric]
                except (ValueError, ZeroDivisionError):
                    continue
                if best is None or r > best[0]:
                    best = (r, row, f, value)
        if best is None or best[0] <= ratio * (1 + 1e-6):
            return None
        r, row, f, value = best
        if r >= target:  # reached: shrink this number's factor to what the target needs
            key = row["parameter"]
            lo_t, hi_t = 0.0, 1.0  # factor f ** t
            for _ in range(30):
                mid = (lo_t + hi_t) / 2
                trial = Scenario("greedy", "", overrides=tuple(
                    {**overrides, key: aud.scaled(key, f ** mid)}.items()))
                if aud.ratios(trial)[base_name][metric] >= target:
                    hi_t = mid
                else:
                    lo_t = mid
            f = f ** hi_t
            overrides[key] = aud.scaled(key, f)
            applied.append((row, f))
            ratio = aud.ratios(Scenario("greedy", "", overrides=tuple(overrides.items())))[
                base_name][metric]
            break
        overrides[row["parameter"]] = value
        applied.append((row, f))
        ratio = r
    if ratio < target * 0.95:
        return None
    changes = [_number_change(row, f, overrides[row["parameter"]]) for row, f in applied]
    return {"changes": changes, "ratio": ratio}


def audit(trace: Trace, shape: NetworkShape, estimate: Estimator,
          options: EstimateOptions | None = None, sweep_keys: Sequence[str] | None = None,
          factors: Sequence[float] = FACTORS) -> dict[str, Any]:
    """The whole audit of one network (JSON-ready; the shape ``rapidnn audit --json`` prints)."""
    aud = Auditor(trace, shape, estimate, options or EstimateOptions())
    scenarios = default_scenarios()
    for b in aud.baselines:
        base = aud.ratios(scenarios[0])[b]["energy_efficiency"]
        up = [v.name for v in accounting.VARIANTS.values()
              if aud.ratios(Scenario(v.name, "", variants=(v.name,)))[b][
                  "energy_efficiency"] > base]
        down = [v.name for v in accounting.VARIANTS.values() if v.name not in up]
        for group, other in ((up, "leakage"), (down, "ungated")):
            if "leakage" in group and "ungated" in group:
                group.remove(other)
        for policy in ("as-published", "filled"):
            scenarios.append(Scenario(f"favourable-vs-{b}:{policy}", "every accounting variant "
                                      f"that raises RAPIDNN's energy ratio over {b}, {policy} "
                                      "policy", policy, tuple(up)))
            scenarios.append(Scenario(f"unfavourable-vs-{b}:{policy}", "every other accounting "
                                      f"variant, {policy} policy", policy, tuple(down)))
    rows = sweep(aud, sweep_keys, factors)
    listed = []
    for sc in scenarios:
        listed.append({"name": sc.name, "description": sc.description, "policy": sc.policy,
                       "variants": list(sc.variants), "options": dict(sc.options),
                       "overrides": dict(sc.overrides), **aud.ratios(sc)})
    closest = {}
    for b in aud.baselines:
        for m in METRICS:
            best = min(listed, key=lambda s, b=b, m=m: abs(math.log(s[b][m] / PAPER[b][m])))
            closest[f"{b}.{m}"] = {"scenario": best["name"], "ratio": best[b][m],
                                   "paper": PAPER[b][m]}
    return {
        "network": shape.name,
        "paper": {**PAPER, "source": PAPER_SOURCE},
        "scenarios": listed,
        "closest": closest,
        "tornado": {f"{b}.{m}": tornado(rows, b, m) for b in aud.baselines for m in METRICS},
        "smallest_changes": smallest_changes(aud, rows),
        "smallest_rapidnn_changes": smallest_changes(aud, rows, side="rapidnn"),
        "sweep": rows,
    }
